//! The Metrics table adapter: live minute buckets and the series registry.
//!
//! Bucket item: `pk = {tenant}#{metric}#1m#{series}`, `sk` = bucket start in epoch seconds,
//! zero-padded; `count`, `sum`, `min`, `max` as numbers for plain reads, the whole bucket
//! (sketch and HyperLogLog included) as `state` (postcard bytes) for merging, a `version` for
//! optimistic concurrency, and the TTL `expires_at`. DynamoDB cannot take a min, max or
//! sketch merge in an update expression, so a merge reads, merges and writes back on the
//! condition that the version is unchanged, retrying on a conflict.
//!
//! Registry: `pk = {tenant}#{metric}#series`, one item per series (`sk` = series id, its tags)
//! and a counter item (`sk = #count`) whose conditional increment enforces the cap.

use super::keys::{EXPIRES_AT, PK, SK};
use super::{BucketStore, StoreError};
use crate::aggregate::{Bucket, BucketKey, SeriesKey};
use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

/// Merge attempts before a contended bucket is reported failed (its records are retried).
const MERGE_ATTEMPTS: usize = 8;
const COUNT_SK: &str = "#count";

/// The Metrics table.
#[derive(Debug)]
pub struct DynamoMetrics {
    client: aws_sdk_dynamodb::Client,
    table: String,
    minute_ttl_secs: i64,
    /// Series known to be registered: a warm function skips the registry for them.
    known: Mutex<HashSet<SeriesKey>>,
}

impl DynamoMetrics {
    pub fn new(aws: &SdkConfig, table: &str, minute_retention_days: i64) -> Self {
        Self {
            client: aws_sdk_dynamodb::Client::new(aws),
            table: table.to_owned(),
            minute_ttl_secs: minute_retention_days.saturating_mul(86_400),
            known: Mutex::new(HashSet::new()),
        }
    }
}

/// The partition key of a series at a resolution.
pub fn bucket_pk(tenant: &str, metric: &str, resolution: &str, series: &str) -> String {
    format!("{tenant}#{metric}#{resolution}#{series}")
}

/// The sort key of a bucket starting at `epoch_secs`.
pub fn bucket_sk(epoch_secs: i64) -> String {
    format!("{epoch_secs:012}")
}

fn registry_pk(tenant: &str, metric: &str) -> String {
    format!("{tenant}#{metric}#series")
}

fn unavailable<E, R>(e: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    StoreError::Unavailable(Box::new(e))
}

fn conditional_failed<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    e.code() == Some("ConditionalCheckFailedException")
}

#[async_trait]
impl BucketStore for DynamoMetrics {
    async fn register_series(
        &self,
        series: &[(SeriesKey, BTreeMap<String, String>)],
        cap: usize,
    ) -> Result<Vec<SeriesKey>, StoreError> {
        let mut refused = Vec::new();
        for (key, tags) in series {
            if self.known.lock().map(|k| k.contains(key)).unwrap_or(false) {
                continue;
            }
            let pk = registry_pk(key.tenant.as_str(), &key.metric);
            let existing = self
                .client
                .get_item()
                .table_name(&self.table)
                .key(PK, AttributeValue::S(pk.clone()))
                .key(SK, AttributeValue::S(key.series.clone()))
                .send()
                .await
                .map_err(unavailable)?;
            if existing.item().is_none() {
                let counted = self
                    .client
                    .update_item()
                    .table_name(&self.table)
                    .key(PK, AttributeValue::S(pk.clone()))
                    .key(SK, AttributeValue::S(COUNT_SK.to_owned()))
                    .update_expression("ADD series_count :one")
                    .condition_expression(
                        "attribute_not_exists(series_count) OR series_count < :cap",
                    )
                    .expression_attribute_values(":one", AttributeValue::N("1".into()))
                    .expression_attribute_values(":cap", AttributeValue::N(cap.to_string()))
                    .send()
                    .await;
                match counted {
                    Ok(_) => {}
                    Err(e) if conditional_failed(&e) => {
                        // At the cap: count the overflow so it is visible, never silent.
                        self.client
                            .update_item()
                            .table_name(&self.table)
                            .key(PK, AttributeValue::S(pk))
                            .key(SK, AttributeValue::S(COUNT_SK.to_owned()))
                            .update_expression("ADD overflow_series :one")
                            .expression_attribute_values(":one", AttributeValue::N("1".into()))
                            .send()
                            .await
                            .map_err(unavailable)?;
                        tracing::warn!(tenant = %key.tenant, metric = %key.metric, cap, "series cap reached; folding into __other__");
                        refused.push(key.clone());
                        continue;
                    }
                    Err(e) => return Err(unavailable(e)),
                }
                let tag_map = tags
                    .iter()
                    .map(|(k, v)| (k.clone(), AttributeValue::S(v.clone())))
                    .collect();
                self.client
                    .put_item()
                    .table_name(&self.table)
                    .item(PK, AttributeValue::S(pk))
                    .item(SK, AttributeValue::S(key.series.clone()))
                    .item("tags", AttributeValue::M(tag_map))
                    .send()
                    .await
                    .map_err(unavailable)?;
            }
            if let Ok(mut known) = self.known.lock() {
                known.insert(key.clone());
            }
        }
        Ok(refused)
    }

    async fn merge_bucket(&self, key: &BucketKey, bucket: &Bucket) -> Result<(), StoreError> {
        let pk = bucket_pk(key.tenant.as_str(), &key.metric, "1m", &key.series);
        let start = key.minute * 60;
        let sk = bucket_sk(start);
        for _ in 0..MERGE_ATTEMPTS {
            let current = self
                .client
                .get_item()
                .table_name(&self.table)
                .key(PK, AttributeValue::S(pk.clone()))
                .key(SK, AttributeValue::S(sk.clone()))
                .consistent_read(true)
                .send()
                .await
                .map_err(unavailable)?;
            let (mut merged, version) = match current.item() {
                Some(item) => {
                    let state = item.get("state").and_then(|v| v.as_b().ok());
                    let version: i64 = item
                        .get("version")
                        .and_then(|v| v.as_n().ok())
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0);
                    let decoded = state
                        .and_then(|b| postcard::from_bytes::<Bucket>(b.as_ref()).ok())
                        .ok_or_else(|| {
                            StoreError::Unavailable(
                                format!("bucket {pk}/{sk} has no readable state").into(),
                            )
                        })?;
                    (decoded, version)
                }
                None => (Bucket::default(), 0),
            };
            merged.merge(bucket);
            let state =
                postcard::to_allocvec(&merged).map_err(|e| StoreError::Unavailable(Box::new(e)))?;
            let n = |v: f64| AttributeValue::N(v.to_string());
            let mut put = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(HashMap::from([
                    (PK.to_owned(), AttributeValue::S(pk.clone())),
                    (SK.to_owned(), AttributeValue::S(sk.clone())),
                    (
                        "tenant".to_owned(),
                        AttributeValue::S(key.tenant.to_string()),
                    ),
                    ("metric".to_owned(), AttributeValue::S(key.metric.clone())),
                    ("series".to_owned(), AttributeValue::S(key.series.clone())),
                    ("resolution".to_owned(), AttributeValue::S("1m".to_owned())),
                    (
                        "count".to_owned(),
                        AttributeValue::N(merged.count.to_string()),
                    ),
                    ("sum".to_owned(), n(merged.sum)),
                    ("min".to_owned(), n(merged.min)),
                    ("max".to_owned(), n(merged.max)),
                    ("state".to_owned(), AttributeValue::B(Blob::new(state))),
                    (
                        "version".to_owned(),
                        AttributeValue::N((version + 1).to_string()),
                    ),
                    (
                        EXPIRES_AT.to_owned(),
                        AttributeValue::N((start + self.minute_ttl_secs).to_string()),
                    ),
                ])));
            put = if version == 0 {
                put.condition_expression("attribute_not_exists(pk)")
            } else {
                put.condition_expression("version = :v")
                    .expression_attribute_values(":v", AttributeValue::N(version.to_string()))
            };
            match put.send().await {
                Ok(_) => return Ok(()),
                Err(e) if conditional_failed(&e) => continue,
                Err(e) => return Err(unavailable(e)),
            }
        }
        Err(StoreError::Throttled(
            format!("bucket {pk}/{sk} stayed contended after {MERGE_ATTEMPTS} attempts").into(),
        ))
    }
}
