//! Structured logging: one JSON object a line, with the fields of the current span (the
//! request's `correlation_id` among them), filtered by `RUST_LOG` or Lambda's
//! `AWS_LAMBDA_LOG_LEVEL`.

use tracing_subscriber::EnvFilter;

/// Installs the JSON log subscriber. Call once, first thing in `main`; later calls do nothing.
pub fn init() {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .or_else(|| std::env::var("AWS_LAMBDA_LOG_LEVEL").ok())
        .map(|level| EnvFilter::new(level.to_lowercase()))
        .unwrap_or_else(|| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .with_target(false)
        .try_init();
}
