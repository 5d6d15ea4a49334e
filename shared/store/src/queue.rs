//! Work handed to another function through SQS: retrains requested through the API reach the
//! retrain job (the API answers 202 at once, the fits run in the job's own time), and the
//! rollup job tells the detectors which minutes of a tenant are sealed.

use super::StoreError;
use aws_config::SdkConfig;
use pulse_core::identity::TenantId;
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

/// What the queue carries: which tenant's job to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetrainRequest {
    pub tenant: TenantId,
    pub job: String,
}

/// Sends retrain requests (IAM `sqs:SendMessage`, `sqs:GetQueueUrl` on the retrain queue).
pub trait RetrainQueue: Send + Sync {
    fn request(
        &self,
        request: &RetrainRequest,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send;
}

/// Tells the detectors that a tenant's minutes are sealed (IAM `sqs:SendMessage`,
/// `sqs:GetQueueUrl` on the detect queue).
pub trait SealedNotices: Send + Sync {
    fn sealed(
        &self,
        notices: &[pulse_metrics::insights::SealedThrough],
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send;
}

/// No detectors to tell (a rollup job without them, as in its own tests).
impl SealedNotices for () {
    async fn sealed(
        &self,
        _notices: &[pulse_metrics::insights::SealedThrough],
    ) -> Result<(), StoreError> {
        Ok(())
    }
}

/// An SQS queue carrying JSON messages.
#[derive(Debug)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    /// A queue URL, or a name to look up once (the local cloud names its queues).
    queue: String,
    url: OnceCell<String>,
}

impl SqsQueue {
    pub fn new(aws: &SdkConfig, queue: &str) -> Self {
        Self {
            client: aws_sdk_sqs::Client::new(aws),
            queue: queue.to_owned(),
            url: OnceCell::new(),
        }
    }
}

impl SqsQueue {
    /// Sends each of `messages` as one JSON message, ten to a request.
    async fn send<T: Serialize>(&self, messages: &[T]) -> Result<(), StoreError> {
        if messages.is_empty() {
            return Ok(());
        }
        let url = super::deferred::queue_url(&self.client, &self.queue, &self.url).await?;
        for chunk in messages.chunks(10) {
            let mut batch = self.client.send_message_batch().queue_url(url);
            for (i, m) in chunk.iter().enumerate() {
                let body =
                    serde_json::to_string(m).map_err(|e| StoreError::Unavailable(Box::new(e)))?;
                batch = batch.entries(
                    aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(body)
                        .build()
                        .map_err(|e| StoreError::Unavailable(Box::new(e)))?,
                );
            }
            let out = batch
                .send()
                .await
                .map_err(|e| StoreError::Unavailable(Box::new(e)))?;
            if let Some(failed) = out.failed().first() {
                return Err(StoreError::Unavailable(
                    format!("SQS refused a message: {}", failed.code()).into(),
                ));
            }
        }
        Ok(())
    }
}

impl RetrainQueue for SqsQueue {
    async fn request(&self, request: &RetrainRequest) -> Result<(), StoreError> {
        self.send(std::slice::from_ref(request)).await
    }
}

impl SealedNotices for SqsQueue {
    async fn sealed(
        &self,
        notices: &[pulse_metrics::insights::SealedThrough],
    ) -> Result<(), StoreError> {
        self.send(notices).await
    }
}
