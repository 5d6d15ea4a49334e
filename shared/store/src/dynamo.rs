//! DynamoDB adapter: implements the store traits with the AWS SDK. The only module that sees
//! DynamoDB types.

use super::{StoreError, TableProbe};
use aws_config::SdkConfig;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::describe_table::DescribeTableError;
use aws_sdk_dynamodb::types::TableStatus;

/// DynamoDB behind Pulse's store traits.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: aws_sdk_dynamodb::Client,
}

impl DynamoStore {
    /// A store using `config` (see [`crate::aws::load`] for its retry policy).
    pub fn new(config: &SdkConfig) -> Self {
        Self::from_client(aws_sdk_dynamodb::Client::new(config))
    }

    pub fn from_client(client: aws_sdk_dynamodb::Client) -> Self {
        Self { client }
    }
}

impl TableProbe for DynamoStore {
    async fn probe(&self, table: &str) -> Result<(), StoreError> {
        let out = self
            .client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| match e {
                SdkError::ServiceError(ref se)
                    if matches!(se.err(), DescribeTableError::ResourceNotFoundException(_)) =>
                {
                    StoreError::TableNotFound(table.to_owned())
                }
                other => classify(other),
            })?;
        match out.table().and_then(|t| t.table_status()) {
            Some(TableStatus::Active | TableStatus::Updating) => Ok(()),
            status => Err(StoreError::TableNotActive {
                table: table.to_owned(),
                status: status.map_or("unknown".to_owned(), |s| s.as_str().to_owned()),
            }),
        }
    }
}

use super::classify;

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::post;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A DynamoDB endpoint that throttles the first `throttles` calls, then describes an
    /// active table.
    async fn fake_dynamodb(throttles: u32) -> (String, Arc<AtomicU32>) {
        let calls = Arc::new(AtomicU32::new(0));
        let seen = calls.clone();
        let app = Router::new().route(
            "/",
            post(move |_headers: HeaderMap| {
                let seen = seen.clone();
                async move {
                    let n = seen.fetch_add(1, Ordering::SeqCst);
                    if n < throttles {
                        (
                            StatusCode::BAD_REQUEST,
                            r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate exceeded"}"#,
                        )
                    } else {
                        (
                            StatusCode::OK,
                            r#"{"Table":{"TableName":"t","TableStatus":"ACTIVE"}}"#,
                        )
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, calls)
    }

    fn store_at(url: &str) -> DynamoStore {
        DynamoStore::from_client(crate::test_client(url))
    }

    #[tokio::test]
    async fn throttled_calls_are_retried_until_they_succeed() {
        // Given an endpoint that throttles twice
        let (url, calls) = fake_dynamodb(2).await;
        // When a table is probed
        let result = store_at(&url).probe("t").await;
        // Then the third attempt succeeds
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn throttling_past_the_retry_budget_is_reported_as_throttled() {
        let (url, calls) = fake_dynamodb(u32::MAX).await;
        let result = store_at(&url).probe("t").await;
        assert!(
            matches!(result, Err(StoreError::Throttled(_))),
            "{result:?}"
        );
        assert_eq!(calls.load(Ordering::SeqCst), crate::aws::MAX_ATTEMPTS);
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_is_unavailable_not_a_panic() {
        // Port 9 (discard) on loopback has no listener here.
        let result = store_at("http://127.0.0.1:9").probe("t").await;
        assert!(
            matches!(result, Err(StoreError::Unavailable(_))),
            "{result:?}"
        );
    }
}
