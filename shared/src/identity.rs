//! Who is calling: the tenant and roles from the JWT claims that API Gateway's authorizer
//! verified and put in the request context.
//!
//! API Gateway HTTP APIs hand claims to the function as strings; an array claim such as
//! Cognito's `cognito:groups` arrives flattened as `"[admin analyst]"`. [`parse_roles`] accepts
//! that form, a JSON array, and comma- or space-separated lists, so Cognito and external
//! identity providers work alike.

use crate::config::ClaimNames;
use crate::error::ApiError;
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::fmt;

/// A caller's role. Ordered by privilege: each role may do all that the roles below it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sees web analytics.
    Viewer,
    /// A business viewer: web and business analytics.
    Analyst,
    /// Configures everything.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Analyst, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Analyst => "analyst",
            Role::Admin => "admin",
        }
    }

    /// The role named `name` (a group name), case-insensitively.
    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(name.trim()))
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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
}

impl Caller {
    /// The caller named by the request's verified JWT claims. No claims means the route had no
    /// authorizer or the token carried none: 401. A token without a valid tenant: 403.
    pub fn from_request(req: &Request, names: &ClaimNames) -> Result<Self, ApiError> {
        let claims = jwt_claims(req).ok_or_else(|| {
            ApiError::Unauthenticated("a bearer token is required for this route".into())
        })?;
        Self::from_claims(claims, names)
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

/// The verified JWT claims of an HTTP API or WebSocket request, if an authorizer ran.
fn jwt_claims(req: &Request) -> Option<&HashMap<String, String>> {
    let ctx = req.request_context_ref()?;
    let authorizer = match ctx {
        RequestContext::ApiGatewayV2(c) => c.authorizer.as_ref()?,
        other => other.authorizer()?,
    };
    authorizer.jwt.as_ref().map(|jwt| &jwt.claims)
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
    fn a_request_without_an_authorizer_is_unauthenticated() {
        let req = Request::default();
        let err = Caller::from_request(&req, &ClaimNames::default()).expect_err("no claims");
        assert_eq!(err.status(), 401);
    }
}
