//! `GET /api/v1/health`: public liveness. Reports the version, the build, and whether each
//! table is reachable; any unreachable table makes the answer 503 so load balancers and
//! uptime checks see it.

use futures::future::join_all;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use pulse_core::config::Tables;
use pulse_core::{ApiError, Config};
use pulse_http::{HttpHandler, json, serve};
use pulse_store::dynamo::DynamoStore;
use pulse_store::{StoreError, TableProbe};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// How long one table may take to answer before it counts as unreachable.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The health endpoint with its dependencies.
#[derive(Debug)]
pub struct Health<P> {
    probe: P,
    tables: Tables,
    stage: String,
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
pub fn wire(config: &Config, aws: &aws_config::SdkConfig) -> Health<DynamoStore> {
    Health::new(DynamoStore::new(aws), config)
}

impl<P: TableProbe> Health<P> {
    pub fn new(probe: P, config: &Config) -> Self {
        Self {
            probe,
            tables: config.tables.clone(),
            stage: config.stage.clone(),
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

    async fn respond(&self) -> Result<Response<Body>, ApiError> {
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

impl<P: TableProbe + 'static> HttpHandler for Health<P> {
    async fn handle(&self, req: Request) -> Result<Response<Body>, lambda_http::Error> {
        serve(req, |_req| self.respond()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;

    /// Answers for each table from a fixed list; used to drive the handler in-process.
    struct Probe(Vec<(&'static str, Option<StoreError>)>);

    #[async_trait]
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
            &config(),
        );
        // When health is asked
        let res = health.handle(Request::default()).await.expect("response");
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
            &config(),
        );
        let res = health.handle(Request::default()).await.expect("response");
        assert_eq!(res.status(), 503);
        let v = body(&res);
        assert_eq!(v["status"], "unhealthy");
        assert_eq!(v["tables"]["metrics"]["status"], "unreachable");
        assert_eq!(v["tables"]["metrics"]["reason"], "table not found");
        assert_eq!(v["tables"]["events"]["status"], "ok");
    }

    #[tokio::test(start_paused = true)]
    async fn a_table_that_never_answers_times_out_as_unreachable() {
        let health = Health::new(Probe(vec![("ev", None), ("me", None)]), &config());
        let report = health.report().await;
        assert_eq!(report.status, "unhealthy");
        assert_eq!(report.tables["app"].reason.as_deref(), Some("timed out"));
    }
}
