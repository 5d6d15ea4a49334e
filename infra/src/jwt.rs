//! The local identity provider: an RS256 key kept in the state folder, tokens shaped like
//! Cognito ID tokens, and verification that follows API Gateway's JWT authorizer.
//!
//! The issuer and audience are the ones template.yaml gives the HTTP API's authorizer (with
//! the local names of the user pool and app client), so a token minted here passes the same
//! checks a Cognito token passes on AWS: RS256 signature by a known `kid`, `iss` equal to the
//! issuer, `aud` (or `client_id`) among the audiences, `exp` in the future, `nbf` in the past.

use crate::template::JwtAuthorizer;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use thiserror::Error;

const KEY_FILE: &str = "jwt-signing-key.pem";

#[derive(Debug, Error)]
pub enum IssuerError {
    #[error("cannot read or write the signing key {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("the signing key in {0} is not a PKCS#8 RSA key; delete it or run with --reset")]
    BadKey(String),
    #[error("cannot generate an RSA key")]
    Generate,
    #[error("cannot sign the token: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// Why a token was refused. API Gateway answers each with 401.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AuthFailure {
    #[error("no bearer token in the {0} header")]
    Missing(String),
    #[error("the token is malformed or its signature is invalid")]
    Invalid,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not yet valid")]
    Immature,
    #[error("the token was issued by another issuer")]
    WrongIssuer,
    #[error("the token is for another audience")]
    WrongAudience,
    #[error("the token lacks the scope this route needs")]
    MissingScope,
}

/// The local issuer's signing key.
pub struct LocalIssuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    kid: String,
    modulus: Vec<u8>,
    exponent: Vec<u8>,
}

impl std::fmt::Debug for LocalIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalIssuer")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl LocalIssuer {
    /// The key in `state_dir`, created on first use, so tokens outlive restarts until `--reset`.
    pub fn load_or_create(state_dir: &Path) -> Result<Self, IssuerError> {
        let path = state_dir.join(KEY_FILE);
        let io = |source| IssuerError::Io {
            path: path.display().to_string(),
            source,
        };
        let pkcs8 = match std::fs::read_to_string(&path) {
            Ok(pem) => {
                pem_to_der(&pem).ok_or_else(|| IssuerError::BadKey(path.display().to_string()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let pair =
                    KeyPair::generate(KeySize::Rsa2048).map_err(|_| IssuerError::Generate)?;
                let der = pair.as_der().map_err(|_| IssuerError::Generate)?;
                std::fs::create_dir_all(state_dir).map_err(io)?;
                std::fs::write(&path, der_to_pem(der.as_ref())).map_err(io)?;
                der.as_ref().to_vec()
            }
            Err(e) => return Err(io(e)),
        };
        Self::from_pkcs8(&pkcs8).ok_or_else(|| IssuerError::BadKey(path.display().to_string()))
    }

    fn from_pkcs8(der: &[u8]) -> Option<Self> {
        let pair = KeyPair::from_pkcs8(der).ok()?;
        let public = pair.public_key();
        let modulus = public.modulus().big_endian_without_leading_zero().to_vec();
        let exponent = public.exponent().big_endian_without_leading_zero().to_vec();
        let encoding = EncodingKey::from_rsa_pem(der_to_pem(der).as_bytes()).ok()?;
        let decoding = DecodingKey::from_rsa_raw_components(&modulus, &exponent);
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &modulus);
        let kid = URL_SAFE_NO_PAD.encode(&digest.as_ref()[..12]);
        Some(Self {
            encoding,
            decoding,
            kid,
            modulus,
            exponent,
        })
    }

    /// The public key as a JWKS document, as `/.well-known/jwks.json` serves it.
    pub fn jwks(&self) -> Value {
        json!({"keys": [{
            "kty": "RSA", "alg": "RS256", "use": "sig", "kid": self.kid,
            "n": URL_SAFE_NO_PAD.encode(&self.modulus),
            "e": URL_SAFE_NO_PAD.encode(&self.exponent),
        }]})
    }

    /// A token for a user of `tenant` in `role`'s group, shaped like a Cognito ID token.
    pub fn mint(
        &self,
        authorizer: &JwtAuthorizer,
        tenant: &str,
        role: &str,
        ttl: Duration,
    ) -> Result<String, IssuerError> {
        let now = now_secs();
        let subject = uuid::Uuid::new_v5(
            &uuid::Uuid::NAMESPACE_URL,
            format!("pulse-local:{tenant}:{role}").as_bytes(),
        );
        let claims = json!({
            "sub": subject.to_string(),
            "iss": authorizer.issuer,
            "aud": authorizer.audience.first().cloned().unwrap_or_default(),
            "token_use": "id",
            "auth_time": now,
            "iat": now,
            "exp": now + ttl.as_secs(),
            "email": format!("{role}@{tenant}.local"),
            "custom:tenant": tenant,
            "cognito:groups": [role],
        });
        self.sign(&claims)
    }

    /// Signs arbitrary claims with the local key (tests use it for expired or foreign tokens).
    pub fn sign(&self, claims: &Value) -> Result<String, IssuerError> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, &self.encoding)?)
    }

    /// Verifies the token in `headers` for a route using `authorizer` and needing one of
    /// `scopes` (none: any), and returns its claims as API Gateway passes them to the function.
    pub fn authorize(
        &self,
        authorizer: &JwtAuthorizer,
        scopes: &[String],
        headers: &http::HeaderMap,
    ) -> Result<HashMap<String, String>, AuthFailure> {
        let raw = headers
            .get(&authorizer.header)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| AuthFailure::Missing(authorizer.header.clone()))?;
        // API Gateway accepts the token with or without the "Bearer " prefix.
        let token = raw
            .strip_prefix("Bearer ")
            .or_else(|| raw.strip_prefix("bearer "))
            .unwrap_or(raw)
            .trim();
        let claims = self.verify(authorizer, token)?;
        if !scopes.is_empty() {
            let granted = claims
                .get("scope")
                .or_else(|| claims.get("scp"))
                .map(render)
                .unwrap_or_default();
            let granted: Vec<&str> = granted
                .trim_matches(['[', ']'])
                .split_whitespace()
                .collect();
            if !scopes.iter().any(|s| granted.contains(&s.as_str())) {
                return Err(AuthFailure::MissingScope);
            }
        }
        Ok(claims.iter().map(|(k, v)| (k.clone(), render(v))).collect())
    }

    fn verify(
        &self,
        authorizer: &JwtAuthorizer,
        token: &str,
    ) -> Result<Map<String, Value>, AuthFailure> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthFailure::Invalid)?;
        if header.alg != Algorithm::RS256 || header.kid.as_deref() != Some(self.kid.as_str()) {
            return Err(AuthFailure::Invalid);
        }
        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = 0;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp"]);
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &self.decoding, &validation)
            .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthFailure::Expired,
            jsonwebtoken::errors::ErrorKind::ImmatureSignature => AuthFailure::Immature,
            _ => AuthFailure::Invalid,
        })?;
        let claims = data.claims;
        if claims.get("iss").and_then(Value::as_str) != Some(authorizer.issuer.as_str()) {
            return Err(AuthFailure::WrongIssuer);
        }
        let audiences: Vec<String> = match claims.get("aud").or_else(|| claims.get("client_id")) {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        if !audiences.iter().any(|a| authorizer.audience.contains(a)) {
            return Err(AuthFailure::WrongAudience);
        }
        Ok(claims)
    }
}

/// A claim as API Gateway renders it for the function: strings as they are, arrays as
/// `[a b]`, other values as JSON.
fn render(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(render).collect::<Vec<_>>().join(" ")
        ),
        other => other.to_string(),
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn der_to_pem(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(chunk));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    pem
}

fn pem_to_der(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue};

    fn authorizer() -> JwtAuthorizer {
        JwtAuthorizer {
            issuer: "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_pulselocal".into(),
            audience: vec!["pulse-local-dashboard".into()],
            header: "authorization".into(),
        }
    }

    fn bearer(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
        );
        h
    }

    #[test]
    fn a_minted_token_passes_and_its_groups_are_rendered_like_api_gateway() {
        // Given a fresh issuer in a temporary state folder
        let dir = tempfile::tempdir().expect("tempdir");
        let issuer = LocalIssuer::load_or_create(dir.path()).expect("issuer");
        // When a token for an admin of demo is minted and presented
        let token = issuer
            .mint(&authorizer(), "demo", "admin", Duration::from_secs(60))
            .expect("token");
        let claims = issuer
            .authorize(&authorizer(), &[], &bearer(&token))
            .expect("authorized");
        // Then the function sees the tenant and the flattened group list
        assert_eq!(claims["custom:tenant"], "demo");
        assert_eq!(claims["cognito:groups"], "[admin]");
        // And the same key is loaded again from the state folder
        let again = LocalIssuer::load_or_create(dir.path()).expect("reloaded");
        assert!(again.authorize(&authorizer(), &[], &bearer(&token)).is_ok());
    }

    #[test]
    fn expired_foreign_and_tampered_tokens_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let issuer = LocalIssuer::load_or_create(dir.path()).expect("issuer");
        let a = authorizer();
        let now = now_secs();
        let base = json!({"sub": "u", "iss": a.issuer, "aud": a.audience[0], "exp": now + 60});
        let with = |k: &str, v: Value| {
            let mut c = base.clone();
            c[k] = v;
            issuer.sign(&c).expect("signed")
        };
        let check = |t: &str| issuer.authorize(&a, &[], &bearer(t)).expect_err("refused");
        assert_eq!(check(&with("exp", json!(now - 1))), AuthFailure::Expired);
        assert_eq!(
            check(&with("aud", json!("someone-else"))),
            AuthFailure::WrongAudience
        );
        assert_eq!(
            check(&with("iss", json!("https://evil.example"))),
            AuthFailure::WrongIssuer
        );
        assert_eq!(
            check(&with("nbf", json!(now + 3600))),
            AuthFailure::Immature
        );
        let good = issuer.sign(&base).expect("signed");
        let tampered = format!("{}x", &good[..good.len() - 1]);
        assert_eq!(check(&tampered), AuthFailure::Invalid);
        assert_eq!(
            issuer
                .authorize(&a, &[], &HeaderMap::new())
                .expect_err("missing"),
            AuthFailure::Missing("authorization".into())
        );
        // A token from another key (another state folder) is refused.
        let other_dir = tempfile::tempdir().expect("tempdir");
        let other = LocalIssuer::load_or_create(other_dir.path()).expect("issuer");
        let foreign = other.sign(&base).expect("signed");
        assert_eq!(check(&foreign), AuthFailure::Invalid);
    }

    #[test]
    fn routes_with_scopes_need_one_of_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let issuer = LocalIssuer::load_or_create(dir.path()).expect("issuer");
        let a = authorizer();
        let claims = json!({"sub": "u", "iss": a.issuer, "aud": a.audience[0], "exp": now_secs() + 60, "scope": "pulse/read openid"});
        let token = issuer.sign(&claims).expect("signed");
        assert!(
            issuer
                .authorize(&a, &["pulse/read".into()], &bearer(&token))
                .is_ok()
        );
        assert_eq!(
            issuer
                .authorize(&a, &["pulse/write".into()], &bearer(&token))
                .expect_err("no scope"),
            AuthFailure::MissingScope
        );
    }
}
