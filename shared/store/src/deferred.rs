//! Live pushes that must wait: a subscriber told less than its interval ago gets the next
//! change when its interval ends, even if no other event follows. Nothing runs in a Lambda
//! between invocations, so the wait is an SQS message with a delay (whole seconds, at most
//! 15 minutes), consumed by the stream function's second event source.

use super::StoreError;
use async_trait::async_trait;
use aws_config::SdkConfig;
use pulse_core::identity::TenantId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use tokio::sync::OnceCell;

/// A push to make later: which metrics of a tenant changed, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeferredPush {
    pub tenant: TenantId,
    pub metrics: BTreeSet<String>,
    /// When the change was aggregated (epoch ms): a subscriber told since then has it.
    pub changed_ms: i64,
}

/// Schedules pushes.
#[async_trait]
pub trait PushLater: Send + Sync + std::fmt::Debug {
    /// Delivers `push` back to the stream function at `due_ms` (epoch ms) or up to a second
    /// after it.
    async fn push_later(&self, push: &DeferredPush, due_ms: i64) -> Result<(), StoreError>;
}

/// The delay queue in SQS.
#[derive(Debug)]
pub struct SqsPushLater {
    client: aws_sdk_sqs::Client,
    /// A queue URL, or a name to look up once (the local cloud names its queues).
    queue: String,
    url: OnceCell<String>,
}

impl SqsPushLater {
    pub fn new(aws: &SdkConfig, queue: &str) -> Self {
        Self {
            client: aws_sdk_sqs::Client::new(aws),
            queue: queue.to_owned(),
            url: OnceCell::new(),
        }
    }

    async fn url(&self) -> Result<&str, StoreError> {
        queue_url(&self.client, &self.queue, &self.url).await
    }
}

/// The URL of `queue` (a URL, or a name looked up once into `cell`).
pub(crate) async fn queue_url<'a>(
    client: &aws_sdk_sqs::Client,
    queue: &str,
    cell: &'a OnceCell<String>,
) -> Result<&'a str, StoreError> {
    cell.get_or_try_init(|| async {
        if queue.starts_with("http") {
            return Ok(queue.to_owned());
        }
        client
            .get_queue_url()
            .queue_name(queue)
            .send()
            .await
            .map_err(|e| StoreError::Unavailable(Box::new(e)))?
            .queue_url
            .ok_or_else(|| StoreError::Unavailable("the queue has no URL".into()))
    })
    .await
    .map(String::as_str)
}

/// The delay SQS takes for a push due at `due_ms`, at `now_ms`: whole seconds rounded up, so
/// the push is never early, within SQS's 0–900.
pub fn delay_secs(due_ms: i64, now_ms: i64) -> i32 {
    let secs =
        (due_ms - now_ms).max(0).div_euclid(1000) + i64::from((due_ms - now_ms).max(0) % 1000 != 0);
    secs.clamp(0, 900) as i32
}

#[async_trait]
impl PushLater for SqsPushLater {
    async fn push_later(&self, push: &DeferredPush, due_ms: i64) -> Result<(), StoreError> {
        let body = serde_json::to_string(push).map_err(|e| StoreError::Unavailable(Box::new(e)))?;
        let url = self.url().await?;
        self.client
            .send_message()
            .queue_url(url)
            .message_body(body)
            .delay_seconds(delay_secs(due_ms, chrono::Utc::now().timestamp_millis()))
            .send()
            .await
            .map_err(|e| StoreError::Unavailable(Box::new(e)))?;
        Ok(())
    }
}

/// A batch of SQS messages, as Lambda delivers them.
#[derive(Debug, Deserialize)]
pub struct QueueBatch {
    #[serde(rename = "Records")]
    pub records: Vec<QueueMessage>,
}

/// One SQS message: its id (for a partial batch failure) and body.
#[derive(Debug, Deserialize)]
pub struct QueueMessage {
    #[serde(rename = "messageId")]
    pub message_id: String,
    pub body: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delay_is_whole_seconds_rounded_up_and_bounded() {
        assert_eq!(delay_secs(1_000, 1_000), 0);
        assert_eq!(delay_secs(1_200, 1_000), 1);
        assert_eq!(delay_secs(5_000, 1_000), 4);
        assert_eq!(delay_secs(900, 1_000), 0, "overdue: at once");
        assert_eq!(delay_secs(10_000_000, 0), 900);
    }
}
