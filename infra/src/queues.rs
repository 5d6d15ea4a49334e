//! Delivers an SQS queue's messages to its function as Lambda's SQS event source mapping
//! does: long-polled batches of up to `BatchSize` (at most 10 per receive), each invoked as an
//! SQS event; a message is deleted once its invocation succeeds (with
//! `ReportBatchItemFailures`, all but the ones the function names), otherwise it reappears
//! after its visibility timeout and is delivered again. Delays (`DelaySeconds`) are the
//! emulator's: a message is received only once its delay has passed.

use crate::functions::Invoke;
use crate::template::{QueueMapping, REGION};
use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Seconds a received message stays hidden before it is delivered again.
const VISIBILITY_SECS: i32 = 30;

/// Starts delivering `mapping`'s queue to `invoke` until `shutdown` turns true.
pub fn spawn(
    mapping: QueueMapping,
    invoke: Invoke,
    aws: aws_config::SdkConfig,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let sqs = aws_sdk_sqs::Client::new(&aws);
        tokio::select! {
            outcome = run(&sqs, &mapping, &invoke) => {
                if let Err(e) = outcome {
                    tracing::error!(queue = %mapping.queue, function = %mapping.function, error = %e, "queue delivery stopped");
                }
            }
            _ = shutdown.wait_for(|s| *s) => {}
        }
    })
}

async fn run(
    sqs: &aws_sdk_sqs::Client,
    mapping: &QueueMapping,
    invoke: &Invoke,
) -> Result<(), String> {
    let url = sqs
        .get_queue_url()
        .queue_name(&mapping.queue)
        .send()
        .await
        .map_err(|e| format!("GetQueueUrl: {e}"))?
        .queue_url
        .ok_or("the queue has no URL")?;
    let arn = format!("arn:aws:sqs:{REGION}:000000000000:{}", mapping.queue);
    loop {
        let received = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(mapping.batch_size.clamp(1, 10) as i32)
            .visibility_timeout(VISIBILITY_SECS)
            .wait_time_seconds(1)
            .send()
            .await;
        let messages = match received {
            Ok(out) => out.messages.unwrap_or_default(),
            Err(e) => {
                tracing::warn!(queue = %mapping.queue, error = %e, "ReceiveMessage failed; polling again");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        if messages.is_empty() {
            // The emulator may answer at once rather than wait: poll at 10 Hz at most.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let records: Vec<Value> = messages
            .iter()
            .map(|m| {
                json!({
                    "messageId": m.message_id(),
                    "receiptHandle": m.receipt_handle(),
                    "body": m.body().unwrap_or_default(),
                    "attributes": {},
                    "messageAttributes": {},
                    "md5OfBody": m.md5_of_body(),
                    "eventSource": "aws:sqs",
                    "eventSourceARN": arn,
                    "awsRegion": REGION,
                })
            })
            .collect();
        let failed: Vec<String> = match invoke(json!({ "Records": records })).await {
            Ok(result) if mapping.report_batch_item_failures => result
                .get("batchItemFailures")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|f| f.get("itemIdentifier").and_then(Value::as_str))
                .map(str::to_owned)
                .collect(),
            Ok(_) => Vec::new(),
            Err(e) => {
                tracing::error!(function = %mapping.function, error = %e, "queue batch failed; its messages reappear after their visibility timeout");
                continue;
            }
        };
        let done: Vec<DeleteMessageBatchRequestEntry> = messages
            .iter()
            .filter(|m| !failed.iter().any(|f| Some(f.as_str()) == m.message_id()))
            .enumerate()
            .filter_map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle()?)
                    .build()
                    .ok()
            })
            .collect();
        if !done.is_empty()
            && let Err(e) = sqs
                .delete_message_batch()
                .queue_url(&url)
                .set_entries(Some(done))
                .send()
                .await
        {
            tracing::warn!(queue = %mapping.queue, error = %e, "DeleteMessageBatch failed; the messages will be delivered again");
        }
    }
}
