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
    "job-retrain",
    "job-detect",
    "api-query",
    "api-metric-definitions",
    "api-insights",
    "ws",
];

/// The HTTP routes the crate of `binary` declares it serves (`None`: not an HTTP function).
pub fn routes_of(binary: &str) -> Option<&'static [&'static str]> {
    Some(match binary {
        "api-health" => api_health::ROUTES,
        "api-me" => api_me::ROUTES,
        "api-ingest" => api_ingest::ROUTES,
        "api-track" => api_track::ROUTES,
        "api-sites" => api_sites::ROUTES,
        "api-keys" => api_keys::ROUTES,
        "api-query" => api_query::ROUTES,
        "api-metric-definitions" => api_metric_definitions::ROUTES,
        "api-insights" => api_insights::ROUTES,
        _ => return None,
    })
}

/// The crate a route belongs in by its name: `/api/v1/{area}/…` in `api-{area}` when there is
/// such a crate; otherwise the ingest API for what arrives, the read API for what is read.
pub fn crate_named_for(route_key: &str) -> Option<&'static str> {
    let path = route_key.split_once(' ')?.1;
    if path == "/v1/metrics" {
        return Some("api-ingest");
    }
    let area = path.strip_prefix("/api/v1/")?.split('/').next()?;
    // `/api/v1/api-keys` is `api-keys`, not `api-api-keys`.
    let own = if area.starts_with("api-") {
        area.to_owned()
    } else {
        format!("api-{area}")
    };
    if let Some(name) = BINARIES.iter().find(|b| **b == own) {
        return Some(name);
    }
    match area {
        "events" | "imports" => Some("api-ingest"),
        "metrics" | "web" | "business" | "ml" | "dashboard" | "funnels" | "settings" => {
            Some("api-query")
        }
        "predictions" | "anomalies" => Some("api-insights"),
        _ => None,
    }
}

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
        "api-insights" => Some(http(api_insights::wire(config, aws))),
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
        "job-detect" => {
            let job = Arc::new(job_detect::wire(config, aws));
            Some(event(move |batch: job_detect::QueueBatch| {
                let job = job.clone();
                async move { job.handle(batch).await }
            }))
        }
        "job-retrain" => {
            let job = Arc::new(job_retrain::wire(config, aws));
            Some(fallible(move |trigger: job_retrain::Trigger| {
                let job = job.clone();
                async move { job.handle(trigger).await }
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

    #[test]
    fn every_route_is_served_by_the_crate_named_for_it_and_every_declared_route_exists() {
        // Given template.yaml's routes and each function crate's declared routes
        let model = crate::template::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml"),
            &Default::default(),
        )
        .expect("template");
        let mut routed: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for route in &model.routes {
            let binary = &model.functions[&route.function].binary;
            let key = route.key();
            // Then each route goes to a crate that declares it, and that crate is the one
            // named for it
            let declared = routes_of(binary)
                .unwrap_or_else(|| panic!("{key} goes to {binary}, which serves no HTTP routes"));
            assert!(
                declared.contains(&key.as_str()),
                "{key} goes to {binary}, whose ROUTES do not list it (a route with no handler)"
            );
            assert_eq!(
                crate_named_for(&key),
                Some(binary.as_str()),
                "{key} is served by {binary}, not by the crate named for it"
            );
            routed.entry(binary.clone()).or_default().push(key);
        }
        // And no crate declares a route the template does not send it (a handler with no route)
        for binary in BINARIES {
            for declared in routes_of(binary).unwrap_or_default() {
                assert!(
                    routed
                        .get(*binary)
                        .is_some_and(|keys| keys.iter().any(|k| k == declared)),
                    "{binary} declares {declared}, which template.yaml does not route to it"
                );
            }
        }
    }

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
