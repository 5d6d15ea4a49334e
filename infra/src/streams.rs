//! Delivers a table's DynamoDB stream to its function as Lambda's event source mapping does:
//! records in order per shard, in batches of up to `BatchSize`, waiting up to
//! `MaximumBatchingWindowInSeconds` to fill a batch, and with `ReportBatchItemFailures` a
//! response's `batchItemFailures` checkpoints before the first failed record and retries from
//! it. A failed invocation retries the whole batch, with backoff, as on AWS. As on AWS too,
//! `BisectBatchOnFunctionError` splits a failing batch until the failing record is alone,
//! `MaximumRetryAttempts` bounds the retries, and a batch that exhausts them is recorded in the
//! `DestinationConfig.OnFailure` bucket and skipped, so one bad record never stalls a stream.
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
    // ParallelizationFactor: that many batches of a shard in flight at once, each lane
    // keeping the records of one partition key in order, as Lambda does.
    let lanes: Vec<tokio::sync::mpsc::UnboundedSender<Value>> = (0..mapping.parallelization.max(1))
        .map(|_| {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let (api, mapping, invoke, arn) = (
                api.clone(),
                mapping.clone(),
                invoke.clone(),
                stream_arn.clone(),
            );
            tokio::spawn(async move { lane(&api, &mapping, &invoke, &arn, rx).await });
            tx
        })
        .collect();
    let mut shards: Vec<Shard> = Vec::new();
    loop {
        discover_shards(api, &stream_arn, &mut shards).await?;
        let mut received = 0;
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
                // The partition key alone: its records must stay in one lane, in order.
                let key = record
                    .pointer("/dynamodb/Keys")
                    .and_then(|k| k.get(&mapping.partition_key))
                    .map(Value::to_string)
                    .unwrap_or_default();
                let lane =
                    (xxhash_rust::xxh3::xxh3_64(key.as_bytes()) % lanes.len() as u64) as usize;
                if lanes[lane].send(record).is_err() {
                    return Err("a delivery lane stopped".into());
                }
                received += 1;
            }
        }
        if received == 0 {
            tokio::time::sleep(POLL).await;
        }
    }
}

/// Delivers one lane's records in batches, with the mapping's retry, bisection and
/// on-failure semantics.
async fn lane(
    api: &Api,
    mapping: &StreamMapping,
    invoke: &Invoke,
    stream_arn: &str,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Value>,
) {
    let mut pending: VecDeque<Value> = VecDeque::new();
    let mut batch_started: Option<Instant> = None;
    let window = Duration::from_secs(u64::from(mapping.batching_window_secs));
    let batch_size = mapping.batch_size.max(1) as usize;
    let mut attempt: u32 = 0;
    // Records per invocation: the batch size, smaller while bisecting a failing batch.
    let mut limit = batch_size;
    loop {
        if pending.is_empty() {
            match rx.recv().await {
                Some(record) => pending.push_back(record),
                None => return,
            }
        }
        while let Ok(record) = rx.try_recv() {
            pending.push_back(record);
        }
        if !pending.is_empty() && batch_started.is_none() {
            batch_started = Some(Instant::now());
        }
        let window_over = batch_started.is_some_and(|t| t.elapsed() >= window);
        if pending.len() >= batch_size || (!pending.is_empty() && window_over) {
            let batch: Vec<Value> = pending.iter().take(limit).cloned().collect();
            let outcome = deliver(mapping, invoke, &batch).await;
            let succeeded = match &outcome {
                Ok(done) => done.unwrap_or(batch.len()),
                Err(e) => {
                    tracing::error!(function = %mapping.function, attempt, error = %e, "stream batch failed");
                    0
                }
            };
            pending.drain(..succeeded);
            let rest = batch.len() - succeeded;
            if rest == 0 {
                attempt = 0;
                limit = batch_size;
            } else if mapping.bisect && rest > 1 {
                // Split the failing records in two and retry the first half: a bad record is
                // isolated in a few steps. Splitting does not count as a retry, as on AWS.
                limit = rest.div_ceil(2);
                backoff(attempt.max(1)).await;
            } else {
                attempt += 1;
                if mapping.max_retries.is_some_and(|max| attempt > max) {
                    let failed: Vec<Value> = pending.drain(..rest).collect();
                    tracing::error!(function = %mapping.function, records = failed.len(), "retries exhausted; batch sent to the on-failure destination and skipped");
                    if let Err(e) = discard(api, mapping, stream_arn, &failed, &outcome).await {
                        tracing::error!(function = %mapping.function, error = %e, "on-failure destination unavailable; the batch is dropped");
                    }
                    attempt = 0;
                    limit = batch_size;
                } else {
                    tracing::warn!(function = %mapping.function, attempt, records = rest, "retrying from the first failed record");
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

/// Records a batch that exhausted its retries where the mapping's `DestinationConfig` says:
/// an object in the S3 bucket, in the shape Lambda writes (the invocation record with the
/// batch's `DDBStreamBatchInfo` and the records as payload).
async fn discard(
    api: &Api,
    mapping: &StreamMapping,
    stream_arn: &str,
    records: &[Value],
    outcome: &Result<Option<usize>, String>,
) -> Result<(), String> {
    let Some(bucket) = &mapping.on_failure else {
        return Ok(());
    };
    let seq = |r: Option<&Value>| {
        r.and_then(|r| r.pointer("/dynamodb/SequenceNumber"))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let now = chrono::Utc::now();
    let record = json!({
        "version": "1.0",
        "timestamp": now.to_rfc3339(),
        "requestContext": {
            "requestId": uuid::Uuid::new_v4().to_string(),
            "functionArn": format!("arn:aws:lambda:{REGION}:000000000000:function:{}", mapping.function),
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": mapping.max_retries.unwrap_or(0) + 1,
        },
        "responseContext": {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": outcome.as_ref().err(),
        },
        "DDBStreamBatchInfo": {
            "shardId": "local",
            "startSequenceNumber": seq(records.first()),
            "endSequenceNumber": seq(records.last()),
            "batchSize": records.len(),
            "streamArn": stream_arn,
        },
        "payload": {"Records": records},
    });
    let key = format!(
        "aws/lambda/{}/local/{}/{}-{}",
        mapping.function,
        now.format("%Y/%m/%d"),
        now.format("%Y-%m-%dT%H.%M.%S"),
        uuid::Uuid::new_v4()
    );
    let base = api.endpoint.trim_end_matches('/');
    let res = api
        .http
        .put(format!("{base}/{bucket}/{key}"))
        .header("content-type", "application/json")
        .header(
            "authorization",
            format!("AWS4-HMAC-SHA256 Credential=local/20260101/{REGION}/s3/aws4_request, SignedHeaders=host, Signature=0"),
        )
        .body(record.to_string())
        .send()
        .await
        .map_err(|e| format!("PutObject: {e}"))?;
    if res.status().is_success() {
        Ok(())
    } else {
        Err(format!("PutObject: {}", res.status()))
    }
}

async fn backoff(attempt: u32) {
    let millis = 100u64.saturating_mul(1 << attempt.min(8)).min(30_000);
    tokio::time::sleep(Duration::from_millis(millis)).await;
}
