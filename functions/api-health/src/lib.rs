//! Pulse's health:
//! - `GET /api/v1/health`: public liveness. Reports the version, the build, and whether each
//!   table is reachable; any unreachable table makes the answer 503 so load balancers and
//!   uptime checks see it.
//! - `GET /api/v1/health/{view}` (admin): the tenant's API health views — requests, error
//!   rate, latency percentiles by route ([`pulse_views`], area `health`).

use futures::future::join_all;
use lambda_http::RequestExt;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use pulse_core::config::{ClaimNames, Tables};
use pulse_core::identity::Caller;
use pulse_core::{ApiError, Config};
use pulse_http::selfmon::{RequestRecorder, serve_recorded};
use pulse_http::{FromRequest, HttpHandler, json};
use pulse_metrics::rollup::Retention;
use pulse_store::dynamo::DynamoStore;
use pulse_store::metrics::DynamoMetrics;
use pulse_store::{BreakdownReader, RollupBuckets, SeriesCatalog, StoreError, TableProbe, Totals};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// How long one table may take to answer before it counts as unreachable.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The routes this crate serves (template.yaml routes them to this function, and a test
/// checks the two agree).
pub const ROUTES: &[&str] = &["GET /api/v1/health", "GET /api/v1/health/{view}"];

/// The health endpoints with their dependencies: a table probe, and the metrics the views
/// read.
#[derive(Debug)]
pub struct Health<P, S> {
    probe: P,
    metrics: S,
    tables: Tables,
    stage: String,
    claims: ClaimNames,
    retention: Retention,
    clock: fn() -> i64,
    /// Records each request as an `api_request` event of its tenant (wired on AWS).
    recorder: Option<Arc<dyn RequestRecorder>>,
}

/// The health document.
#[derive(Debug, Serialize, PartialEq)]
pub struct Report {
    /// `ok` or `unhealthy`.
    pub status: &'static str,
    pub version: &'static str,
    pub build: &'static str,
    pub stage: String,
    /// Each table by its logical name: `ok`, or why it is not.
    pub tables: BTreeMap<&'static str, TableHealth>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct TableHealth {
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Builds the handler from the function's configuration, as `main` and the local cloud do.
pub fn wire(config: &Config, aws: &aws_config::SdkConfig) -> Health<DynamoStore, DynamoMetrics> {
    Health::new(
        DynamoStore::new(aws),
        DynamoMetrics::new(aws, &config.tables.metrics, config.retention),
        config,
    )
    .recording(pulse_http::selfmon::recorder(config, aws))
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

impl<P: TableProbe, S: RollupBuckets + SeriesCatalog + Totals + BreakdownReader> Health<P, S> {
    pub fn new(probe: P, metrics: S, config: &Config) -> Self {
        Self {
            probe,
            metrics,
            tables: config.tables.clone(),
            stage: config.stage.clone(),
            claims: config.claims.clone(),
            retention: config.retention,
            clock: now_secs,
            recorder: None,
        }
    }

    /// The same endpoints recording their requests with `recorder`.
    pub fn recording(self, recorder: Arc<dyn RequestRecorder>) -> Self {
        Self {
            recorder: Some(recorder),
            ..self
        }
    }

    /// Probes every table concurrently.
    pub async fn report(&self) -> Report {
        let probes = self.tables.named().map(|(name, table)| async move {
            let outcome = tokio::time::timeout(PROBE_TIMEOUT, self.probe.probe(table)).await;
            let health = match outcome {
                Ok(Ok(())) => TableHealth {
                    status: "ok",
                    reason: None,
                },
                Ok(Err(err)) => {
                    tracing::warn!(table = name, error = %err, source = ?std::error::Error::source(&err), "table probe failed");
                    TableHealth {
                        status: "unreachable",
                        reason: Some(reason(&err).to_owned()),
                    }
                }
                Err(_) => TableHealth {
                    status: "unreachable",
                    reason: Some("timed out".to_owned()),
                },
            };
            (name, health)
        });
        let tables: BTreeMap<_, _> = join_all(probes).await.into_iter().collect();
        let healthy = tables.values().all(|t| t.status == "ok");
        Report {
            status: if healthy { "ok" } else { "unhealthy" },
            version: env!("CARGO_PKG_VERSION"),
            build: env!("PULSE_BUILD"),
            stage: self.stage.clone(),
            tables,
        }
    }

    async fn respond(&self, req: Request) -> Result<Response<Body>, ApiError> {
        let path = req.uri().path().trim_end_matches('/').to_owned();
        match path.split('/').collect::<Vec<_>>().as_slice() {
            ["", "api", "v1", "health"] => self.liveness().await,
            ["", "api", "v1", "health", view] => self.view(&req, view).await,
            _ => Err(ApiError::NotFound(format!("no route {path}"))),
        }
    }

    /// `GET /api/v1/health/{view}`: one of the tenant's health views.
    async fn view(&self, req: &Request, view: &str) -> Result<Response<Body>, ApiError> {
        let caller = Caller::from_request(req, &self.claims)?;
        let params = req
            .query_string_parameters_ref()
            .map(|p| {
                p.iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let answer = pulse_views::answer(
            &self.metrics,
            &caller,
            ("health", view),
            &params,
            (self.clock)(),
            &self.retention,
            &[],
        )
        .await?;
        tracing::info!(tenant = %caller.tenant, area = "health", view, "view answered");
        Ok(json(StatusCode::OK, &answer))
    }

    async fn liveness(&self) -> Result<Response<Body>, ApiError> {
        let report = self.report().await;
        let status = if report.status == "ok" {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        let mut response = json(status, &report);
        response.headers_mut().insert(
            lambda_http::http::header::CACHE_CONTROL,
            lambda_http::http::HeaderValue::from_static("no-store"),
        );
        Ok(response)
    }
}

/// A public reason: says what kind of failure without naming physical resources.
fn reason(err: &StoreError) -> &'static str {
    match err {
        StoreError::TableNotFound(_) => "table not found",
        StoreError::TableNotActive { .. } => "table not active",
        StoreError::Throttled(_) => "throttled",
        StoreError::Unavailable(_) | StoreError::Conflict | StoreError::Rejected(_) => {
            "storage unavailable"
        }
    }
}

impl<P, S> HttpHandler for Health<P, S>
where
    P: TableProbe + 'static,
    S: RollupBuckets + SeriesCatalog + Totals + BreakdownReader + 'static,
{
    async fn handle(&self, req: Request) -> Result<Response<Body>, lambda_http::Error> {
        serve_recorded(req, self.recorder.as_ref(), |req| self.respond(req)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers for each table from a fixed list; used to drive the handler in-process.
    struct Probe(Vec<(&'static str, Option<StoreError>)>);

    impl TableProbe for Probe {
        async fn probe(&self, table: &str) -> Result<(), StoreError> {
            match self.0.iter().find(|(t, _)| *t == table) {
                Some((_, None)) => Ok(()),
                Some((_, Some(StoreError::TableNotFound(t)))) => {
                    Err(StoreError::TableNotFound(t.clone()))
                }
                Some((_, Some(_))) => Err(StoreError::Unavailable("down".into())),
                None => std::future::pending().await,
            }
        }
    }

    /// Metrics with no data: the liveness tests never read them.
    struct NoMetrics;

    impl RollupBuckets for NoMetrics {
        async fn buckets(
            &self,
            _: &pulse_metrics::aggregate::SeriesKey,
            _: pulse_metrics::rollup::Resolution,
            _: i64,
            _: i64,
        ) -> Result<Vec<(i64, pulse_metrics::aggregate::Bucket)>, StoreError> {
            Ok(Vec::new())
        }
        async fn was_sealed(
            &self,
            _: &pulse_core::identity::TenantId,
            _: i64,
        ) -> Result<bool, StoreError> {
            Ok(false)
        }
    }

    impl SeriesCatalog for NoMetrics {
        async fn series(
            &self,
            _: &pulse_core::identity::TenantId,
            _: &str,
        ) -> Result<Vec<(String, BTreeMap<String, String>)>, StoreError> {
            Ok(Vec::new())
        }
    }

    impl BreakdownReader for NoMetrics {
        async fn breakdowns(
            &self,
            _: &pulse_core::identity::TenantId,
            _: pulse_metrics::rollup::Resolution,
            _: i64,
            _: i64,
        ) -> Result<Vec<(i64, pulse_metrics::breakdown::Kind, Vec<u8>)>, StoreError> {
            Ok(Vec::new())
        }
    }

    impl Totals for NoMetrics {
        async fn totals(
            &self,
            _: &pulse_core::identity::TenantId,
            _: pulse_metrics::rollup::Resolution,
            _: i64,
            _: i64,
            _: &[&str],
        ) -> Result<Vec<(String, i64, pulse_metrics::aggregate::Bucket)>, StoreError> {
            Ok(Vec::new())
        }
    }

    fn config() -> Config {
        Config {
            stage: "test".into(),
            ..Config::with_tables(Tables {
                events: "ev".into(),
                metrics: "me".into(),
                app: "ap".into(),
            })
        }
    }

    fn liveness_request() -> Request {
        let mut req = Request::default();
        *req.uri_mut() = "/api/v1/health".parse().expect("uri");
        req
    }

    fn body(res: &Response<Body>) -> serde_json::Value {
        match res.body() {
            Body::Text(t) => serde_json::from_str(t).expect("json"),
            other => panic!("unexpected body {other:?}"),
        }
    }

    #[tokio::test]
    async fn all_tables_reachable_is_200_ok() {
        // Given three reachable tables
        let health = Health::new(
            Probe(vec![("ev", None), ("me", None), ("ap", None)]),
            NoMetrics,
            &config(),
        );
        // When health is asked
        let res = health.handle(liveness_request()).await.expect("response");
        // Then it is 200 with every table ok, the version and a build id
        assert_eq!(res.status(), 200);
        let v = body(&res);
        assert_eq!(v["status"], "ok");
        assert_eq!(v["tables"]["metrics"]["status"], "ok");
        assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
        assert!(v["build"].as_str().is_some_and(|b| !b.is_empty()));
        assert_eq!(res.headers()["cache-control"], "no-store");
    }

    #[tokio::test]
    async fn a_missing_table_is_503_unhealthy_naming_the_table() {
        let health = Health::new(
            Probe(vec![
                ("ev", None),
                ("me", Some(StoreError::TableNotFound("me".into()))),
                ("ap", None),
            ]),
            NoMetrics,
            &config(),
        );
        let res = health.handle(liveness_request()).await.expect("response");
        assert_eq!(res.status(), 503);
        let v = body(&res);
        assert_eq!(v["status"], "unhealthy");
        assert_eq!(v["tables"]["metrics"]["status"], "unreachable");
        assert_eq!(v["tables"]["metrics"]["reason"], "table not found");
        assert_eq!(v["tables"]["events"]["status"], "ok");
    }

    #[tokio::test(start_paused = true)]
    async fn a_table_that_never_answers_times_out_as_unreachable() {
        let health = Health::new(
            Probe(vec![("ev", None), ("me", None)]),
            NoMetrics,
            &config(),
        );
        let report = health.report().await;
        assert_eq!(report.status, "unhealthy");
        assert_eq!(report.tables["app"].reason.as_deref(), Some("timed out"));
    }
}
