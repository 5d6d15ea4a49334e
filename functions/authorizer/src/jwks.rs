//! Verifies a person's JWT as the HTTP API's JWT authorizer does: signature by a key of the
//! issuer's JWKS, `iss`, `exp`/`nbf`, and `aud` (or Cognito access tokens' `client_id`).
//!
//! The key set is fetched once per warm function and again only for a `kid` it does not hold
//! (the issuer rotated its keys), at most once a minute, so a flood of forged `kid`s cannot
//! turn into a flood of fetches.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use pulse_core::config::JwtSettings;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use thiserror::Error;
use tokio::sync::Mutex;

/// How soon an unknown `kid` may cause another fetch of the key set.
const REFETCH_AFTER: Duration = Duration::from_secs(60);
/// Signature algorithms accepted: asymmetric only, so a token cannot pick a shared secret.
const ALGORITHMS: [Algorithm; 6] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::ES256,
    Algorithm::ES384,
];

/// Why a token was not accepted.
#[derive(Debug, Error)]
pub enum TokenError {
    /// The token is not valid: the caller is not authenticated.
    #[error("invalid token: {0}")]
    Invalid(&'static str),
    /// The issuer's keys could not be fetched: Pulse cannot tell.
    #[error("the issuer's keys are unavailable: {0}")]
    Keys(String),
}

/// Where keys come from and when they were last fetched.
#[derive(Debug, Default)]
struct Keys {
    set: Option<JwkSet>,
    fetched: Option<Instant>,
}

/// Verifies tokens of one issuer.
#[derive(Debug)]
pub struct JwtVerifier {
    settings: JwtSettings,
    keys: Mutex<Keys>,
    http: reqwest::Client,
}

impl JwtVerifier {
    pub fn new(settings: JwtSettings) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .build()
            .unwrap_or_default();
        Self {
            settings,
            keys: Mutex::new(Keys::default()),
            http,
        }
    }

    /// The token's claims, rendered as API Gateway renders them for a function (strings as
    /// they are, other values as JSON).
    pub async fn verify(&self, token: &str) -> Result<HashMap<String, String>, TokenError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid("malformed"))?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(TokenError::Invalid("algorithm not accepted"));
        }
        let kid = header.kid.ok_or(TokenError::Invalid("no key id"))?;
        let key = self.key(&kid).await?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = 5;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_required_spec_claims(&["exp", "iss"]);
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
            .map_err(|e| {
                TokenError::Invalid(match e.kind() {
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature => "expired",
                    jsonwebtoken::errors::ErrorKind::ImmatureSignature => "not yet valid",
                    jsonwebtoken::errors::ErrorKind::InvalidIssuer => "wrong issuer",
                    _ => "bad signature or claims",
                })
            })?
            .claims;
        let audiences: Vec<&str> = match claims.get("aud").or_else(|| claims.get("client_id")) {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !audiences
            .iter()
            .any(|a| self.settings.audience.iter().any(|ok| ok == a))
        {
            return Err(TokenError::Invalid("wrong audience"));
        }
        Ok(claims
            .into_iter()
            .map(|(k, v)| {
                let text = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, text)
            })
            .collect())
    }

    /// The decoding key `kid`, fetching the key set if it is not held yet or lacks `kid`.
    async fn key(&self, kid: &str) -> Result<DecodingKey, TokenError> {
        let mut keys = self.keys.lock().await;
        let known = keys.set.as_ref().and_then(|s| s.find(kid)).cloned();
        let jwk = match known {
            Some(jwk) => jwk,
            None => {
                if keys
                    .fetched
                    .is_some_and(|at| at.elapsed() < REFETCH_AFTER && keys.set.is_some())
                {
                    return Err(TokenError::Invalid("unknown key id"));
                }
                let set = self.fetch().await?;
                keys.fetched = Some(Instant::now());
                let found = set.find(kid).cloned();
                keys.set = Some(set);
                found.ok_or(TokenError::Invalid("unknown key id"))?
            }
        };
        DecodingKey::from_jwk(&jwk).map_err(|_| TokenError::Invalid("unusable key"))
    }

    async fn fetch(&self) -> Result<JwkSet, TokenError> {
        let url = match &self.settings.jwks_url {
            Some(url) => url.clone(),
            None => {
                let discovery = format!(
                    "{}/.well-known/openid-configuration",
                    self.settings.issuer.trim_end_matches('/')
                );
                let doc: Value = self.get_json(&discovery).await?;
                doc.get("jwks_uri")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        TokenError::Keys("the discovery document has no jwks_uri".into())
                    })?
                    .to_owned()
            }
        };
        self.get_json(&url).await
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, TokenError> {
        let res = self
            .http
            .get(url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| TokenError::Keys(format!("GET {url}: {e}")))?;
        res.json()
            .await
            .map_err(|e| TokenError::Keys(format!("GET {url}: {e}")))
    }
}
