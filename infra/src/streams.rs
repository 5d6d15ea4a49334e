//! Delivers a table's DynamoDB stream to its function as Lambda's event source mapping does:
//! records in order per shard, in batches of up to `BatchSize`, waiting up to
//! `MaximumBatchingWindowInSeconds` to fill a batch, and with `ReportBatchItemFailures` a
//! response's `batchItemFailures` checkpoints before the first failed record and retries from
//! it. A failed invocation retries the whole batch, with backoff, as on AWS.
//!
//! It speaks the DynamoDB Streams JSON protocol to the emulator directly, so the records reach
//! the function in the wire shape Lambda forwards.

use crate::functions::Invoke;
use crate::template::{REGION, StreamMapping};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

const POLL: Duration = Duration::from_millis(100);

/// A client for the emulator's DynamoDB and DynamoDB Streams JSON APIs.
#[derive(Debug, Clone)]
struct Api {
    http: reqwest::Client,
    endpoint: String,
}

impl Api {
    async fn call(&self, target: &str, body: Value) -> Result<Value, String> {
        let res = self
            .http
            .post(&self.endpoint)
            .header("content-type", "application/x-amz-json-1.0")
            .header("x-amz-target", target)
            .header(
                "authorization",
                format!("AWS4-HMAC-SHA256 Credential=local/20260101/{REGION}/dynamodb/aws4_request, SignedHeaders=host, Signature=0"),
            )
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| format!("{target}: {e}"))?;
        let status = res.status();
        let value: Value = res.json().await.map_err(|e| format!("{target}: {e}"))?;
        if status.is_success() {
            Ok(value)
        } else {
            Err(format!("{target}: {status} {value}"))
        }
    }
}

/// Starts delivering `mapping`'s stream to `invoke` until `shutdown` turns true.
pub fn spawn(
    mapping: StreamMapping,
    invoke: Invoke,
    endpoint: String,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let api = Api {
            http: reqwest::Client::new(),
            endpoint,
        };
        tokio::select! {
            outcome = run(&api, &mapping, &invoke) => {
                if let Err(e) = outcome {
                    tracing::error!(table = %mapping.table, function = %mapping.function, error = %e, "stream delivery stopped");
                }
            }
            _ = shutdown.wait_for(|s| *s) => {}
        }
    })
}

struct Shard {
    id: String,
    iterator: Option<String>,
}

async fn run(api: &Api, mapping: &StreamMapping, invoke: &Invoke) -> Result<(), String> {
    let table = api
        .call(
            "DynamoDB_20120810.DescribeTable",
            json!({"TableName": mapping.table}),
        )
        .await?;
    let stream_arn = table
        .pointer("/Table/LatestStreamArn")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("table {} has no stream", mapping.table))?
        .to_owned();
    let mut shards: Vec<Shard> = Vec::new();
    let mut pending: VecDeque<Value> = VecDeque::new();
    let mut batch_started: Option<Instant> = None;
    let window = Duration::from_secs(u64::from(mapping.batching_window_secs));
    let batch_size = mapping.batch_size.max(1) as usize;
    let mut attempt: u32 = 0;
    loop {
        discover_shards(api, &stream_arn, &mut shards).await?;
        for shard in shards.iter_mut() {
            let Some(iterator) = shard.iterator.clone() else {
                continue;
            };
            let out = api
                .call(
                    "DynamoDBStreams_20120810.GetRecords",
                    json!({"ShardIterator": iterator, "Limit": 1000}),
                )
                .await?;
            shard.iterator = out
                .get("NextShardIterator")
                .and_then(Value::as_str)
                .map(str::to_owned);
            for mut record in out
                .get("Records")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
            {
                // FilterCriteria: records that do not match never reach the function.
                let name = record
                    .get("eventName")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if !mapping.event_names.is_empty() && !mapping.event_names.iter().any(|n| n == name)
                {
                    continue;
                }
                record["eventSourceARN"] = json!(stream_arn);
                pending.push_back(record);
            }
        }
        if !pending.is_empty() && batch_started.is_none() {
            batch_started = Some(Instant::now());
        }
        let window_over = batch_started.is_some_and(|t| t.elapsed() >= window);
        if pending.len() >= batch_size || (!pending.is_empty() && window_over) {
            let batch: Vec<Value> = pending.iter().take(batch_size).cloned().collect();
            match deliver(mapping, invoke, &batch).await {
                Ok(done) => {
                    let succeeded = done.unwrap_or(batch.len());
                    pending.drain(..succeeded);
                    if succeeded < batch.len() {
                        attempt += 1;
                        backoff(attempt).await;
                    } else {
                        attempt = 0;
                    }
                }
                Err(e) => {
                    attempt += 1;
                    tracing::error!(function = %mapping.function, attempt, error = %e, "stream batch failed; retrying");
                    backoff(attempt).await;
                }
            }
            batch_started = (!pending.is_empty()).then(Instant::now);
        } else {
            tokio::time::sleep(POLL).await;
        }
    }
}

async fn discover_shards(
    api: &Api,
    stream_arn: &str,
    shards: &mut Vec<Shard>,
) -> Result<(), String> {
    let described = api
        .call(
            "DynamoDBStreams_20120810.DescribeStream",
            json!({"StreamArn": stream_arn}),
        )
        .await?;
    for shard in described
        .pointer("/StreamDescription/Shards")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(id) = shard.get("ShardId").and_then(Value::as_str) else {
            continue;
        };
        if shards.iter().any(|s| s.id == id) {
            continue;
        }
        let it = api
            .call(
                "DynamoDBStreams_20120810.GetShardIterator",
                json!({"StreamArn": stream_arn, "ShardId": id, "ShardIteratorType": "TRIM_HORIZON"}),
            )
            .await?;
        shards.push(Shard {
            id: id.to_owned(),
            iterator: it
                .get("ShardIterator")
                .and_then(Value::as_str)
                .map(str::to_owned),
        });
    }
    Ok(())
}

/// Invokes the function with one batch. `Ok(Some(n))`: the first `n` records succeeded and
/// the rest must be retried (a partial batch failure); `Ok(None)`: all succeeded.
async fn deliver(
    mapping: &StreamMapping,
    invoke: &Invoke,
    batch: &[Value],
) -> Result<Option<usize>, String> {
    let result = invoke(json!({"Records": batch}))
        .await
        .map_err(|e| e.to_string())?;
    if !mapping.report_batch_item_failures {
        return Ok(None);
    }
    let failed: Vec<&str> = result
        .get("batchItemFailures")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|f| f.get("itemIdentifier").and_then(Value::as_str))
        .collect();
    if failed.is_empty() {
        return Ok(None);
    }
    let first = batch
        .iter()
        .position(|r| {
            r.pointer("/dynamodb/SequenceNumber")
                .and_then(Value::as_str)
                .is_some_and(|seq| failed.contains(&seq))
        })
        // An identifier that names no record of the batch fails the whole batch, as on AWS.
        .unwrap_or(0);
    tracing::warn!(function = %mapping.function, failed = failed.len(), "partial batch failure; retrying from the first failed record");
    Ok(Some(first))
}

async fn backoff(attempt: u32) {
    let millis = 100u64.saturating_mul(1 << attempt.min(8)).min(30_000);
    tokio::time::sleep(Duration::from_millis(millis)).await;
}
