//! The on-failure destination of the Events stream, in S3: where the stream consumer keeps
//! records that can never succeed, beside the invocation records Lambda writes there when a
//! batch exhausts its retries (the template names the same bucket as the mapping's
//! `DestinationConfig.OnFailure`). One JSON object per batch, under
//! `pulse/{source}/{date}/{first sequence}.json`; a lifecycle rule expires them.

use super::{DeadLetters, Discarded, StoreError};
use async_trait::async_trait;
use aws_config::SdkConfig;

/// Discarded records as S3 objects.
#[derive(Debug, Clone)]
pub struct S3DeadLetters {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3DeadLetters {
    pub fn new(aws: &SdkConfig, bucket: &str) -> Self {
        // Path-style addressing: the local emulator has no per-bucket host names.
        let config = aws_sdk_s3::config::Builder::from(aws)
            .force_path_style(true)
            .build();
        Self {
            client: aws_sdk_s3::Client::from_conf(config),
            bucket: bucket.to_owned(),
        }
    }
}

/// The object key of a batch of discarded records.
pub fn object_key(source: &str, now: chrono::DateTime<chrono::Utc>, first: &str) -> String {
    format!(
        "pulse/{source}/{}/{first}-{}.json",
        now.format("%Y/%m/%d"),
        uuid::Uuid::now_v7().simple()
    )
}

#[async_trait]
impl DeadLetters for S3DeadLetters {
    async fn keep(&self, source: &str, records: &[Discarded]) -> Result<(), StoreError> {
        let Some(first) = records.first() else {
            return Ok(());
        };
        let body = serde_json::to_vec(&serde_json::json!({
            "source": source,
            "discarded_at": chrono::Utc::now().to_rfc3339(),
            "records": records,
        }))
        .map_err(|e| StoreError::Unavailable(Box::new(e)))?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(object_key(source, chrono::Utc::now(), &first.sequence))
            .content_type("application/json")
            .body(body.into())
            .send()
            .await
            .map_err(|e| StoreError::Unavailable(Box::new(e)))?;
        Ok(())
    }
}
