//! live-latency: end-to-end latency of live updates on the local cloud, from an event
//! accepted by `POST /api/v1/events` to the `metrics_update` frame received by each of 100
//! subscribed WebSocket clients, and the fan-out rate of one push.
//!
//! Starts a local cloud of its own, connects `CLIENTS` clients (default 100) subscribed to
//! page views at 1 s, then `ROUNDS` times (default 50) posts one page view and records, for
//! every client, the time from the 202 to the first update after it (a round starts 1 s after
//! the last frame of the one before, so every subscription is due). Reports p50/p95/p99 over all (round, client) pairs and, per
//! round, the spread between the first and the last client's frame: the fan-out rate is
//! clients / spread.
//!
//! Usage: `cargo run --release -p pulse-local --bin live-latency [CLIENTS] [ROUNDS]`
//! (also `make bench-live`).

#![allow(clippy::print_stdout)]

use futures::{SinkExt, StreamExt};
use pulse_local::bench::percentile;
use pulse_local::{LocalCloud, Options};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args = pulse_local::bench::numeric_args();
    let clients = args.first().copied().unwrap_or(100);
    let rounds = args.get(1).copied().unwrap_or(50);
    let state = std::env::temp_dir().join(format!("pulse-live-latency-{}", std::process::id()));
    let cloud = LocalCloud::start(Options::ephemeral(state.clone())).await?;
    let url = cloud.ws_url().ok_or("no WebSocket API")?;
    let viewer = cloud.token("live-bench", "viewer")?;
    let admin = cloud.token("live-bench", "admin")?;
    // Each client forwards the arrival time of every metrics_update.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Instant)>();
    for n in 0..clients {
        let (mut ws, _) =
            tokio_tungstenite::connect_async(format!("{url}/?token={viewer}")).await?;
        ws.send(Message::text(
            r#"{"action":"subscribe","id":"c","metrics":["page_view"],"interval":"1s"}"#,
        ))
        .await?;
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Some(Ok(frame)) = ws.next().await {
                if frame.to_text().is_ok_and(|t| t.contains("metrics_update")) {
                    let _ = tx.send((n, Instant::now()));
                }
            }
        });
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    while rx.try_recv().is_ok() {}
    let http = reqwest::Client::new();
    let mut latencies = Vec::new();
    let mut spreads = Vec::new();
    let mut missed = 0usize;
    for _ in 0..rounds {
        let res = http
            .post(format!("{}/api/v1/events", cloud.http_url()))
            .bearer_auth(&admin)
            .json(&serde_json::json!({"events": [{"kind": "page_view", "path": "/bench", "visitor": "v"}]}))
            .send()
            .await?;
        let accepted = Instant::now();
        if res.status() != 202 {
            return Err(format!("ingest answered {}", res.status()).into());
        }
        let mut seen = vec![None; clients];
        let deadline = accepted + Duration::from_secs(5);
        while seen.iter().any(Option::is_none) {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, rx.recv()).await {
                Ok(Some((n, at))) if at >= accepted && seen[n].is_none() => seen[n] = Some(at),
                Ok(Some(_)) => {}
                _ => break,
            }
        }
        let arrived: Vec<Instant> = seen.iter().flatten().copied().collect();
        missed += clients - arrived.len();
        latencies.extend(
            arrived
                .iter()
                .map(|a| (*a - accepted).as_secs_f64() * 1000.0),
        );
        if let (Some(first), Some(last)) = (arrived.iter().min(), arrived.iter().max()) {
            spreads.push((*last - *first).as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        while rx.try_recv().is_ok() {}
    }
    latencies.sort_by(f64::total_cmp);
    spreads.sort_by(f64::total_cmp);
    let spread = percentile(&spreads, 0.5);
    println!(
        "{clients} clients × {rounds} events: latency p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms, max {:.0} ms; {missed} updates missing after 5 s",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.95),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "fan-out: median spread between the first and the last client's frame {:.0} ms, so about {:.0} frames/s from one push",
        spread * 1000.0,
        clients as f64 / spread.max(1e-3)
    );
    cloud.stop().await;
    let _ = std::fs::remove_dir_all(state);
    Ok(())
}
