//! write-cost: DynamoDB write requests per 1,000 ingested events, counted on the local cloud.
//!
//! Starts a local cloud of its own, ingests 1,000 demo-mix events for one tenant (10 requests
//! of 100, as a busy sender would), waits until the stream aggregator has counted all of them
//! (each kind's events against its metric's series buckets, printed: exactly once), then
//! counts what was written:
//! - raw events: one item write per event, in BatchWriteItem calls of 25;
//! - live buckets: every bucket PutItem increments the bucket's `version`, so the sum of the
//!   versions is the number of bucket writes (a metric's total bucket included), and each is
//!   preceded by one GetItem;
//! - series registry: one counter update and one item per new series.
//!
//! Usage: `cargo run -p pulse-local --bin write-cost` (also `make bench-write-cost`).

#![allow(clippy::print_stdout)]

use aws_sdk_dynamodb::types::AttributeValue;
use pulse_local::{LocalCloud, Options};
use std::time::Duration;

async fn scan(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Vec<std::collections::HashMap<String, AttributeValue>> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let Ok(page) = client
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start)
            .send()
            .await
        else {
            return items;
        };
        items.extend(page.items().iter().cloned());
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            return items;
        }
    }
}

/// A metric's total bucket (every series summed), which the views read: written beside the
/// series' buckets, so counting it too would count each event twice.
fn is_total(item: &std::collections::HashMap<String, AttributeValue>) -> bool {
    item.get("series")
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
        == Some(pulse_metrics::aggregate::TOTAL_SERIES)
}

fn n(item: &std::collections::HashMap<String, AttributeValue>, k: &str) -> u64 {
    item.get(k)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let state = std::env::temp_dir().join(format!("pulse-write-cost-{}", std::process::id()));
    let cloud = LocalCloud::start(Options::ephemeral(state.clone())).await?;
    let token = cloud.token("cost", "admin")?;
    let http = reqwest::Client::new();
    let mut rng = fastrand::Rng::with_seed(42);
    let now = chrono::Utc::now();
    let mut requests = 0;
    let mut sent_by_kind: std::collections::BTreeMap<String, u64> = Default::default();
    for _ in 0..10 {
        // The demo's shoppers take several steps per draw: exactly 100 events a request.
        let mut events = pulse_local::demo::events(&mut rng, 100, now);
        events.truncate(100);
        for e in &events {
            let kind = e["kind"].as_str().unwrap_or_default();
            let name = if kind == "metric" {
                e["name"].as_str().unwrap_or_default()
            } else {
                kind
            };
            *sent_by_kind.entry(name.to_owned()).or_default() += 1;
        }
        let batch = serde_json::json!({ "events": events });
        let res = http
            .post(format!("{}/api/v1/events", cloud.http_url()))
            .bearer_auth(&token)
            .json(&batch)
            .send()
            .await?;
        if res.status() != 202 {
            return Err(format!("ingest answered {}", res.status()).into());
        }
        requests += 1;
    }
    let dynamo = aws_sdk_dynamodb::Client::new(cloud.sdk_config());
    let metrics = cloud
        .model()
        .tables
        .iter()
        .find(|t| t.logical_id == "MetricsTable")
        .ok_or("no MetricsTable")?
        .name
        .clone();
    // Done when every event has been counted and the count has stopped moving for a second
    // (an event may add samples to derived metrics too: failed requests, order items).
    let mut buckets = Vec::new();
    let mut last = 0;
    for _ in 0..300 {
        buckets = scan(&dynamo, &metrics)
            .await
            .into_iter()
            .filter(|i| i.contains_key("version"))
            .collect();
        let counted = buckets
            .iter()
            .filter(|b| !is_total(b))
            .map(|b| n(b, "count"))
            .sum::<u64>();
        if counted >= 1000 && counted == last {
            break;
        }
        last = counted;
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
    let counted: u64 = buckets
        .iter()
        .filter(|b| !is_total(b))
        .map(|b| n(b, "count"))
        .sum();
    let bucket_puts: u64 = buckets.iter().map(|b| n(b, "version")).sum();
    let registry = scan(&dynamo, &metrics).await;
    let series = registry.iter().filter(|i| i.contains_key("tags")).count() as u64;
    let event_writes = 1000u64;
    let batch_calls = 1000u64.div_ceil(25);
    println!("| what | write requests per 1,000 events |");
    println!("| --- | --- |");
    println!("| raw event items (BatchWriteItem, {batch_calls} calls) | {event_writes} |");
    println!(
        "| live bucket PutItems ({} buckets; each after one GetItem) | {bucket_puts} |",
        buckets.len()
    );
    println!(
        "| series registry (counter update + item, {series} new series) | {} |",
        2 * series
    );
    println!(
        "| total item writes | {} |",
        event_writes + bucket_puts + 2 * series
    );
    println!(
        "\n{requests} ingest requests of 100 demo-mix events; the aggregator counted {counted} samples from the 1,000 (derived metrics and order items add samples)."
    );
    // Exactly once: each kind's events against its metric's live buckets.
    let mut counted_by_metric: std::collections::BTreeMap<String, u64> = Default::default();
    for b in buckets.iter().filter(|b| !is_total(b)) {
        if let Some(m) = b.get("metric").and_then(|v| v.as_s().ok()) {
            *counted_by_metric.entry(m.clone()).or_default() += n(b, "count");
        }
    }
    for (kind, sent) in &sent_by_kind {
        println!(
            "{kind}: {sent} sent, {} counted",
            counted_by_metric.get(kind).copied().unwrap_or(0)
        );
    }
    cloud.stop().await;
    let _ = std::fs::remove_dir_all(state);
    Ok(())
}
