//! view-latency: how fast each dashboard view answers on the local cloud with the demo
//! running, and how many DynamoDB requests it makes.
//!
//! Starts a local cloud of its own, imports the demo's 90 days of history for tenant `demo`
//! (as `make dev` does), then sends the demo's live traffic (`PULSE_DEMO_RATE`, 5 events/s by
//! default) for the whole measurement. After a minute of live traffic, for every view of the
//! web, business, health and ML areas and each range (24h, 7d, 30d) it times `ROUNDS` GETs
//! through the HTTP API, as the dashboard sends them (the first of each with the view's reads
//! uncached), and reports p50/p95/max; then it counts the DynamoDB requests of one call of
//! the serving function's handler, in process, through a client that counts them.
//!
//! Usage: `cargo run --release -p pulse-local --bin view-latency [ROUNDS]` (default 10)

#![allow(clippy::print_stdout)]

use pulse_http::HttpHandler;
use pulse_local::bench::{admin_get, counted_client, numeric_args, percentile};
use pulse_local::{LocalCloud, Options, demo};
use pulse_store::metrics::DynamoMetrics;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const VIEWS: &[&str] = &[
    "web/overview",
    "web/pages",
    "web/sources",
    "web/devices",
    "web/countries",
    "web/realtime",
    "business/overview",
    "business/funnel",
    "business/sales",
    "business/products",
    "business/collections",
    "health/overview",
    "health/api",
    "health/timeseries",
    "ml/overview",
    "ml/providers",
];
const RANGES: &[&str] = &["24h", "7d", "30d"];

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let rounds = numeric_args().first().copied().unwrap_or(10).max(1);
    let state = std::env::temp_dir().join(format!("pulse-view-latency-{}", std::process::id()));
    let cloud = LocalCloud::start(Options::ephemeral(state.clone())).await?;
    let base = cloud.http_url();
    let admin = cloud.token("demo", "admin")?;
    let http = reqwest::Client::new();
    let started = Instant::now();
    let mut rng = fastrand::Rng::with_seed(11);
    let history = demo::history(&mut rng, chrono::Utc::now());
    let accepted = demo::import(&http, &base, &admin, &history).await;
    println!(
        "imported {accepted} of {} history events in {:.0} s",
        history.len(),
        started.elapsed().as_secs_f64()
    );
    let live = {
        let (http, base, admin) = (http.clone(), base.clone(), admin.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut carry = 0.0;
            loop {
                tick.tick().await;
                let now = chrono::Utc::now();
                carry += demo::rate() * demo::seasonality(now);
                let count = carry.floor() as usize;
                carry -= count as f64;
                let batch = serde_json::json!({"events": demo::events(&mut rng, count, now)});
                let _ = http
                    .post(format!("{base}/api/v1/events"))
                    .bearer_auth(&admin)
                    .json(&batch)
                    .send()
                    .await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(60)).await;
    let model = cloud.model();
    let table = |logical: &str| {
        model
            .tables
            .iter()
            .find(|t| t.logical_id == logical)
            .map(|t| t.name.clone())
            .ok_or(format!("no {logical}"))
    };
    let (metrics, app) = (table("MetricsTable")?, table("AppTable")?);
    let config = pulse_core::Config::from_lookup(|k| match k {
        "METRICS_TABLE" => Some(metrics.clone()),
        "APP_TABLE" => Some(app.clone()),
        "EVENTS_TABLE" => Some("unused".into()),
        _ => None,
    })?;
    println!(
        "| view | range | p50 | p95 | max | first call | DynamoDB requests | status |\n| --- | --- | --- | --- | --- | --- | --- | --- |"
    );
    let mut all = Vec::new();
    for view in VIEWS {
        for range in RANGES {
            let url = format!("{base}/api/v1/{view}?range={range}");
            let mut times = Vec::with_capacity(rounds);
            let mut status = 0;
            for _ in 0..rounds {
                let t = Instant::now();
                let res = http.get(&url).bearer_auth(&admin).send().await?;
                status = res.status().as_u16();
                let _ = res.bytes().await?;
                times.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            let first = times[0];
            all.extend(times.iter().copied());
            times.sort_by(f64::total_cmp);
            let count = Arc::new(AtomicUsize::new(0));
            let store = DynamoMetrics::with_client(
                counted_client(cloud.sdk_config(), &count),
                &metrics,
                config.retention,
            );
            let path = format!("/api/v1/{view}");
            let request = admin_get(&path, &[("range", range)], "demo");
            if view.starts_with("health/") {
                let handler = api_health::Health::new(
                    pulse_store::dynamo::DynamoStore::new(cloud.sdk_config()),
                    store,
                    &config,
                );
                handler.handle(request).await?;
            } else {
                let definitions = pulse_store::app::DynamoApp::new(cloud.sdk_config(), &app);
                api_query::Query::new(store, definitions, &config)
                    .handle(request)
                    .await?;
            }
            println!(
                "| {view} | {range} | {:.0} ms | {:.0} ms | {:.0} ms | {first:.0} ms | {} | {status} |",
                percentile(&times, 0.5),
                percentile(&times, 0.95),
                times.last().copied().unwrap_or(f64::NAN),
                count.load(Ordering::Relaxed),
            );
        }
    }
    all.sort_by(f64::total_cmp);
    println!(
        "every view and range: p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms over {} calls",
        percentile(&all, 0.5),
        percentile(&all, 0.95),
        all.last().copied().unwrap_or(f64::NAN),
        all.len()
    );
    live.abort();
    cloud.stop().await;
    let _ = std::fs::remove_dir_all(state);
    Ok(())
}
