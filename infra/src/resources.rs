//! Creates template.yaml's tables, buckets and topics in the emulator, with the declared keys,
//! indexes, TTL attribute and stream settings.

use crate::template::{Model, Table};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType,
    TimeToLiveSpecification,
};
use thiserror::Error;

#[derive(Debug, Error)]
#[error("cannot create {resource} in the emulator: {detail}")]
pub struct ProvisionError {
    resource: String,
    /// The error with its whole context (an SDK error's own text is only "service error").
    detail: String,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

fn fail<E: std::error::Error + Send + Sync + 'static>(
    resource: &str,
) -> impl FnOnce(E) -> ProvisionError + '_ {
    move |e| ProvisionError {
        resource: resource.to_owned(),
        detail: aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string(),
        source: Box::new(e),
    }
}

/// Runs `call` until it succeeds, a few times: the emulator's first answers, while it warms
/// up, are sometimes errors.
async fn patiently<T, E, F, Fut>(mut call: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let mut attempt = 0;
    loop {
        match call().await {
            Err(e) if attempt < 4 => {
                attempt += 1;
                tracing::warn!(attempt, error = %e, "emulator call failed while provisioning; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(250 * attempt)).await;
            }
            outcome => return outcome,
        }
    }
}

/// Creates every table, bucket, queue and topic of `model`.
pub async fn provision(model: &Model, aws: &aws_config::SdkConfig) -> Result<(), ProvisionError> {
    let dynamo = aws_sdk_dynamodb::Client::new(aws);
    for table in &model.tables {
        create_table(&dynamo, table).await?;
    }
    let s3 = crate::s3_client(aws);
    for bucket in &model.buckets {
        s3.create_bucket()
            .bucket(bucket)
            .send()
            .await
            .map_err(fail(bucket))?;
    }
    let sqs = aws_sdk_sqs::Client::new(aws);
    for queue in &model.queues {
        sqs.create_queue()
            .queue_name(queue)
            .send()
            .await
            .map_err(fail(queue))?;
    }
    let sns = aws_sdk_sns::Client::new(aws);
    for topic in &model.topics {
        let name = topic.rsplit(':').next().unwrap_or(topic);
        sns.create_topic()
            .name(name)
            .send()
            .await
            .map_err(fail(topic))?;
    }
    Ok(())
}

fn keys(schema: &[(String, String)]) -> Vec<KeySchemaElement> {
    schema
        .iter()
        .filter_map(|(name, kind)| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(KeyType::from(kind.as_str()))
                .build()
                .ok()
        })
        .collect()
}

async fn create_table(
    client: &aws_sdk_dynamodb::Client,
    table: &Table,
) -> Result<(), ProvisionError> {
    let name = table.name.as_str();
    let mut req = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_key_schema(Some(keys(&table.key_schema)));
    for (attr, kind) in &table.attributes {
        let def = AttributeDefinition::builder()
            .attribute_name(attr)
            .attribute_type(ScalarAttributeType::from(kind.as_str()))
            .build()
            .map_err(fail(name))?;
        req = req.attribute_definitions(def);
    }
    for index in &table.indexes {
        let gsi = GlobalSecondaryIndex::builder()
            .index_name(&index.name)
            .set_key_schema(Some(keys(&index.key_schema)))
            .projection(
                Projection::builder()
                    .projection_type(ProjectionType::from(index.projection.as_str()))
                    .build(),
            )
            .build()
            .map_err(fail(name))?;
        req = req.global_secondary_indexes(gsi);
    }
    if let Some(view) = &table.stream_view_type {
        req = req.stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::from(view.as_str()))
                .build()
                .map_err(fail(name))?,
        );
    }
    let created = patiently(|| req.clone().send()).await;
    match created {
        Ok(_) => {}
        // A retried create whose first attempt went through.
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_in_use_exception()) => {}
        Err(e) => return Err(fail(name)(e)),
    }
    if let Some(attr) = &table.ttl_attribute {
        let ttl = TimeToLiveSpecification::builder()
            .attribute_name(attr)
            .enabled(true)
            .build()
            .map_err(fail(name))?;
        patiently(|| {
            client
                .update_time_to_live()
                .table_name(name)
                .time_to_live_specification(ttl.clone())
                .send()
        })
        .await
        .map_err(fail(name))?;
    }
    Ok(())
}
