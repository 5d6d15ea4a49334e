//! The caller of a request: the verified JWT claims API Gateway's authorizer put in the request
//! context, or the context the ingest routes' Lambda authorizer returned, admitted by the
//! route's declared access ([`pulse_core::routes`]).

use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};
use pulse_core::ApiError;
use pulse_core::config::ClaimNames;
use pulse_core::identity::Caller;
use std::collections::HashMap;

/// A [`Caller`] from a Lambda HTTP request.
pub trait FromRequest: Sized {
    /// The caller named by the request's verified JWT claims. No claims means the route had no
    /// authorizer or the token carried none: 401. A token without a valid tenant: 403.
    ///
    /// The caller must then be admitted by the route ([`pulse_core::routes`]): a caller without a
    /// known role (or an API key's scope) gets 403 on every route, and a caller below the
    /// route's declared role too. This is the one place route access is decided.
    fn from_request(req: &Request, names: &ClaimNames) -> Result<Self, ApiError>;
}

impl FromRequest for Caller {
    fn from_request(req: &Request, names: &ClaimNames) -> Result<Self, ApiError> {
        let caller = if let Some(claims) = jwt_claims(req) {
            Caller::from_claims(claims, names)?
        } else {
            match lambda_context(req) {
                Some(context) => Caller::from_context(context)?,
                None => {
                    return Err(ApiError::Unauthenticated(
                        "a bearer token is required for this route".into(),
                    ));
                }
            }
        };
        let key = crate::route_key(req);
        let access = pulse_core::routes::access(&key).or_else(|| {
            pulse_core::routes::matching(req.method().as_str(), req.uri().path())
                .and_then(pulse_core::routes::access)
        });
        caller.admit(access)?;
        Ok(caller)
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

/// The context a Lambda authorizer returned, if one ran (API Gateway's
/// `requestContext.authorizer.lambda`).
fn lambda_context(req: &Request) -> Option<&HashMap<String, serde_json::Value>> {
    let ctx = req.request_context_ref()?;
    let authorizer = match ctx {
        RequestContext::ApiGatewayV2(c) => c.authorizer.as_ref()?,
        other => other.authorizer()?,
    };
    (!authorizer.fields.is_empty()).then_some(&authorizer.fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_without_an_authorizer_is_unauthenticated() {
        let req = Request::default();
        let err = Caller::from_request(&req, &ClaimNames::default()).expect_err("no claims");
        assert_eq!(err.status(), 401);
    }
}
