//! The functions the local cloud can run, by cargo binary name, each invoked the way Lambda
//! invokes it: a JSON event in, a JSON result out.
//!
//! HTTP functions go through `lambda_http`'s own adapter, the code `lambda_http::run` uses on
//! AWS, so the event parsing and response encoding the local cloud exercises are the deployed
//! ones. A binary of template.yaml missing from [`wire`] is an error at start.

use futures::FutureExt;
use futures::future::BoxFuture;
use lambda_http::request::LambdaRequest;
use lambda_http::{Adapter, Context, LambdaEvent, Service, service_fn};
use pulse_core::Config;
use pulse_http::HttpHandler;
use serde_json::Value;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use thiserror::Error;

/// Why an invocation failed, as Lambda would report it.
#[derive(Debug, Error)]
pub enum InvokeError {
    #[error("the event does not fit the function: {0}")]
    BadEvent(serde_json::Error),
    #[error("the function returned an error: {0}")]
    Function(String),
    #[error("the function panicked")]
    Panicked,
    #[error("the function's result is not JSON: {0}")]
    BadResult(serde_json::Error),
    #[error("the function is at its reserved concurrency")]
    Throttled,
}

/// `invoke` limited to `limit` invocations at once, as Lambda's reserved concurrency limits a
/// function: one past the limit is throttled, not queued.
pub fn reserved(invoke: Invoke, limit: u32) -> Invoke {
    let permits = Arc::new(tokio::sync::Semaphore::new(limit as usize));
    Arc::new(move |payload: Value| {
        let (invoke, permits) = (invoke.clone(), permits.clone());
        async move {
            let _permit = permits
                .try_acquire_owned()
                .map_err(|_| InvokeError::Throttled)?;
            invoke(payload).await
        }
        .boxed()
    })
}

/// A function ready to invoke.
pub type Invoke =
    Arc<dyn Fn(Value) -> BoxFuture<'static, Result<Value, InvokeError>> + Send + Sync>;

/// Binaries the local cloud knows how to build in-process.
pub const BINARIES: &[&str] = &[
    "api-health",
    "api-me",
    "api-ingest",
    "api-track",
    "api-sites",
    "api-keys",
    "authorizer",
    "stream-aggregator",
    "job-rollup",
    "api-query",
    "api-metric-definitions",
    "ws",
];

/// Builds the function `binary` with its configuration, as its `main.rs` does on AWS.
pub fn wire(binary: &str, config: &Config, aws: &aws_config::SdkConfig) -> Option<Invoke> {
    match binary {
        "api-health" => Some(http(api_health::wire(config, aws))),
        "api-me" => Some(http(api_me::wire(config))),
        "api-ingest" => Some(http(api_ingest::wire(config, aws))),
        "api-track" => Some(http(api_track::wire(config, aws))),
        "api-sites" => Some(http(api_sites::wire(config, aws))),
        "api-keys" => Some(http(api_keys::wire(config, aws))),
        "api-query" => Some(http(api_query::wire(config, aws))),
        "api-metric-definitions" => Some(http(api_metric_definitions::wire(config, aws))),
        "authorizer" => {
            let authorizer = Arc::new(authorizer::wire(config, aws));
            Some(fallible(move |req: authorizer::Request| {
                let authorizer = authorizer.clone();
                async move { authorizer.handle(req).await }
            }))
        }
        "ws" => {
            let live = Arc::new(ws::wire(config, aws));
            Some(fallible(move |event: ws::WsEvent| {
                let live = live.clone();
                async move { live.handle(event).await }
            }))
        }
        "stream-aggregator" => {
            let aggregator = Arc::new(stream_aggregator::wire(config, aws));
            Some(event(move |trigger| {
                let aggregator = aggregator.clone();
                async move { aggregator.handle_any(trigger).await }
            }))
        }
        "job-rollup" => {
            let job = Arc::new(job_rollup::wire(config, aws));
            Some(fallible(move |_: Value| {
                let job = job.clone();
                async move { job.handle().await }
            }))
        }
        _ => None,
    }
}

/// A function of a typed event (a stream batch, a schedule) behind Lambda's invoke contract:
/// the JSON event is deserialised as `lambda_runtime` would, and the result serialised back.
pub fn event<E, R, F, Fut>(handler: F) -> Invoke
where
    E: serde::de::DeserializeOwned + Send + 'static,
    R: serde::Serialize,
    F: Fn(E) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = R> + Send + 'static,
{
    let handler = Arc::new(handler);
    Arc::new(move |payload: Value| {
        let handler = handler.clone();
        async move {
            let event: E = serde_json::from_value(payload).map_err(InvokeError::BadEvent)?;
            let result = AssertUnwindSafe(handler(event))
                .catch_unwind()
                .await
                .map_err(|_| InvokeError::Panicked)?;
            serde_json::to_value(result).map_err(InvokeError::BadResult)
        }
        .boxed()
    })
}

/// As [`event`], for a handler that can fail: its error becomes Lambda's function error,
/// whose message callers such as API Gateway read (`Unauthorized` from an authorizer).
pub fn fallible<E, R, Er, F, Fut>(handler: F) -> Invoke
where
    E: serde::de::DeserializeOwned + Send + 'static,
    R: serde::Serialize + Send + 'static,
    Er: std::fmt::Display + Send + 'static,
    F: Fn(E) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<R, Er>> + Send + 'static,
{
    let handler = Arc::new(handler);
    Arc::new(move |payload: Value| {
        let handler = handler.clone();
        async move {
            let event: E = serde_json::from_value(payload).map_err(InvokeError::BadEvent)?;
            let outcome = AssertUnwindSafe(handler(event))
                .catch_unwind()
                .await
                .map_err(|_| InvokeError::Panicked)?;
            let result = outcome.map_err(|e| InvokeError::Function(e.to_string()))?;
            serde_json::to_value(result).map_err(InvokeError::BadResult)
        }
        .boxed()
    })
}

/// An HTTP API function behind Lambda's invoke contract.
pub fn http<H: HttpHandler>(handler: H) -> Invoke {
    let handler = Arc::new(handler);
    Arc::new(move |event: Value| {
        let handler = handler.clone();
        async move {
            let request: LambdaRequest =
                serde_json::from_value(event).map_err(InvokeError::BadEvent)?;
            let mut context = Context::default();
            context.request_id = uuid::Uuid::new_v4().to_string();
            let mut adapter = Adapter::from(service_fn(|req| handler.handle(req)));
            let outcome = AssertUnwindSafe(adapter.call(LambdaEvent::new(request, context)))
                .catch_unwind()
                .await
                .map_err(|_| InvokeError::Panicked)?;
            let response = outcome.map_err(|e| InvokeError::Function(e.to_string()))?;
            serde_json::to_value(response).map_err(InvokeError::BadResult)
        }
        .boxed()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_function_at_its_reserved_concurrency_is_throttled_not_queued() {
        // Given a function that takes a while, limited to one invocation at a time
        let slow: Invoke = Arc::new(|v: Value| {
            async move {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                Ok(v)
            }
            .boxed()
        });
        let limited = reserved(slow, 1);
        // When a second invocation arrives during the first
        let first = tokio::spawn(limited(Value::from(1)));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let second = limited(Value::from(2)).await;
        // Then it is throttled, the first completes, and a later one runs
        assert!(matches!(second, Err(InvokeError::Throttled)));
        assert_eq!(first.await.expect("joined").expect("ran"), Value::from(1));
        assert_eq!(limited(Value::from(3)).await.expect("ran"), Value::from(3));
    }
}
