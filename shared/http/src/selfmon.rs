//! Pulse watching itself: every request to its own API becomes an `api_request` event of the
//! caller's tenant (route template, method, status, latency; tag `service=pulse`), so the
//! system health views work out of the box.
//!
//! The event is written after the response is computed, with a short deadline, and never
//! fails the request: an API call costs one more raw event write (the same as one event
//! sent). Requests without a tenant (refused credentials) are not recorded, and neither are
//! the public tracking beacons (they are the traffic, not the API).

use crate::FromRequest;
use async_trait::async_trait;
use lambda_http::{Request, Response};
use pulse_core::config::ClaimNames;
use pulse_core::identity::{Caller, TenantId};
use pulse_ingest::events::{Body, Event};
use pulse_store::EventWriter;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long recording may add to a request.
const RECORD_BUDGET: Duration = Duration::from_millis(250);

/// A request being recorded: who called which route.
#[derive(Debug, Clone)]
pub struct Started {
    tenant: TenantId,
    route: String,
    method: String,
    at: Instant,
    timestamp_ms: i64,
}

/// Records requests to Pulse's API.
#[async_trait]
pub trait RequestRecorder: Send + Sync + std::fmt::Debug {
    /// What to record of `req`, before it is handled; `None` for a caller without a tenant.
    fn start(&self, req: &Request) -> Option<Started>;
    /// Records the request once answered with `status`.
    async fn finish(&self, started: Started, status: u16);
}

/// The recorder writing `api_request` events through an [`EventWriter`].
#[derive(Debug)]
pub struct EventRecorder<W> {
    writer: W,
    claims: ClaimNames,
}

impl<W> EventRecorder<W> {
    pub fn new(writer: W, claims: ClaimNames) -> Self {
        Self { writer, claims }
    }
}

/// The event a request becomes.
pub fn event(started: &Started, status: u16, latency_ms: f64) -> Event {
    Event {
        id: uuid::Uuid::now_v7().to_string(),
        tenant: started.tenant.clone(),
        timestamp_ms: started.timestamp_ms,
        name: "api_request".to_owned(),
        tags: BTreeMap::from([("service".to_owned(), "pulse".to_owned())]),
        visitor: None,
        correlation_id: None,
        supplied_id: false,
        imported: false,
        body: Body::ApiRequest {
            route: started.route.clone(),
            method: started.method.clone(),
            status,
            latency_ms,
        },
    }
}

#[async_trait]
impl<W: EventWriter + std::fmt::Debug> RequestRecorder for EventRecorder<W> {
    fn start(&self, req: &Request) -> Option<Started> {
        let caller = Caller::from_request(req, &self.claims).ok()?;
        let key = crate::route_key(req);
        let (method, route) = key
            .split_once(' ')
            .map_or((req.method().as_str(), key.as_str()), |(m, r)| (m, r));
        Some(Started {
            tenant: caller.tenant,
            route: route.to_owned(),
            method: method.to_owned(),
            at: Instant::now(),
            timestamp_ms: chrono::Utc::now().timestamp_millis(),
        })
    }

    async fn finish(&self, started: Started, status: u16) {
        let latency_ms = started.at.elapsed().as_secs_f64() * 1e3;
        let e = event(&started, status, latency_ms);
        let deadline = tokio::time::Instant::now() + RECORD_BUDGET;
        if let Err(incomplete) = self.writer.write_events(&[e], deadline).await {
            tracing::warn!(error = ?incomplete.last_error, "the request was not recorded");
        }
    }
}

/// [`crate::serve`], recording the request with `recorder` when there is one.
pub async fn serve_recorded<F, Fut>(
    req: Request,
    recorder: Option<&Arc<dyn RequestRecorder>>,
    handler: F,
) -> Result<Response<lambda_http::Body>, lambda_http::Error>
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Result<Response<lambda_http::Body>, pulse_core::ApiError>>,
{
    let started = recorder.and_then(|r| r.start(&req));
    let response = crate::serve(req, handler).await?;
    if let (Some(r), Some(s)) = (recorder, started) {
        r.finish(s, response.status().as_u16()).await;
    }
    Ok(response)
}

/// The recorder a function's `wire` installs: `api_request` events into the Events table.
pub fn recorder(
    config: &pulse_core::Config,
    aws: &aws_config::SdkConfig,
) -> Arc<dyn RequestRecorder> {
    Arc::new(EventRecorder::new(
        pulse_store::events::DynamoEvents::new(
            aws,
            &config.tables.events,
            config.raw_retention_days,
        ),
        config.claims.clone(),
    ))
}
