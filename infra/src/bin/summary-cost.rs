//! summary-cost: DynamoDB requests (and time) per dashboard summary and key-cards call,
//! counted on the local cloud.
//!
//! Starts a local cloud of its own and writes a busy tenant's metric totals as the rollup job
//! would leave them: 20 metrics (the web, business, health and ML metrics and their derived
//! ones, plus custom metrics), each with hourly totals for the last 49 hours, daily totals
//! for 60 days, 5-minute totals for the last 3 hours and minute totals for the last 40
//! minutes; each bucket holds 2,000 samples from 800 visitors (dense HyperLogLog, a real
//! sketch). Then it calls the query function's handler in process, through a DynamoDB client
//! whose interceptor counts every request attempt, for the summary (24h, 7d, 30d; cache cold)
//! and the cards.
//!
//! Usage: `cargo run --release -p pulse-local --bin summary-cost` (also `make bench-summary`).

#![allow(clippy::print_stdout)]

use pulse_core::identity::TenantId;
use pulse_http::HttpHandler;
use pulse_local::bench::{admin_get, counted_client};
use pulse_local::{LocalCloud, Options};
use pulse_metrics::aggregate::{Bucket, SeriesKey, TOTAL_SERIES};
use pulse_metrics::rollup::{BucketAt, Resolution};
use pulse_store::BucketWriter;
use pulse_store::metrics::DynamoMetrics;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

const METRICS: &[&str] = &[
    "page_view",
    "web.pages",
    "web.sessions",
    "web.session_seconds",
    "product_view",
    "add_to_cart",
    "checkout",
    "order",
    "order.items",
    "api_request",
    "api_request.failed",
    "error",
    "ml_job",
    "ml_job.cost",
    "ml_job.failed",
    "signup",
    "queue.depth",
    "cpu",
    "memory",
    "checkout.latency",
];

fn bucket(rng: &mut fastrand::Rng) -> Bucket {
    let mut b = Bucket::default();
    for _ in 0..2_000 {
        let visitor = format!("v{}", rng.u32(0..800));
        b.add(rng.f64() * 500.0 + 1.0, Some(&visitor));
    }
    b
}

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let state = std::env::temp_dir().join(format!("pulse-summary-cost-{}", std::process::id()));
    let cloud = LocalCloud::start(Options::ephemeral(state.clone())).await?;
    let table = cloud
        .model()
        .tables
        .iter()
        .find(|t| t.logical_id == "MetricsTable")
        .ok_or("no MetricsTable")?
        .name
        .clone();
    let app = cloud
        .model()
        .tables
        .iter()
        .find(|t| t.logical_id == "AppTable")
        .ok_or("no AppTable")?
        .name
        .clone();
    let config = pulse_core::Config::from_lookup(|k| match k {
        "METRICS_TABLE" => Some(table.clone()),
        "APP_TABLE" => Some(app.clone()),
        "EVENTS_TABLE" => Some("unused".into()),
        _ => None,
    })?;
    let writer = DynamoMetrics::new(cloud.sdk_config(), &table, config.retention);
    let tenant = TenantId::parse("bench")?;
    let now = chrono::Utc::now().timestamp();
    let mut rng = fastrand::Rng::with_seed(7);
    let mut written = 0;
    let plan = [
        (Resolution::Hour, 49 * 3_600, now - 3_600),
        (Resolution::Day, 60 * 86_400, now - 86_400),
        (Resolution::FiveMinutes, 3 * 3_600, now - 300),
        (Resolution::Minute, 40 * 60, now + 1),
    ];
    let started = std::time::Instant::now();
    for (resolution, span, until) in plan {
        let step = resolution.secs();
        let first = resolution.window_start(now - span);
        let mut start = first;
        while start < resolution.window_start(until) {
            for metric in METRICS {
                let at = BucketAt {
                    series: SeriesKey {
                        tenant: tenant.clone(),
                        metric: (*metric).to_owned(),
                        series: TOTAL_SERIES.to_owned(),
                    },
                    resolution,
                    start,
                };
                writer.put_bucket(&at, &bucket(&mut rng)).await?;
                written += 1;
            }
            start += step;
        }
    }
    println!(
        "wrote {written} total buckets for {} metrics in {:.1} s",
        METRICS.len(),
        started.elapsed().as_secs_f64()
    );
    for (label, path, query) in [
        (
            "summary 24h",
            "/api/v1/dashboard/summary",
            vec![("range", "24h")],
        ),
        (
            "summary 7d",
            "/api/v1/dashboard/summary",
            vec![("range", "7d")],
        ),
        (
            "summary 30d",
            "/api/v1/dashboard/summary",
            vec![("range", "30d")],
        ),
        ("cards", "/api/v1/metrics", vec![]),
    ] {
        let count = Arc::new(AtomicUsize::new(0));
        let store = DynamoMetrics::with_client(
            counted_client(cloud.sdk_config(), &count),
            &table,
            config.retention,
        );
        let definitions = pulse_store::app::DynamoApp::new(cloud.sdk_config(), &app);
        let handler = api_query::Query::new(store, definitions, &config);
        let t = std::time::Instant::now();
        let res = handler.handle(admin_get(path, &query, "bench")).await?;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        let first = count.load(Ordering::Relaxed);
        let again = handler.handle(admin_get(path, &query, "bench")).await?;
        let cached = count.load(Ordering::Relaxed) - first;
        println!(
            "{label:<12} status {} · {first} DynamoDB requests · {ms:.0} ms on the emulator · a second call within 60 s: {cached} requests (status {})",
            res.status().as_u16(),
            again.status().as_u16()
        );
    }
    // Where the requests go: each read of the summary on its own.
    let count = Arc::new(AtomicUsize::new(0));
    let store = DynamoMetrics::with_client(
        counted_client(cloud.sdk_config(), &count),
        &table,
        config.retention,
    );
    let reader = pulse_store::read::Reader {
        store: &store,
        tenant: &tenant,
        now,
    };
    let hour = Resolution::Hour.window_start(now);
    let today = Resolution::Day.window_start(now);
    for (label, resolution, from) in [
        (
            "hourly totals, 49 h (+ tail)",
            Resolution::Hour,
            hour - 48 * 3_600,
        ),
        ("minute totals, 30 min", Resolution::Minute, now - 30 * 60),
        ("hourly totals, today (+ tail)", Resolution::Hour, today),
    ] {
        let before = count.load(Ordering::Relaxed);
        let got = reader.totals(resolution, from, now + 1).await?;
        let buckets: usize = got.values().map(Vec::len).sum();
        println!(
            "  {label:<30} {} requests, {buckets} buckets",
            count.load(Ordering::Relaxed) - before
        );
    }
    for (label, days) in [("daily totals, 14 d", 13), ("daily totals, 60 d", 59)] {
        let before = count.load(Ordering::Relaxed);
        let got = pulse_store::Totals::totals(
            &store,
            &tenant,
            Resolution::Day,
            today - days * 86_400,
            today,
            &[],
        )
        .await?;
        let buckets = got.len();
        println!(
            "  {label:<30} {} requests, {buckets} buckets",
            count.load(Ordering::Relaxed) - before
        );
    }
    cloud.stop().await;
    let _ = std::fs::remove_dir_all(state);
    Ok(())
}
