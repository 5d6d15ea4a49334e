//! `/api/v1/metric-definitions`: a tenant's definitions of its metrics
//! ([`pulse_shared::definitions`]) — unit, description, default aggregation, the value range
//! ingest enforces, or the two metrics a derived one combines.
//!
//! Every role may read them (the dashboard labels charts with them); only admins create
//! (`POST`, 409 if the name is taken), replace (`PUT /{name}`) or delete them. A tenant keeps
//! at most [`MAX_DEFINITIONS`].

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use pulse_shared::config::ClaimNames;
use pulse_shared::definitions::{self, MAX_DEFINITIONS};
use pulse_shared::http::{HttpHandler, empty, json, json_body};
use pulse_shared::identity::{Caller, Role};
use pulse_shared::selfmon::{RequestRecorder, serve_recorded};
use pulse_shared::store::app::DynamoApp;
use pulse_shared::store::{DefinitionStore, StoreError};
use pulse_shared::{ApiError, Config};
use std::sync::Arc;

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
    .recording(pulse_shared::selfmon::recorder(config, aws))
}

fn unavailable(e: StoreError) -> ApiError {
    ApiError::Unavailable {
        detail: "metric definitions are unavailable".into(),
        source: Some(Box::new(e)),
    }
}

impl<S: DefinitionStore> Definitions<S> {
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
        let all = || async { self.store.definitions(tenant).await.map_err(unavailable) };
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
                self.store
                    .put_definition(tenant, &def)
                    .await
                    .map_err(unavailable)?;
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
                self.store
                    .put_definition(tenant, &def)
                    .await
                    .map_err(unavailable)?;
                Ok(json(StatusCode::OK, &def))
            }
            (Method::DELETE, Some(name)) => {
                caller.require(Role::Admin)?;
                if self
                    .store
                    .delete_definition(tenant, &name)
                    .await
                    .map_err(unavailable)?
                {
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

impl<S: DefinitionStore + 'static> HttpHandler for Definitions<S> {
    async fn handle(&self, req: Request) -> Result<Response<Body>, lambda_http::Error> {
        serve_recorded(req, self.recorder.as_ref(), |req| self.respond(req)).await
    }
}
