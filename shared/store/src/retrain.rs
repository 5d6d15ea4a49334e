//! Retrains requested through the API reach the retrain job through an SQS queue: the API
//! answers 202 at once, and a fit of every metric of a tenant runs in the job's own time.

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

/// The retrain queue in SQS.
#[derive(Debug)]
pub struct SqsRetrainQueue {
    client: aws_sdk_sqs::Client,
    /// A queue URL, or a name to look up once (the local cloud names its queues).
    queue: String,
    url: OnceCell<String>,
}

impl SqsRetrainQueue {
    pub fn new(aws: &SdkConfig, queue: &str) -> Self {
        Self {
            client: aws_sdk_sqs::Client::new(aws),
            queue: queue.to_owned(),
            url: OnceCell::new(),
        }
    }
}

impl RetrainQueue for SqsRetrainQueue {
    async fn request(&self, request: &RetrainRequest) -> Result<(), StoreError> {
        let url = super::deferred::queue_url(&self.client, &self.queue, &self.url).await?;
        let body =
            serde_json::to_string(request).map_err(|e| StoreError::Unavailable(Box::new(e)))?;
        self.client
            .send_message()
            .queue_url(url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| StoreError::Unavailable(Box::new(e)))?;
        Ok(())
    }
}
