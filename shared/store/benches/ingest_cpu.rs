//! Ingest CPU path on one core: parse and validate a 1,000-event batch, enrich it (tenant,
//! ids, timestamps, correlation id) and build the DynamoDB items BatchWriteItem sends.
//! Bar (DESIGN.md): ≥ 200,000 events/s.
//!
//! `cargo bench -p pulse-store --bench ingest_cpu`

use pulse_core::identity::TenantId;
use pulse_ingest::events::{Context, Limits, parse_batch};
use pulse_store::events::item;
use serde_json::json;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// The allocator the ingest function runs with (`functions/api-ingest/src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A mixed batch as the demo traffic and SDKs send it: metrics with tags, page views,
/// API requests and orders, each with a client id and timestamp.
fn batch(now_ms: i64) -> Vec<u8> {
    let ts = chrono::DateTime::from_timestamp_millis(now_ms - 1_000)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default();
    let events: Vec<_> = (0..1000)
        .map(|i| match i % 4 {
            0 => json!({"kind": "metric", "name": "http.server.duration", "value": 12.5 + i as f64, "unit": "ms", "id": format!("m-{i}"), "timestamp": ts,
                        "tags": {"service": "checkout", "region": "eu-west-1", "host": format!("web-{}", i % 8), "status": "200"}}),
            1 => json!({"kind": "page_view", "path": format!("/products/{}", i % 50), "referrer": "https://www.google.com/", "title": "Product",
                        "visitor": format!("v{}", i % 300), "id": format!("p-{i}"), "timestamp": ts, "tags": {"device": "mobile", "country": "DE"}}),
            2 => json!({"kind": "api_request", "route": "/api/v1/orders/{id}", "method": "GET", "status": 200, "latency_ms": 35.2, "id": format!("a-{i}"), "timestamp": ts}),
            _ => json!({"kind": "order", "order_id": format!("o-{i}"), "revenue": 129.9, "currency": "EUR", "id": format!("o-{i}"), "timestamp": ts,
                        "items": [{"product": "mug", "collection": "kitchen", "quantity": 2, "price": 24.95}, {"product": "kettle", "collection": "kitchen", "quantity": 1, "price": 80.0}]}),
        })
        .collect();
    json!({"events": events}).to_string().into_bytes()
}

#[allow(clippy::print_stdout)]
fn main() {
    let tenant = TenantId::parse("bench").expect("tenant");
    let limits = Limits::default();
    let now_ms = chrono::Utc::now().timestamp_millis();
    let body = batch(now_ms);
    let ctx = Context {
        tenant: &tenant,
        now_ms,
        correlation_id: Some("bench-correlation-id"),
        limits: &limits,
    };
    let mut rates = Vec::new();
    for _round in 0..7 {
        let started = Instant::now();
        let mut events = 0usize;
        while started.elapsed() < Duration::from_millis(700) {
            let parsed = parse_batch(black_box(&body), &ctx).expect("valid batch");
            for e in &parsed {
                black_box(item(e, 7 * 86_400, 1_795_341_600));
            }
            events += parsed.len();
        }
        rates.push(events as f64 / started.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "ingest CPU path: median {:.0} events/s (min {:.0}, max {:.0}) over 7 rounds; batch of 1000, {} bytes; bar 200000",
        rates[rates.len() / 2],
        rates[0],
        rates[rates.len() - 1],
        body.len()
    );
}
