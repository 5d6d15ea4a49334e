//! `/api/v1/metric-definitions`: a tenant's definitions of its metrics
//! ([`pulse_metrics::definitions`]) — unit, description, default aggregation, the value range
//! ingest enforces, or the two metrics a derived one combines.
//!
//! Every role may read them (the dashboard labels charts with them); only admins create
//! (`POST`, 409 if the name is taken), replace (`PUT /{name}`) or delete them. A tenant keeps
//! at most [`MAX_DEFINITIONS`].

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use pulse_core::config::ClaimNames;
use pulse_core::identity::{Caller, Role};
use pulse_core::{ApiError, Config};
use pulse_http::FromRequest;
use pulse_http::selfmon::{RequestRecorder, serve_recorded};
use pulse_http::{HttpHandler, empty, json, json_body};
use pulse_metrics::definitions::{self, MAX_DEFINITIONS};
use pulse_store::app::DynamoApp;
use pulse_store::{DefinitionStore, DefinitionWriter};
use std::sync::Arc;

/// The routes this crate serves (template.yaml routes them to this function, and a test
/// checks the two agree).
pub const ROUTES: &[&str] = &[
    "GET /api/v1/metric-definitions",
    "POST /api/v1/metric-definitions",
    "GET /api/v1/metric-definitions/{name}",
    "PUT /api/v1/metric-definitions/{name}",
    "DELETE /api/v1/metric-definitions/{name}",
];

/// The endpoint with its store.
#[derive(Debug)]
pub struct Definitions<S> {
    /// Records each request as an `api_request` event of its tenant (wired on AWS).
    recorder: Option<Arc<dyn RequestRecorder>>,
    store: S,
    claims: ClaimNames,
}

/// Builds the handler from the function's configuration, as `main` and the local cloud do.
pub fn wire(config: &Config, aws: &aws_config::SdkConfig) -> Definitions<DynamoApp> {
    Definitions::new(
        DynamoApp::new(aws, &config.tables.app),
        config.claims.clone(),
    )
    .recording(pulse_http::selfmon::recorder(config, aws))
}

impl<S: DefinitionStore + DefinitionWriter> Definitions<S> {
    pub fn new(store: S, claims: ClaimNames) -> Self {
        Self {
            store,
            recorder: None,
            claims,
        }
    }

    /// The same endpoint recording its requests with `recorder`.
    pub fn recording(self, recorder: Arc<dyn RequestRecorder>) -> Self {
        Self {
            recorder: Some(recorder),
            ..self
        }
    }

    async fn respond(&self, req: Request) -> Result<Response<Body>, ApiError> {
        let caller = Caller::from_request(&req, &self.claims)?;
        let name = req
            .path_parameters_ref()
            .and_then(|p| p.first("name"))
            .map(str::to_owned);
        let tenant = &caller.tenant;
        let all = || async { self.store.definitions(tenant).await.map_err(ApiError::from) };
        match (req.method().clone(), name) {
            (Method::GET, None) => {
                let mut defs = all().await?;
                defs.sort_by(|a, b| a.name.cmp(&b.name));
                Ok(json(
                    StatusCode::OK,
                    &serde_json::json!({ "definitions": defs }),
                ))
            }
            (Method::GET, Some(name)) => {
                let def = all()
                    .await?
                    .into_iter()
                    .find(|d| d.name == name)
                    .ok_or_else(|| ApiError::NotFound(format!("no definition of {name}")))?;
                Ok(json(StatusCode::OK, &def))
            }
            (Method::POST, None) => {
                caller.require(Role::Admin)?;
                let def = definitions::parse(&json_body(&req)?, None)?;
                let defs = all().await?;
                if defs.iter().any(|d| d.name == def.name) {
                    return Err(ApiError::Conflict(format!(
                        "{} is already defined; PUT /api/v1/metric-definitions/{} replaces it",
                        def.name, def.name
                    )));
                }
                if defs.len() >= MAX_DEFINITIONS {
                    return Err(ApiError::Conflict(format!(
                        "a tenant keeps at most {MAX_DEFINITIONS} definitions"
                    )));
                }
                self.store.put_definition(tenant, &def).await?;
                tracing::info!(tenant = %tenant, metric = %def.name, "metric defined");
                Ok(json(StatusCode::CREATED, &def))
            }
            (Method::PUT, Some(name)) => {
                caller.require(Role::Admin)?;
                let def = definitions::parse(&json_body(&req)?, Some(&name))?;
                let defs = all().await?;
                if !defs.iter().any(|d| d.name == name) && defs.len() >= MAX_DEFINITIONS {
                    return Err(ApiError::Conflict(format!(
                        "a tenant keeps at most {MAX_DEFINITIONS} definitions"
                    )));
                }
                self.store.put_definition(tenant, &def).await?;
                Ok(json(StatusCode::OK, &def))
            }
            (Method::DELETE, Some(name)) => {
                caller.require(Role::Admin)?;
                if self.store.delete_definition(tenant, &name).await? {
                    Ok(empty(StatusCode::NO_CONTENT))
                } else {
                    Err(ApiError::NotFound(format!("no definition of {name}")))
                }
            }
            (method, _) => Err(ApiError::MethodNotAllowed(format!(
                "{method} is not supported here"
            ))),
        }
    }
}

impl<S: DefinitionStore + DefinitionWriter + 'static> HttpHandler for Definitions<S> {
    async fn handle(&self, req: Request) -> Result<Response<Body>, lambda_http::Error> {
        serve_recorded(req, self.recorder.as_ref(), |req| self.respond(req)).await
    }
}

#[cfg(test)]
mod tests {
    //! The one error path end to end: a DynamoDB endpoint that always throttles, the real
    //! adapter and SDK retry policy in front of it, and the handler's answer.

    use super::*;
    use axum::Router;
    use axum::http::StatusCode as FakeStatus;
    use axum::routing::post;
    use serde_json::json;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A fault-injecting DynamoDB endpoint: every call is a `ThrottlingException`, counted.
    async fn throttling_dynamodb() -> (String, Arc<AtomicU32>) {
        let calls = Arc::new(AtomicU32::new(0));
        let seen = calls.clone();
        let app = Router::new().route(
            "/",
            post(move || {
                let seen = seen.clone();
                async move {
                    seen.fetch_add(1, Ordering::SeqCst);
                    (
                        FakeStatus::BAD_REQUEST,
                        r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate of requests exceeds the allowed throughput."}"#,
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, calls)
    }

    fn request(tenant: &str) -> Request {
        let event = json!({
            "version": "2.0", "routeKey": "GET /api/v1/metric-definitions",
            "rawPath": "/api/v1/metric-definitions", "rawQueryString": "", "headers": {},
            "requestContext": {
                "accountId": "1", "apiId": "a", "domainName": "d", "requestId": "r",
                "routeKey": "GET /api/v1/metric-definitions", "stage": "$default",
                "time": "02/Dec/2026:10:00:00 +0000", "timeEpoch": 0,
                "http": {"method": "GET", "path": "/api/v1/metric-definitions", "protocol": "HTTP/1.1", "sourceIp": "192.0.2.1", "userAgent": "t"},
                "authorizer": {"jwt": {"claims": {"sub": "u", "custom:tenant": tenant, "cognito:groups": "[viewer]"}, "scopes": null}}
            },
            "isBase64Encoded": false
        });
        lambda_http::request::from_str(&event.to_string()).expect("HTTP API event")
    }

    #[tokio::test]
    async fn storage_throttling_past_the_retries_is_503_with_retry_after() {
        // Given the real DynamoDB adapter, with Pulse's retry policy, over an endpoint that
        // throttles every call
        let (url, calls) = throttling_dynamodb().await;
        let sdk = pulse_store::aws::at_endpoint(&url, "us-east-1").await;
        let handler = Definitions::new(DynamoApp::new(&sdk, "app"), ClaimNames::default());
        // When a viewer lists the tenant's definitions
        let res = handler
            .handle(request("throttled"))
            .await
            .expect("response");
        // Then each attempt the policy allows was made, with backoff, and the client is told
        // to come back: 503, a Retry-After, a problem+json of type throttled
        assert_eq!(calls.load(Ordering::SeqCst), pulse_store::aws::MAX_ATTEMPTS);
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            res.headers()["retry-after"],
            pulse_store::THROTTLED_RETRY_AFTER_SECS.to_string().as_str()
        );
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        let Body::Text(text) = res.body() else {
            panic!("a text body")
        };
        let problem: serde_json::Value = serde_json::from_str(text).expect("problem");
        assert_eq!(problem["type"], "urn:pulse:problem:throttled");
        assert_eq!(problem["status"], 503);
    }
}
