//! Who is calling: the tenant and roles from the JWT claims that API Gateway's authorizer
//! verified and put in the request context, or from the context the Lambda authorizer of the
//! ingest routes returned for a token or an API key ([`Caller::to_context`] and
//! [`Caller::from_context`] are both ends of that contract).
//!
//! API Gateway HTTP APIs hand claims to the function as strings; an array claim such as
//! Cognito's `cognito:groups` arrives flattened as `"[admin analyst]"`. [`parse_roles`] accepts
//! that form, a JSON array, and comma- or space-separated lists, so Cognito and external
//! identity providers work alike.

use crate::config::ClaimNames;
use crate::error::ApiError;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::fmt;

pub use crate::role::Role;

/// What an API key may do: send events (its only scope today).
pub const SCOPE_INGEST: &str = "ingest";

/// A tenant id: 1–64 characters of `[A-Za-z0-9_-]`. It starts every table key, so it may
/// hold no key separator.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

impl TryFrom<String> for TenantId {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, String> {
        Self::parse(&raw)
    }
}

impl From<TenantId> for String {
    fn from(t: TenantId) -> String {
        t.0
    }
}

impl TenantId {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let ok_len = (1..=64).contains(&raw.len());
        let ok_chars = raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok_len && ok_chars {
            Ok(Self(raw.to_owned()))
        } else {
            Err("a tenant id is 1 to 64 characters of letters, digits, '-' and '_'".to_owned())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Caller {
    pub tenant: TenantId,
    /// The `sub` claim: a stable user id.
    pub subject: String,
    pub email: Option<String>,
    pub roles: BTreeSet<Role>,
    /// What an API key may do (`ingest`); empty for a person's token.
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    pub scopes: BTreeSet<String>,
    /// The public id of the API key that authenticated the call, if a key did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

impl Caller {
    /// `Ok` if a route declaring `access` admits the caller (`None`: a route outside the
    /// table, such as a WebSocket route, which admits any known role).
    pub fn admit(&self, access: Option<crate::routes::Access>) -> Result<(), ApiError> {
        use crate::routes::Access;
        if self.roles.is_empty() && self.scopes.is_empty() {
            return Err(ApiError::Forbidden(format!(
                "the token names no known role (one of {}); ask an admin to add you to a group",
                Role::ALL.map(Role::as_str).join(", ")
            )));
        }
        match access {
            Some(Access::Public) => Ok(()),
            Some(Access::Ingest) => self.require_ingest(),
            Some(Access::Role(role)) => self.require(role),
            None if self.roles.is_empty() => Err(ApiError::Forbidden(
                "an API key may only send events".into(),
            )),
            None => Ok(()),
        }
    }

    /// The context a Lambda authorizer returns for this caller: flat strings, as API Gateway
    /// requires of a simple response's context.
    pub fn to_context(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut map = serde_json::Map::new();
        let mut put = |k: &str, v: String| {
            map.insert(k.to_owned(), serde_json::Value::String(v));
        };
        put("tenant", self.tenant.to_string());
        put("sub", self.subject.clone());
        let roles: Vec<&str> = self.roles.iter().map(|r| r.as_str()).collect();
        put("roles", roles.join(" "));
        let scopes: Vec<&str> = self.scopes.iter().map(String::as_str).collect();
        put("scopes", scopes.join(" "));
        if let Some(email) = &self.email {
            put("email", email.clone());
        }
        if let Some(id) = &self.key_id {
            put("key_id", id.clone());
        }
        map
    }

    /// The caller a Lambda authorizer's context names (see [`Caller::to_context`]).
    pub fn from_context(context: &HashMap<String, serde_json::Value>) -> Result<Self, ApiError> {
        let text = |k: &str| context.get(k).and_then(serde_json::Value::as_str);
        let subject = text("sub")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ApiError::Unauthenticated("the authorizer named no subject".into()))?
            .to_owned();
        let tenant = TenantId::parse(text("tenant").unwrap_or("")).map_err(ApiError::Forbidden)?;
        Ok(Self {
            tenant,
            subject,
            email: text("email").map(str::to_owned),
            roles: parse_roles(text("roles").unwrap_or("")),
            scopes: text("scopes")
                .unwrap_or("")
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            key_id: text("key_id").map(str::to_owned),
        })
    }

    /// `Ok` if the caller may send events: an admin, or an API key with the ingest scope.
    pub fn require_ingest(&self) -> Result<(), ApiError> {
        if self.has(Role::Admin) || self.scopes.contains(SCOPE_INGEST) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "sending events needs the admin role or an API key with the ingest scope".into(),
            ))
        }
    }

    /// The caller named by string claims as API Gateway passes them.
    pub fn from_claims(
        claims: &HashMap<String, String>,
        names: &ClaimNames,
    ) -> Result<Self, ApiError> {
        let subject = claims
            .get("sub")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ApiError::Unauthenticated("the token has no subject".into()))?
            .clone();
        let tenant = claims
            .get(&names.tenant)
            .ok_or_else(|| {
                ApiError::Forbidden(format!("the token has no tenant claim ({})", names.tenant))
            })
            .and_then(|raw| TenantId::parse(raw).map_err(ApiError::Forbidden))?;
        let roles = claims
            .get(&names.roles)
            .map(|raw| parse_roles(raw))
            .unwrap_or_default();
        Ok(Self {
            tenant,
            subject,
            email: claims.get("email").cloned(),
            roles,
            scopes: BTreeSet::new(),
            key_id: None,
        })
    }

    /// Whether the caller holds `role` or a higher one.
    pub fn has(&self, role: Role) -> bool {
        self.roles.iter().any(|r| *r >= role)
    }

    /// `Ok` if the caller holds `role` or a higher one; a 403 problem otherwise.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.has(role) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "this action needs the {role} role or higher"
            )))
        }
    }
}

/// Roles named in a claim value. Accepts `[admin analyst]` (API Gateway's rendering of an
/// array claim), `["admin","analyst"]`, `admin,analyst` and `admin analyst`; unknown names
/// are ignored.
pub fn parse_roles(raw: &str) -> BTreeSet<Role> {
    if let Ok(list) = serde_json::from_str::<Vec<String>>(raw) {
        return list.iter().filter_map(|r| Role::parse(r)).collect();
    }
    raw.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter_map(Role::parse)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    #[test]
    fn api_gateway_flattened_groups_become_roles() {
        assert_eq!(
            parse_roles("[admin analyst]"),
            BTreeSet::from([Role::Admin, Role::Analyst])
        );
        assert_eq!(parse_roles(r#"["viewer"]"#), BTreeSet::from([Role::Viewer]));
        assert_eq!(
            parse_roles("viewer, Analyst, owner"),
            BTreeSet::from([Role::Viewer, Role::Analyst])
        );
        assert!(parse_roles("[]").is_empty());
    }

    #[test]
    fn higher_roles_include_lower_ones() {
        // Given an analyst
        let caller = Caller::from_claims(
            &claims(&[
                ("sub", "u1"),
                ("custom:tenant", "acme"),
                ("cognito:groups", "[analyst]"),
            ]),
            &ClaimNames::default(),
        )
        .expect("valid caller");
        // Then viewer and analyst actions pass, admin ones are forbidden
        assert!(caller.require(Role::Viewer).is_ok());
        assert!(caller.require(Role::Analyst).is_ok());
        let denied = caller.require(Role::Admin).expect_err("not an admin");
        assert_eq!(denied.status(), 403);
    }

    #[test]
    fn a_token_without_a_valid_tenant_is_forbidden() {
        let names = ClaimNames::default();
        let none = Caller::from_claims(&claims(&[("sub", "u1")]), &names).expect_err("no tenant");
        assert_eq!(none.status(), 403);
        let bad = Caller::from_claims(&claims(&[("sub", "u1"), ("custom:tenant", "a#b")]), &names)
            .expect_err("separator in tenant");
        assert_eq!(bad.status(), 403);
    }

    #[test]
    fn a_caller_survives_the_lambda_authorizer_context_round_trip() {
        // Given an API key caller with the ingest scope
        let caller = Caller {
            tenant: TenantId::parse("acme").expect("tenant"),
            subject: "key:0123abcd".into(),
            email: None,
            roles: BTreeSet::new(),
            scopes: BTreeSet::from([SCOPE_INGEST.to_owned()]),
            key_id: Some("0123abcd".into()),
        };
        // When it goes through the authorizer's context and back
        let context: HashMap<String, serde_json::Value> = caller.to_context().into_iter().collect();
        let back = Caller::from_context(&context).expect("caller");
        // Then it is the same caller: it may ingest, and nothing an admin may
        assert_eq!(back, caller);
        assert!(back.require_ingest().is_ok());
        assert_eq!(
            back.require(Role::Viewer).expect_err("no role").status(),
            403
        );
    }

    #[test]
    fn only_admins_and_ingest_keys_may_ingest() {
        let analyst = Caller::from_claims(
            &claims(&[
                ("sub", "u1"),
                ("custom:tenant", "acme"),
                ("cognito:groups", "[analyst]"),
            ]),
            &ClaimNames::default(),
        )
        .expect("valid caller");
        assert_eq!(analyst.require_ingest().expect_err("analyst").status(), 403);
    }
}
