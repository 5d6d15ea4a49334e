//! API keys for server-side senders: `pulse_` and 40 hex characters (160 random bits), shown
//! once at creation and stored only as a SHA-256 hash with the tenant and scopes.
//!
//! Senders present a key as `Authorization: Bearer pulse_…`, the same header a JWT uses, so
//! one Lambda authorizer with one identity source serves both, and API Gateway can cache its
//! answer (a cache needs every identity source present).

use serde::{Deserialize, Serialize};

/// The prefix of every key: tells keys from JWTs at a glance, and scanners can find leaks.
pub const PREFIX: &str = "pulse_";

/// What a key may do.
pub use crate::identity::SCOPE_INGEST;

/// A stored key: never the key itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// A short public id (the first 8 characters after the prefix), for lists and revocation.
    pub id: String,
    pub tenant: crate::identity::TenantId,
    pub name: String,
    pub scopes: Vec<String>,
    /// RFC 3339.
    pub created_at: String,
}

/// A new random key.
pub fn generate() -> Result<String, &'static str> {
    let mut bytes = [0u8; 20];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| "no randomness for a key")?;
    Ok(format!("{PREFIX}{}", hex(&bytes)))
}

/// The public id of `key`.
pub fn id_of(key: &str) -> String {
    key.trim_start_matches(PREFIX).chars().take(8).collect()
}

/// The stored hash of `key`.
pub fn hash(key: &str) -> String {
    hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key.as_bytes()).as_ref())
}

/// Whether a bearer credential is a Pulse key (else it is taken for a JWT).
pub fn is_key(credential: &str) -> bool {
    credential.len() == PREFIX.len() + 40
        && credential.starts_with(PREFIX)
        && credential[PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefixed_random_and_hashed() {
        let a = generate().expect("key");
        let b = generate().expect("key");
        assert_ne!(a, b);
        assert!(is_key(&a));
        assert!(!is_key("eyJhbGciOiJSUzI1NiJ9.e30.sig"));
        assert!(!is_key("pulse_short"));
        assert_eq!(hash(&a).len(), 64);
        assert_ne!(hash(&a), hash(&b));
        assert_eq!(id_of(&a), a[6..14]);
    }
}
