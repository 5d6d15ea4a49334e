//! cold-start: how fast each function's release binary answers its first invocation.
//!
//! For each binary named on the command line it serves a minimal Lambda Runtime API on
//! loopback (the `next` / `response` endpoints, the one event from `events/<binary>.json`) and,
//! on the same port, a DynamoDB endpoint that answers at once, so the figure is the function's
//! own start-up and first request, not the emulator's. It starts the process, takes the time
//! from spawn to the arrival of its response, reads its peak RSS (VmHWM) and kills it; it
//! repeats `COLD_START_RUNS` times (default 20) and prints a Markdown table of medians.
//!
//! Usage: `make bench-cold-start`

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// One invocation in flight: the event to hand out once, and where to report the response.
#[derive(Default)]
struct Slot {
    event: Option<String>,
    done: Option<oneshot::Sender<(Instant, String)>>,
}

type Shared = Arc<Mutex<Slot>>;

async fn next(State(slot): State<Shared>) -> axum::response::Response {
    let event = slot.lock().ok().and_then(|mut s| s.event.take());
    match event {
        Some(body) => {
            let mut headers = HeaderMap::new();
            headers.insert(
                "lambda-runtime-aws-request-id",
                HeaderValue::from_static("bench-1"),
            );
            headers.insert(
                "lambda-runtime-deadline-ms",
                HeaderValue::from_static("4102444800000"),
            );
            headers.insert(
                "lambda-runtime-invoked-function-arn",
                HeaderValue::from_static("arn:aws:lambda:us-east-1:123456789012:function:bench"),
            );
            headers.insert(
                "lambda-runtime-trace-id",
                HeaderValue::from_static("Root=1-bench"),
            );
            (StatusCode::OK, headers, body).into_response()
        }
        // The runtime polls again after answering; keep it waiting until it is killed.
        None => std::future::pending().await,
    }
}

async fn respond(
    State(slot): State<Shared>,
    UrlPath(_id): UrlPath<String>,
    body: String,
) -> StatusCode {
    let at = Instant::now();
    if let Some(tx) = slot.lock().ok().and_then(|mut s| s.done.take()) {
        let _ = tx.send((at, body));
    }
    StatusCode::ACCEPTED
}

async fn error(State(slot): State<Shared>, body: String) -> StatusCode {
    if let Some(tx) = slot.lock().ok().and_then(|mut s| s.done.take()) {
        let _ = tx.send((Instant::now(), format!("ERROR {body}")));
    }
    StatusCode::ACCEPTED
}

/// DynamoDB answered at once: an active table for DescribeTable (health probes), a stored
/// ingest key for GetItem (the authorizer's lookup), and an empty success for the rest.
async fn dynamodb(headers: HeaderMap) -> impl IntoResponse {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let body = if target.ends_with(".GetItem") {
        r#"{"Item":{"key_id":{"S":"01234567"},"tenant":{"S":"demo"},"name":{"S":"bench"},"scopes":{"SS":["ingest"]}}}"#
    } else {
        r#"{"Table":{"TableName":"t","TableStatus":"ACTIVE"}}"#
    };
    ([("content-type", "application/x-amz-json-1.0")], body)
}

struct Run {
    millis: f64,
    peak_rss_kb: u64,
}

fn peak_rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

#[allow(clippy::print_stdout)]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = pulse_local::default_root();
    let runs: usize = std::env::var("COLD_START_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let mut args = std::env::args();
    args.next(); // the program's own name
    let binaries: Vec<String> = args.collect();
    if binaries.is_empty() {
        return Err("name the function binaries to measure, e.g. api-health api-me".into());
    }

    let slot: Shared = Arc::default();
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(respond),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(error))
        .route("/", post(dynamodb))
        .with_state(slot.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });

    println!(
        "| function | cold start p50 (ms) | min | max | peak RSS p50 (MB) | stripped binary (MB) |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    for binary in &binaries {
        let exe: PathBuf = root.join("target/release").join(binary);
        let size = std::fs::metadata(&exe)
            .map_err(|e| {
                format!(
                    "{}: {e}; build it with cargo build --release -p {binary}",
                    exe.display()
                )
            })?
            .len();
        let event = std::fs::read_to_string(root.join("events").join(format!("{binary}.json")))?;
        let mut results = Vec::new();
        for _ in 0..runs {
            let (tx, rx) = oneshot::channel();
            if let Ok(mut s) = slot.lock() {
                s.event = Some(event.clone());
                s.done = Some(tx);
            }
            let started = Instant::now();
            let mut child = tokio::process::Command::new(&exe)
                .env_clear()
                .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
                .env("AWS_LAMBDA_FUNCTION_NAME", binary)
                .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
                .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
                .env("AWS_LAMBDA_LOG_LEVEL", "INFO")
                .env("AWS_REGION", "us-east-1")
                .env("AWS_ACCESS_KEY_ID", "bench")
                .env("AWS_SECRET_ACCESS_KEY", "bench")
                .env("AWS_ENDPOINT_URL", format!("http://{addr}"))
                .env("EVENTS_TABLE", "events")
                .env("METRICS_TABLE", "metrics")
                .env("APP_TABLE", "app")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()?;
            let (at, body) = tokio::time::timeout(Duration::from_secs(10), rx)
                .await
                .map_err(|_| format!("{binary} did not answer within 10 s"))??;
            let rss = child.id().map(peak_rss_kb).unwrap_or(0);
            let _ = child.kill().await;
            let answer = serde_json::from_str::<serde_json::Value>(&body).ok();
            let status = answer
                .as_ref()
                .and_then(|v| v.get("statusCode").and_then(serde_json::Value::as_u64));
            // An HTTP function must answer 2xx (or the status named for it in
            // COLD_START_EXPECT, e.g. `api-insights:404`: the fake table has no data to
            // forecast); an authorizer must allow.
            let allowed = answer
                .as_ref()
                .and_then(|v| v.get("isAuthorized").and_then(serde_json::Value::as_bool));
            let expected = std::env::var("COLD_START_EXPECT").ok().and_then(|e| {
                e.split(',')
                    .filter_map(|p| p.split_once(':'))
                    .find(|(b, _)| *b == binary)
                    .and_then(|(_, s)| s.parse::<u64>().ok())
            });
            let ok = match expected {
                Some(e) => status == Some(e),
                None => status.is_some_and(|s| (200..300).contains(&s)) || allowed == Some(true),
            };
            if !ok {
                return Err(format!("{binary} answered {body}, not a 2xx or an allow").into());
            }
            results.push(Run {
                millis: at.duration_since(started).as_secs_f64() * 1e3,
                peak_rss_kb: rss,
            });
        }
        let times: Vec<f64> = results.iter().map(|r| r.millis).collect();
        let min = times.iter().copied().fold(f64::INFINITY, f64::min);
        let max = times.iter().copied().fold(0.0, f64::max);
        let rss = median(results.iter().map(|r| r.peak_rss_kb as f64).collect()) / 1024.0;
        println!(
            "| {binary} | {:.1} | {min:.1} | {max:.1} | {rss:.1} | {:.2} |",
            median(times),
            size as f64 / 1_048_576.0
        );
    }
    println!(
        "\n{runs} runs each; process spawn to the runtime's first response, loopback Runtime API."
    );
    Ok(())
}
