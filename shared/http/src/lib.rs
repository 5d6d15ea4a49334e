//! `pulse-http`: the edge of every HTTP handler — correlation id, request span, the caller from
//! the request context, the one mapping from a handler's outcome to a response, Pulse's record
//! of its own requests, and tracing setup.
//!
//! A handler is written as `async fn(Request) -> Result<Response<Body>, ApiError>` and wrapped
//! by [`serve`], which takes or makes the `x-correlation-id`, runs the handler inside a span
//! carrying it (so every log line of the request has it), turns an [`ApiError`] into a
//! problem+json response, logs bugs with their source, and echoes the id on the response.

pub mod caller;
pub mod selfmon;
pub mod telemetry;

pub use caller::FromRequest;

use http::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, StatusCode};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use pulse_core::error::ApiError;
use pulse_core::problem::PROBLEM_JSON;
use serde::Serialize;
use std::future::Future;
use std::time::Instant;
use tracing::Instrument;

/// Header carrying the correlation id, on requests and responses.
pub const CORRELATION_ID: &str = "x-correlation-id";

/// An HTTP function: what `lambda_http::run` runs on AWS and the local cloud runs in-process.
pub trait HttpHandler: Send + Sync + 'static {
    /// Answers one request. Expected failures are `Ok` responses with a problem body; `Err`
    /// is left to the runtime and means the invocation itself failed.
    fn handle(
        &self,
        req: Request,
    ) -> impl Future<Output = Result<Response<Body>, lambda_http::Error>> + Send;
}

/// The request's correlation id: the client's `x-correlation-id` if it is a sane token
/// (1–128 characters of `[A-Za-z0-9._:-]`), otherwise a new UUIDv7.
pub fn correlation_id(headers: &HeaderMap) -> String {
    headers
        .get(CORRELATION_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            (1..=128).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

/// Runs `handler` for `req` with a correlation id and maps its outcome to a response.
pub async fn serve<F, Fut>(req: Request, handler: F) -> Result<Response<Body>, lambda_http::Error>
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Result<Response<Body>, ApiError>>,
{
    let mut req = req;
    let correlation_id = correlation_id(req.headers());
    // The handler reads the same id from the request (to stamp events with it).
    if let Ok(value) = HeaderValue::from_str(&correlation_id) {
        req.headers_mut().insert(CORRELATION_ID, value);
    }
    let route = route_key(&req);
    let span = tracing::info_span!("request", correlation_id = %correlation_id, route = %route);
    let started = Instant::now();
    let outcome = handler(req).instrument(span.clone()).await;
    let _entered = span.enter();
    let mut response = match outcome {
        Ok(response) => response,
        Err(err) => {
            if err.status().is_server_error() {
                tracing::error!(error = %err, source = ?std::error::Error::source(&err), "request failed");
            }
            problem_response(&err)
        }
    };
    if let Ok(value) = HeaderValue::from_str(&correlation_id) {
        response.headers_mut().insert(CORRELATION_ID, value);
    }
    tracing::info!(
        status = response.status().as_u16(),
        latency_ms = started.elapsed().as_secs_f64() * 1e3,
        "request handled"
    );
    Ok(response)
}

/// Decodes `%XX` escapes in a URL component; invalid escapes stay as they are, and bytes that
/// are not UTF-8 become U+FFFD.
pub fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// The request body parsed as JSON, or a 400 problem saying why not.
pub fn json_body(req: &Request) -> Result<serde_json::Value, ApiError> {
    let bytes: &[u8] = match req.body() {
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b,
        _ => b"",
    };
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::invalid_field::<&str>(&[], format!("the body is not valid JSON: {e}"))
    })
}

/// A response with `status` and no body (204 after a delete, a dropped beacon).
pub fn empty(status: StatusCode) -> Response<Body> {
    let mut res = Response::new(Body::Empty);
    *res.status_mut() = status;
    res
}

/// A JSON response with `status`.
pub fn json<T: Serialize + ?Sized>(status: StatusCode, body: &T) -> Response<Body> {
    match serde_json::to_vec(body) {
        Ok(bytes) => with_body(status, "application/json", bytes),
        Err(err) => problem_response(&ApiError::internal(err)),
    }
}

/// The problem+json response for `err`.
pub fn problem_response(err: &ApiError) -> Response<Body> {
    let problem = err.to_problem();
    let bytes = serde_json::to_vec(&problem).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = with_body(err.status(), PROBLEM_JSON, bytes);
    match err {
        ApiError::RateLimited { retry_after_secs }
        | ApiError::Throttled {
            retry_after_secs, ..
        } => {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(*retry_after_secs));
        }
        // RFC 6750 §3: a 401 names the scheme the client should use.
        ApiError::Unauthenticated(_) => {
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        _ => {}
    }
    response
}

fn with_body(status: StatusCode, content_type: &'static str, bytes: Vec<u8>) -> Response<Body> {
    let body = match String::from_utf8(bytes) {
        Ok(text) => Body::Text(text),
        Err(e) => Body::Binary(e.into_bytes()),
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// The API Gateway route key (`GET /api/v1/me`), or method and path when there is none.
/// The route template API Gateway matched (`GET /api/v1/sites/{id}`), or the method and path.
pub fn route_key(req: &Request) -> String {
    match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.route_key.clone(),
        Some(RequestContext::WebSocket(ctx)) => ctx.route_key.clone(),
        _ => None,
    }
    .unwrap_or_else(|| format!("{} {}", req.method(), req.uri().path()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_with(header: Option<&str>) -> Request {
        let mut req = Request::default();
        if let Some(v) = header {
            req.headers_mut().insert(
                CORRELATION_ID,
                HeaderValue::from_str(v).expect("valid header"),
            );
        }
        req
    }

    #[tokio::test]
    async fn echoes_a_client_correlation_id() {
        let res = serve(request_with(Some("abc-123")), |_| async {
            Ok(json(StatusCode::OK, &serde_json::json!({"ok": true})))
        })
        .await
        .expect("response");
        assert_eq!(res.headers()[CORRELATION_ID], "abc-123");
    }

    #[tokio::test]
    async fn generates_a_correlation_id_when_missing_or_unsafe() {
        for header in [None, Some("bad id with spaces")] {
            let res = serve(request_with(header), |_| async {
                Err(ApiError::NotFound("nothing".into()))
            })
            .await
            .expect("response");
            let id = res.headers()[CORRELATION_ID].to_str().expect("ascii");
            assert!(uuid::Uuid::parse_str(id).is_ok(), "{id} is a uuid");
        }
    }

    #[tokio::test]
    async fn errors_become_problem_json_with_retry_after_when_rate_limited() {
        let res = serve(request_with(None), |_| async {
            Err(ApiError::RateLimited {
                retry_after_secs: 7,
            })
        })
        .await
        .expect("response");
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(res.headers()[CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(res.headers()[RETRY_AFTER], "7");
        let Body::Text(text) = res.body() else {
            panic!("text body")
        };
        let problem: pulse_core::problem::Problem = serde_json::from_str(text).expect("problem");
        assert_eq!(problem.status, 429);
    }
}
