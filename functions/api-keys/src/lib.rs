//! `/api/v1/api-keys` (admin): keys for server-side senders of `POST /api/v1/events` and
//! `POST /v1/metrics`.
//!
//! `POST` creates a key and answers it once, in the 201 body; only its SHA-256 is stored, so
//! a lost key is replaced, never recovered. `GET` lists the tenant's keys (ids, names,
//! scopes, creation times: never a key). `DELETE /{id}` revokes one: the authorizer no longer
//! finds it, so it answers 401 once API Gateway's cached answer for it expires.

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use pulse_core::apikeys::{self, ApiKey, SCOPE_INGEST};
use pulse_core::config::ClaimNames;
use pulse_core::identity::{Caller, Role};
use pulse_core::problem::FieldError;
use pulse_core::{ApiError, Config};
use pulse_http::FromRequest;
use pulse_http::selfmon::{RequestRecorder, serve_recorded};
use pulse_http::{HttpHandler, empty, json};
use pulse_store::KeyStore;
use pulse_store::app::DynamoApp;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The routes this crate serves (template.yaml routes them to this function, and a test
/// checks the two agree).
pub const ROUTES: &[&str] = &[
    "GET /api/v1/api-keys",
    "POST /api/v1/api-keys",
    "DELETE /api/v1/api-keys/{id}",
];

/// Keys a tenant may hold at once: enough for every sender, few enough to audit.
pub const MAX_KEYS: usize = 50;

/// The API keys endpoint with its store.
#[derive(Debug)]
pub struct Keys<S> {
    /// Records each request as an `api_request` event of its tenant (wired on AWS).
    recorder: Option<Arc<dyn RequestRecorder>>,
    store: S,
    claims: ClaimNames,
}

/// What an admin sends to create a key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyInput {
    name: String,
    #[serde(default)]
    scopes: Option<Vec<String>>,
}

/// The 201 answer: the stored key's description and, this once, the key itself.
#[derive(Debug, Serialize)]
struct Created<'a> {
    #[serde(flatten)]
    key: &'a ApiKey,
    /// The key. It is not stored and cannot be shown again.
    secret: &'a str,
}

/// Builds the handler from the function's configuration, as `main` and the local cloud do.
pub fn wire(config: &Config, aws: &aws_config::SdkConfig) -> Keys<DynamoApp> {
    Keys::new(
        DynamoApp::new(aws, &config.tables.app),
        config.claims.clone(),
    )
    .recording(pulse_http::selfmon::recorder(config, aws))
}

impl KeyInput {
    fn parse(req: &Request) -> Result<(String, Vec<String>), ApiError> {
        let bytes: &[u8] = match req.body() {
            Body::Text(t) => t.as_bytes(),
            Body::Binary(b) => b,
            _ => b"",
        };
        let input: KeyInput = serde_json::from_slice(bytes).map_err(|e| ApiError::Validation {
            detail: format!("the key is not valid: {e}"),
            errors: vec![FieldError::at::<&str>(&[], e.to_string())],
        })?;
        let mut errors = Vec::new();
        let name = input.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            errors.push(FieldError::at(
                &["name"],
                "1 to 100 printable characters naming the sender",
            ));
        }
        let scopes = input
            .scopes
            .unwrap_or_else(|| vec![SCOPE_INGEST.to_owned()]);
        for (i, scope) in scopes.iter().enumerate() {
            if scope != SCOPE_INGEST {
                errors.push(FieldError::at(
                    &["scopes", &i.to_string()],
                    "the only scope is \"ingest\"",
                ));
            }
        }
        if scopes.is_empty() {
            errors.push(FieldError::at(&["scopes"], "at least one scope"));
        }
        if !errors.is_empty() {
            return Err(ApiError::Validation {
                detail: format!("{} problems with the key", errors.len()),
                errors,
            });
        }
        Ok((name, scopes))
    }
}

impl<S: KeyStore> Keys<S> {
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
        caller.require(Role::Admin)?;
        let id = req
            .path_parameters_ref()
            .and_then(|p| p.first("id"))
            .map(str::to_owned);
        match (req.method().clone(), id) {
            (Method::GET, None) => {
                let mut keys = self.store.keys(&caller.tenant).await?;
                keys.sort_by(|a, b| a.created_at.cmp(&b.created_at));
                Ok(json(StatusCode::OK, &serde_json::json!({"keys": keys})))
            }
            (Method::POST, None) => {
                let (name, scopes) = KeyInput::parse(&req)?;
                let held = self.store.keys(&caller.tenant).await?;
                if held.len() >= MAX_KEYS {
                    return Err(ApiError::Conflict(format!(
                        "a tenant holds at most {MAX_KEYS} keys; revoke one first"
                    )));
                }
                let secret = apikeys::generate().map_err(|e| ApiError::Internal(e.into()))?;
                let key = ApiKey {
                    id: apikeys::id_of(&secret),
                    tenant: caller.tenant.clone(),
                    name,
                    scopes,
                    created_at: chrono::Utc::now()
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                };
                self.store.put_key(&apikeys::hash(&secret), &key).await?;
                tracing::info!(tenant = %caller.tenant, key = %key.id, "API key created");
                Ok(json(
                    StatusCode::CREATED,
                    &Created {
                        key: &key,
                        secret: &secret,
                    },
                ))
            }
            (Method::DELETE, Some(id)) => {
                if self.store.delete_key(&caller.tenant, &id).await? {
                    tracing::info!(tenant = %caller.tenant, key = %id, "API key revoked");
                    Ok(empty(StatusCode::NO_CONTENT))
                } else {
                    Err(ApiError::NotFound(format!("no API key {id}")))
                }
            }
            (method, _) => Err(ApiError::MethodNotAllowed(format!(
                "{method} is not supported here"
            ))),
        }
    }
}

impl<S: KeyStore + 'static> HttpHandler for Keys<S> {
    async fn handle(&self, req: Request) -> Result<Response<Body>, lambda_http::Error> {
        serve_recorded(req, self.recorder.as_ref(), |req| self.respond(req)).await
    }
}

#[cfg(test)]
mod tests;
