//! The Lambda authorizer of the ingest routes (`POST /api/v1/events`, `POST /v1/metrics`):
//! one `Authorization: Bearer …` header carries either a person's JWT or a Pulse API key
//! (`pulse_…`), so one identity source serves both and API Gateway can cache the answer.
//!
//! Answers (HTTP API, payload 2.0, simple responses):
//! - a valid key, or a valid token with a tenant → allowed, with the caller in the context
//!   ([`Caller::to_context`]); the function checks what the caller may do;
//! - a valid token without a usable tenant → denied (API Gateway answers 403);
//! - an unknown, revoked or malformed key, or an invalid token → the `Unauthorized` error,
//!   which API Gateway answers with 401 and does not cache;
//! - a key store or key set that cannot be reached → another error (500): never a guess.

pub mod jwks;

use jwks::{JwtVerifier, TokenError};
use pulse_core::apikeys;
use pulse_core::config::ClaimNames;
use pulse_core::identity::Caller;
use pulse_core::{ApiError, Config};
use pulse_store::app::DynamoApp;
use pulse_store::{KeyLookup, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use thiserror::Error;

/// The part of API Gateway's authorizer event (payload format 2.0) the authorizer reads.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    /// The identity sources' values, in declaration order (here: the Authorization header).
    #[serde(default)]
    pub identity_source: Option<Vec<String>>,
    #[serde(default)]
    pub route_key: Option<String>,
    #[serde(default)]
    pub headers: HashMap<String, String>,
}

/// A simple response: allowed or not, and the context handed to the function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Response {
    pub is_authorized: bool,
    pub context: serde_json::Map<String, serde_json::Value>,
}

/// Why the authorizer did not answer with a decision.
#[derive(Debug, Error)]
pub enum AuthorizerError {
    /// The credential is missing or invalid. The message is exactly `Unauthorized`: that is
    /// what API Gateway turns into a 401.
    #[error("Unauthorized")]
    Unauthorized(&'static str),
    #[error("the API key store is unavailable")]
    Store(#[source] StoreError),
    #[error("the token issuer's keys are unavailable")]
    Keys(#[source] TokenError),
}

/// Lambda's error report: the message `Unauthorized` is what API Gateway looks for.
impl From<AuthorizerError> for lambda_runtime::Diagnostic {
    fn from(e: AuthorizerError) -> Self {
        let kind = match e {
            AuthorizerError::Unauthorized(_) => "Unauthorized",
            AuthorizerError::Store(_) => "StoreUnavailable",
            AuthorizerError::Keys(_) => "KeysUnavailable",
        };
        Self {
            error_type: kind.to_owned(),
            error_message: e.to_string(),
        }
    }
}

/// The authorizer with its key lookup and token verifier.
#[derive(Debug)]
pub struct Authorizer<K> {
    keys: K,
    tokens: Option<JwtVerifier>,
    claims: ClaimNames,
}

/// Builds the authorizer from the function's configuration, as `main` and the local cloud do.
pub fn wire(config: &Config, aws: &aws_config::SdkConfig) -> Authorizer<DynamoApp> {
    Authorizer::new(
        DynamoApp::new(aws, &config.tables.app),
        config.jwt.clone().map(JwtVerifier::new),
        config.claims.clone(),
    )
}

impl<K: KeyLookup> Authorizer<K> {
    /// `tokens`: `None` accepts API keys only.
    pub fn new(keys: K, tokens: Option<JwtVerifier>, claims: ClaimNames) -> Self {
        Self {
            keys,
            tokens,
            claims,
        }
    }

    /// Lambda's entry point: logs the outcome (never the credential) and answers.
    pub async fn handle(&self, req: Request) -> Result<Response, AuthorizerError> {
        let route = req.route_key.clone().unwrap_or_default();
        let outcome = self.decide(&req).await;
        match &outcome {
            Ok(r) if r.is_authorized => {
                let tenant = r.context.get("tenant").and_then(|v| v.as_str());
                let key = r.context.get("key_id").and_then(|v| v.as_str());
                tracing::info!(%route, tenant, key, "allowed");
            }
            Ok(_) => tracing::info!(%route, "denied"),
            Err(AuthorizerError::Unauthorized(reason)) => {
                tracing::info!(%route, reason, "unauthorized");
            }
            Err(e) => {
                tracing::error!(%route, error = %e, source = ?std::error::Error::source(e), "authorizer failed")
            }
        }
        outcome
    }

    async fn decide(&self, req: &Request) -> Result<Response, AuthorizerError> {
        let raw = req
            .identity_source
            .as_ref()
            .and_then(|s| s.first())
            .or_else(|| {
                req.headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
                    .map(|(_, v)| v)
            })
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .ok_or(AuthorizerError::Unauthorized("no credential"))?;
        let credential = raw
            .strip_prefix("Bearer ")
            .or_else(|| raw.strip_prefix("bearer "))
            .unwrap_or(raw)
            .trim();
        if credential.starts_with(apikeys::PREFIX) {
            return self.key(credential).await;
        }
        let verifier = self.tokens.as_ref().ok_or(AuthorizerError::Unauthorized(
            "tokens are not accepted here",
        ))?;
        let claims = verifier.verify(credential).await.map_err(|e| match e {
            TokenError::Invalid(reason) => AuthorizerError::Unauthorized(reason),
            keys @ TokenError::Keys(_) => AuthorizerError::Keys(keys),
        })?;
        match Caller::from_claims(&claims, &self.claims) {
            Ok(caller) => Ok(allow(&caller)),
            Err(ApiError::Forbidden(_)) => Ok(Response {
                is_authorized: false,
                context: serde_json::Map::new(),
            }),
            Err(_) => Err(AuthorizerError::Unauthorized("no subject")),
        }
    }

    async fn key(&self, credential: &str) -> Result<Response, AuthorizerError> {
        if !apikeys::is_key(credential) {
            return Err(AuthorizerError::Unauthorized("malformed key"));
        }
        let key = self
            .keys
            .key_by_hash(&apikeys::hash(credential))
            .await
            .map_err(AuthorizerError::Store)?
            .ok_or(AuthorizerError::Unauthorized("unknown or revoked key"))?;
        Ok(allow(&Caller {
            tenant: key.tenant,
            subject: format!("key:{}", key.id),
            email: None,
            roles: BTreeSet::new(),
            scopes: key.scopes.into_iter().collect(),
            key_id: Some(key.id),
        }))
    }
}

fn allow(caller: &Caller) -> Response {
    Response {
        is_authorized: true,
        context: caller.to_context(),
    }
}

#[cfg(test)]
mod tests;
