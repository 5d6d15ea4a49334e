//! `GET /api/v1/me`: the caller's tenant and roles, which the dashboard uses to decide what
//! to show. Any Pulse role may call it.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use pulse_core::config::ClaimNames;
use pulse_core::identity::{Caller, Role};
use pulse_core::{ApiError, Config};
use pulse_http::FromRequest;
use pulse_http::{HttpHandler, json, serve};
use serde::Serialize;

/// The routes this crate serves (template.yaml routes them to this function, and a test
/// checks the two agree).
pub const ROUTES: &[&str] = &["GET /api/v1/me"];

/// The `/me` endpoint.
#[derive(Debug, Clone)]
pub struct Me {
    claims: ClaimNames,
}

/// What the caller is.
#[derive(Debug, Serialize)]
pub struct Profile<'a> {
    pub tenant: &'a str,
    pub subject: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<&'a str>,
    /// Every role held, lowest first.
    pub roles: Vec<Role>,
    /// The highest role held: what the dashboard shows.
    pub role: Role,
}

/// Builds the handler from the function's configuration, as `main` and the local cloud do.
pub fn wire(config: &Config) -> Me {
    Me::new(config.claims.clone())
}

impl Me {
    pub fn new(claims: ClaimNames) -> Self {
        Self { claims }
    }

    fn respond(&self, req: &Request) -> Result<Response<Body>, ApiError> {
        let caller = Caller::from_request(req, &self.claims)?;
        caller.require(Role::Viewer)?;
        let role = caller.roles.iter().max().copied().unwrap_or(Role::Viewer);
        let profile = Profile {
            tenant: caller.tenant.as_str(),
            subject: &caller.subject,
            email: caller.email.as_deref(),
            roles: caller.roles.iter().copied().collect(),
            role,
        };
        Ok(json(StatusCode::OK, &profile))
    }
}

impl HttpHandler for Me {
    async fn handle(&self, req: Request) -> Result<Response<Body>, lambda_http::Error> {
        serve(req, |req| async move { self.respond(&req) }).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An HTTP API request whose JWT authorizer passed these claims, as API Gateway sends it.
    fn request_with_claims(claims: serde_json::Value) -> Request {
        let event = serde_json::json!({
            "version": "2.0",
            "routeKey": "GET /api/v1/me",
            "rawPath": "/api/v1/me",
            "rawQueryString": "",
            "headers": {"host": "api.example.com"},
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "api",
                "domainName": "api.example.com",
                "http": {"method": "GET", "path": "/api/v1/me", "protocol": "HTTP/1.1",
                         "sourceIp": "192.0.2.1", "userAgent": "test"},
                "requestId": "r1",
                "routeKey": "GET /api/v1/me",
                "stage": "$default",
                "time": "22/Nov/2026:10:00:00 +0000",
                "timeEpoch": 1795428000000i64,
                "authorizer": {"jwt": {"claims": claims, "scopes": null}}
            },
            "isBase64Encoded": false
        });
        lambda_http::request::from_str(&event.to_string()).expect("a valid HTTP API event")
    }

    fn body(res: &Response<Body>) -> serde_json::Value {
        match res.body() {
            Body::Text(t) => serde_json::from_str(t).expect("json"),
            other => panic!("unexpected body {other:?}"),
        }
    }

    #[tokio::test]
    async fn returns_the_callers_tenant_and_roles() {
        // Given a Cognito token for an admin and analyst of tenant demo
        let req = request_with_claims(serde_json::json!({
            "sub": "u-1", "custom:tenant": "demo", "cognito:groups": "[analyst admin]",
            "email": "a@example.com"
        }));
        // When /me is called
        let res = Me::new(ClaimNames::default())
            .handle(req)
            .await
            .expect("response");
        // Then it names the tenant, every role, and the highest one
        assert_eq!(res.status(), 200);
        let v = body(&res);
        assert_eq!(v["tenant"], "demo");
        assert_eq!(v["roles"], serde_json::json!(["analyst", "admin"]));
        assert_eq!(v["role"], "admin");
        assert_eq!(v["email"], "a@example.com");
    }

    #[tokio::test]
    async fn a_token_without_a_pulse_role_is_forbidden() {
        let req = request_with_claims(serde_json::json!({
            "sub": "u-1", "custom:tenant": "demo", "cognito:groups": "[billing]"
        }));
        let res = Me::new(ClaimNames::default())
            .handle(req)
            .await
            .expect("response");
        assert_eq!(res.status(), 403);
        assert_eq!(res.headers()["content-type"], "application/problem+json");
    }

    #[tokio::test]
    async fn without_an_authorizer_it_is_unauthenticated() {
        let res = Me::new(ClaimNames::default())
            .handle(Request::default())
            .await
            .expect("response");
        assert_eq!(res.status(), 401);
    }
}
