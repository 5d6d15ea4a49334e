//! head-of-line: one tenant's burst against another tenant's live latency, on the local cloud.
//!
//! Starts a local cloud of its own; a client of tenant `quiet` subscribes to page views at 1 s.
//! Each round, tenant `burst` posts `TAG_SETS` events (default 1,200), each of a new tag set
//! (so a new series, a registry write and a bucket each), in batches of 600, and at the same
//! moment `quiet` posts one page view; the round records the time from quiet's 202 to its
//! `metrics_update` frame, and how long the burst's batches took to be accepted. Reports
//! p50/p95/max of quiet's latency over the rounds, with and without the burst.
//!
//! Usage: `cargo run --release -p pulse-local --bin head-of-line [TAG_SETS] [ROUNDS]`

#![allow(clippy::print_stdout)]

use futures::{SinkExt, StreamExt};
use pulse_local::bench::percentile;
use pulse_local::{LocalCloud, Options};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

type Frames = tokio::sync::mpsc::UnboundedReceiver<Instant>;

/// Posts one page view of `quiet` and waits for its frame: milliseconds, or `None` after 60 s.
async fn quiet_latency(
    http: &reqwest::Client,
    cloud: &LocalCloud,
    admin: &str,
    frames: &mut Frames,
) -> Result<Option<f64>, Box<dyn std::error::Error + Send + Sync>> {
    while frames.try_recv().is_ok() {}
    let res = http
        .post(format!("{}/api/v1/events", cloud.http_url()))
        .bearer_auth(admin)
        .json(&serde_json::json!({"events": [{"kind": "page_view", "path": "/q", "visitor": "v"}]}))
        .send()
        .await?;
    let accepted = Instant::now();
    if res.status() != 202 {
        return Err(format!("quiet ingest answered {}", res.status()).into());
    }
    let deadline = accepted + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, frames.recv()).await {
            Ok(Some(at)) if at >= accepted => {
                return Ok(Some((at - accepted).as_secs_f64() * 1000.0));
            }
            Ok(Some(_)) => {}
            _ => return Ok(None),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args = pulse_local::bench::numeric_args();
    // RUST_LOG=info prints the local cloud's JSON logs, to see where the time goes.
    if std::env::var_os("RUST_LOG").is_some() {
        pulse_http::telemetry::init();
    }
    let tag_sets = args.first().copied().unwrap_or(1_200);
    let rounds = args.get(1).copied().unwrap_or(5);
    let state = std::env::temp_dir().join(format!("pulse-hol-{}", std::process::id()));
    let cloud = LocalCloud::start(Options::ephemeral(state.clone())).await?;
    let url = cloud.ws_url().ok_or("no WebSocket API")?;
    let viewer = cloud.token("quiet", "viewer")?;
    let quiet_admin = cloud.token("quiet", "admin")?;
    let burst_admin = cloud.token("burst", "admin")?;
    let (tx, mut frames) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{url}/?token={viewer}")).await?;
    ws.send(Message::text(
        r#"{"action":"subscribe","id":"c","metrics":["page_view"],"interval":"1s"}"#,
    ))
    .await?;
    tokio::spawn(async move {
        while let Some(Ok(frame)) = ws.next().await {
            if frame.to_text().is_ok_and(|t| t.contains("metrics_update")) {
                let _ = tx.send(Instant::now());
            }
        }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let http = reqwest::Client::new();
    let mut alone = Vec::new();
    for _ in 0..rounds {
        if let Some(ms) = quiet_latency(&http, &cloud, &quiet_admin, &mut frames).await? {
            alone.push(ms);
        }
        tokio::time::sleep(Duration::from_millis(1_100)).await;
    }
    let mut during = Vec::new();
    let mut missing = 0;
    let mut burst_ms = Vec::new();
    for round in 0..rounds {
        let events: Vec<serde_json::Value> = (0..tag_sets)
            .map(|i| {
                serde_json::json!({"kind": "metric", "name": "hol.load", "value": 1.0,
                "tags": {"host": format!("r{round}-h{i}")}})
            })
            .collect();
        let started = Instant::now();
        let posts = events.chunks(600).map(|chunk| {
            http.post(format!("{}/api/v1/events", cloud.http_url()))
                .bearer_auth(&burst_admin)
                .json(&serde_json::json!({ "events": chunk }))
                .send()
        });
        let burst = futures::future::join_all(posts);
        // The quiet tenant's event lands while the burst's batches are in the stream.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let quiet = quiet_latency(&http, &cloud, &quiet_admin, &mut frames);
        let (answers, latency) = tokio::join!(burst, quiet);
        for a in answers {
            let status = a?.status();
            if status != 202 {
                return Err(format!("burst ingest answered {status}").into());
            }
        }
        burst_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        let latency = latency?;
        eprintln!(
            "round {round} at {}: quiet {latency:?} ms",
            chrono::Utc::now().format("%H:%M:%S%.3f")
        );
        match latency {
            Some(ms) => during.push(ms),
            None => missing += 1,
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    for v in [&mut alone, &mut during, &mut burst_ms] {
        v.sort_by(f64::total_cmp);
    }
    println!(
        "quiet tenant alone: p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms over {} rounds",
        percentile(&alone, 0.5),
        percentile(&alone, 0.95),
        alone.last().copied().unwrap_or(f64::NAN),
        alone.len()
    );
    println!(
        "quiet tenant during a {tag_sets}-tag-set burst: p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms over {} rounds, {missing} missing after 60 s; burst accepted in p50 {:.0} ms",
        percentile(&during, 0.5),
        percentile(&during, 0.95),
        during.last().copied().unwrap_or(f64::NAN),
        during.len(),
        percentile(&burst_ms, 0.5)
    );
    cloud.stop().await;
    let _ = std::fs::remove_dir_all(state);
    Ok(())
}
