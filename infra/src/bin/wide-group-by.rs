//! wide-group-by: a `group_by` over many series on the local cloud, end to end.
//!
//! Starts a local cloud of its own, ingests one event for each of `SERIES` tag sets (default
//! 1,000) of one metric a few minutes ago, waits until the stream has aggregated them, then
//! times `ROUNDS` (default 10) `POST /api/v1/metrics/query` calls grouping the last 24 hours by
//! that tag, and reports p50/p95/max and the groups answered.
//!
//! Usage: `cargo run --release -p pulse-local --bin wide-group-by [SERIES] [ROUNDS]`

#![allow(clippy::print_stdout)]

use pulse_local::bench::percentile;
use pulse_local::{LocalCloud, Options};
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args = pulse_local::bench::numeric_args();
    let series = args.first().copied().unwrap_or(1_000);
    let rounds = args.get(1).copied().unwrap_or(10);
    let state = std::env::temp_dir().join(format!("pulse-wide-{}", std::process::id()));
    let cloud = LocalCloud::start(Options::ephemeral(state.clone())).await?;
    let admin = cloud.token("wide", "admin")?;
    let http = reqwest::Client::new();
    let at = (chrono::Utc::now() - chrono::Duration::minutes(3))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let events: Vec<serde_json::Value> = (0..series)
        .map(|i| {
            serde_json::json!({"kind": "metric", "name": "wide.load", "value": i as f64,
            "timestamp": at, "tags": {"host": format!("h{i:04}")}})
        })
        .collect();
    for chunk in events.chunks(1_000) {
        let res = http
            .post(format!("{}/api/v1/events", cloud.http_url()))
            .bearer_auth(&admin)
            .json(&serde_json::json!({ "events": chunk }))
            .send()
            .await?;
        if res.status() != 202 {
            return Err(format!("ingest answered {}", res.status()).into());
        }
    }
    // The answer keeps the top 100 groups (the API's limit), but ranks all of them: every
    // series is read.
    let body = serde_json::json!({"metric_name": "wide.load", "time_range": "24h",
        "aggregations": ["count"], "group_by": ["host"], "limit": 100});
    let total = serde_json::json!({"metric_name": "wide.load", "time_range": "24h",
        "aggregations": ["count"]});
    let query = || {
        http.post(format!("{}/api/v1/metrics/query", cloud.http_url()))
            .bearer_auth(&admin)
            .json(&body)
            .send()
    };
    let groups = |answer: &serde_json::Value| {
        answer["data"]
            .as_array()
            .map(|points| {
                points
                    .iter()
                    .filter_map(|p| p["tags"]["host"].as_str())
                    .collect::<std::collections::BTreeSet<_>>()
                    .len()
            })
            .unwrap_or(0)
    };
    // Wait until the stream has counted every event (the total), then until the registry
    // lists every series (the groups answered reach 100).
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let counted: serde_json::Value = http
            .post(format!("{}/api/v1/metrics/query", cloud.http_url()))
            .bearer_auth(&admin)
            .json(&total)
            .send()
            .await?
            .json()
            .await?;
        let sum: f64 = counted["data"]
            .as_array()
            .map(|p| p.iter().filter_map(|p| p["value"].as_f64()).sum())
            .unwrap_or(0.0);
        let answer: serde_json::Value = query().await?.json().await?;
        if sum >= series as f64 && groups(&answer) >= series.min(100) {
            break;
        }
        if Instant::now() > deadline {
            let text = answer.to_string();
            return Err(format!(
                "counted {sum} of {series} after 120 s: {}",
                &text[..text.len().min(600)]
            )
            .into());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let mut times = Vec::new();
    let mut answered = 0;
    for _ in 0..rounds {
        let started = Instant::now();
        let res = query().await?;
        let status = res.status();
        let answer: serde_json::Value = res.json().await?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        if status != 200 {
            return Err(format!("query answered {status}: {answer}").into());
        }
        answered = groups(&answer);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "group_by over {series} series, last 24 h: p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms over {rounds} rounds; {answered} groups answered",
        percentile(&times, 0.5),
        percentile(&times, 0.95),
        times.last().copied().unwrap_or(f64::NAN),
    );
    cloud.stop().await;
    let _ = std::fs::remove_dir_all(state);
    Ok(())
}
