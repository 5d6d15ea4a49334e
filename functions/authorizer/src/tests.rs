//! The authorizer against an in-memory key store and a JWKS served on loopback.

use super::*;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{EncodingKey, Header};
use pulse_core::apikeys::ApiKey;
use pulse_core::config::JwtSettings;
use pulse_core::identity::TenantId;
use serde_json::json;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Default)]
struct MemoryKeys {
    keys: Mutex<HashMap<String, ApiKey>>,
    down: bool,
}

impl KeyLookup for MemoryKeys {
    async fn key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>, StoreError> {
        if self.down {
            return Err(StoreError::Unavailable("down".into()));
        }
        Ok(self.keys.lock().expect("lock").get(hash).cloned())
    }
}

impl MemoryKeys {
    fn with(key: &str, tenant: &str) -> Self {
        let store = Self::default();
        store.keys.lock().expect("lock").insert(
            apikeys::hash(key),
            ApiKey {
                id: apikeys::id_of(key),
                tenant: TenantId::parse(tenant).expect("tenant"),
                name: "ci".into(),
                scopes: vec![apikeys::SCOPE_INGEST.into()],
                created_at: "2026-11-22T00:00:00Z".into(),
            },
        );
        store
    }
}

/// An ES256 signing key and its JWKS, served on loopback; counts the fetches.
struct Issuer {
    key: EncodingKey,
    jwks_url: String,
    fetches: std::sync::Arc<AtomicUsize>,
}

const ISSUER: &str = "https://issuer.example/pool";
const AUDIENCE: &str = "dashboard";

async fn issuer() -> Issuer {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("key pair");
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).expect("pair");
    let point = pair.public_key().as_ref().to_vec();
    let jwks = json!({"keys": [{
        "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": "k1",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
    }]});
    let fetches = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = fetches.clone();
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            let jwks = jwks.clone();
            async move { axum::Json(jwks) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    Issuer {
        key: EncodingKey::from_ec_der(pkcs8.as_ref()),
        jwks_url: format!("http://{addr}/jwks.json"),
        fetches,
    }
}

impl Issuer {
    fn token(&self, kid: &str, claims: serde_json::Value) -> String {
        let mut header = Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, &claims, &self.key).expect("token")
    }

    fn verifier(&self) -> JwtVerifier {
        JwtVerifier::new(JwtSettings {
            issuer: ISSUER.into(),
            audience: vec![AUDIENCE.into()],
            jwks_url: Some(self.jwks_url.clone()),
        })
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

fn claims(tenant: Option<&str>, exp: i64) -> serde_json::Value {
    let mut c = json!({"sub": "u1", "iss": ISSUER, "aud": AUDIENCE, "exp": exp,
        "cognito:groups": ["admin"]});
    if let Some(t) = tenant {
        c["custom:tenant"] = json!(t);
    }
    c
}

fn bearer(credential: &str) -> Request {
    Request {
        identity_source: Some(vec![format!("Bearer {credential}")]),
        route_key: Some("POST /api/v1/events".into()),
        headers: HashMap::new(),
    }
}

#[tokio::test]
async fn a_stored_key_is_allowed_as_its_tenant_with_its_scopes() {
    // Given a key stored for tenant acme
    let key = apikeys::generate().expect("key");
    let auth = Authorizer::new(MemoryKeys::with(&key, "acme"), None, ClaimNames::default());
    // When it is presented
    let res = auth.handle(bearer(&key)).await.expect("decision");
    // Then it is allowed, and the function will see tenant acme with the ingest scope
    assert!(res.is_authorized);
    let context: HashMap<_, _> = res.context.into_iter().collect();
    let caller = Caller::from_context(&context).expect("caller");
    assert_eq!(caller.tenant.as_str(), "acme");
    assert!(caller.require_ingest().is_ok());
    assert_eq!(caller.key_id.as_deref(), Some(&key[6..14]));
}

#[tokio::test]
async fn unknown_revoked_or_malformed_keys_are_unauthorized() {
    let key = apikeys::generate().expect("key");
    let auth = Authorizer::new(MemoryKeys::default(), None, ClaimNames::default());
    for credential in [key.as_str(), "pulse_not-a-key", ""] {
        let err = auth
            .handle(bearer(credential))
            .await
            .expect_err("not allowed");
        // The exact message API Gateway maps to 401.
        assert_eq!(err.to_string(), "Unauthorized", "{credential:?}");
    }
}

#[tokio::test]
async fn a_store_outage_is_an_error_not_a_denial() {
    let auth = Authorizer::new(
        MemoryKeys {
            down: true,
            ..MemoryKeys::default()
        },
        None,
        ClaimNames::default(),
    );
    let key = apikeys::generate().expect("key");
    let err = auth.handle(bearer(&key)).await.expect_err("store down");
    assert!(matches!(err, AuthorizerError::Store(_)));
    assert_ne!(err.to_string(), "Unauthorized");
}

#[tokio::test]
async fn a_valid_token_is_allowed_as_its_tenant_and_roles() {
    // Given an issuer and a token of tenant acme with the admin group
    let issuer = issuer().await;
    let auth = Authorizer::new(
        MemoryKeys::default(),
        Some(issuer.verifier()),
        ClaimNames::default(),
    );
    let token = issuer.token("k1", claims(Some("acme"), now() + 600));
    // When it is presented
    let res = auth.handle(bearer(&token)).await.expect("decision");
    // Then the caller is an admin of acme
    assert!(res.is_authorized);
    let context: HashMap<_, _> = res.context.into_iter().collect();
    let caller = Caller::from_context(&context).expect("caller");
    assert_eq!(caller.tenant.as_str(), "acme");
    assert!(caller.require_ingest().is_ok());
}

#[tokio::test]
async fn expired_foreign_and_tenantless_tokens_are_refused() {
    let issuer = issuer().await;
    let auth = Authorizer::new(
        MemoryKeys::default(),
        Some(issuer.verifier()),
        ClaimNames::default(),
    );
    // An expired token, one for another audience and a forged one: 401.
    let expired = issuer.token("k1", claims(Some("acme"), now() - 3600));
    let mut foreign_claims = claims(Some("acme"), now() + 600);
    foreign_claims["aud"] = json!("someone-else");
    let foreign = issuer.token("k1", foreign_claims);
    let mut forged = issuer.token("k1", claims(Some("acme"), now() + 600));
    forged.push('x');
    for token in [&expired, &foreign, &forged] {
        let err = auth.handle(bearer(token)).await.expect_err("refused");
        assert_eq!(err.to_string(), "Unauthorized");
    }
    // A valid token without a tenant: denied (403), not unauthenticated.
    let tenantless = issuer.token("k1", claims(None, now() + 600));
    let res = auth.handle(bearer(&tenantless)).await.expect("decision");
    assert!(!res.is_authorized);
}

#[tokio::test]
async fn unknown_key_ids_refetch_the_key_set_at_most_once_a_minute() {
    // Given a verifier that has fetched the key set once
    let issuer = issuer().await;
    let auth = Authorizer::new(
        MemoryKeys::default(),
        Some(issuer.verifier()),
        ClaimNames::default(),
    );
    let good = issuer.token("k1", claims(Some("acme"), now() + 600));
    auth.handle(bearer(&good)).await.expect("allowed");
    auth.handle(bearer(&good)).await.expect("allowed");
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), 1);
    // When many tokens name a key id the issuer does not have
    for _ in 0..5 {
        let forged = issuer.token("rotated?", claims(Some("acme"), now() + 600));
        let err = auth.handle(bearer(&forged)).await.expect_err("unknown kid");
        assert_eq!(err.to_string(), "Unauthorized");
    }
    // Then the key set was not fetched again within the minute
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), 1);
}
