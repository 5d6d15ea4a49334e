//! The HTTP API of template.yaml on localhost: API Gateway's route matching, JWT and Lambda
//! authorizers and payload format 2.0, in front of the functions running in-process.
//!
//! A Lambda authorizer runs as API Gateway runs it: a missing identity source is 401 without
//! a call; the function's `Unauthorized` error is 401; `isAuthorized: false` is 403; any other
//! failure is 500; allowed and denied answers are cached per identity-source value for the
//! declared `ReauthorizeEvery`, and the allowed context reaches the function as
//! `requestContext.authorizer.lambda`.
//!
//! Differences from AWS, on purpose: an authorizer refusal answers RFC 9457 problem+json (API
//! Gateway answers `{"message":"Unauthorized"}`), and so does an unmatched route.

use crate::functions::{Invoke, InvokeError};
use crate::jwt::LocalIssuer;
use crate::template::{JwtAuthorizer, LambdaAuthorizer, Route};
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use pulse_core::ApiError;
use pulse_http::{CORRELATION_ID, correlation_id, percent_decode, problem_response};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Lambda's synchronous invocation payload limit.
const MAX_BODY: usize = 6 * 1024 * 1024;

/// A route ready to match and invoke.
struct Bound {
    route: Route,
    segments: Vec<Segment>,
    auth: Auth,
    invoke: Invoke,
}

/// Who checks a route's callers.
enum Auth {
    Public,
    Jwt(JwtAuthorizer),
    Lambda {
        name: String,
        authorizer: LambdaAuthorizer,
        invoke: Invoke,
    },
}

/// An authorizer's name and the request's identity-source values.
type CacheKey = (String, Vec<String>);

/// A Lambda authorizer's answer, as cached.
#[derive(Clone)]
enum Decision {
    Allow(Value),
    Deny,
}

#[derive(Debug, PartialEq)]
enum Segment {
    Literal(String),
    Param(String),
    Greedy(String),
}

/// A token bucket.
#[derive(Debug)]
struct Bucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

/// The HTTP API: every route of the template bound to its function.
pub struct HttpApi {
    routes: Vec<Bound>,
    issuer: Arc<LocalIssuer>,
    /// The stage's throttling, as API Gateway applies it before anything else.
    throttle: Option<Mutex<Bucket>>,
    /// Lambda authorizer answers by authorizer and identity-source values, until they expire.
    cache: Mutex<HashMap<CacheKey, (Instant, Decision)>>,
}

impl std::fmt::Debug for HttpApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpApi")
            .field(
                "routes",
                &self
                    .routes
                    .iter()
                    .map(|b| b.route.key())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl HttpApi {
    /// Binds `routes` to `functions` (by logical id). Every route must have its function.
    pub fn new(
        routes: &[Route],
        authorizers: &BTreeMap<String, JwtAuthorizer>,
        lambda_authorizers: &BTreeMap<String, LambdaAuthorizer>,
        functions: &HashMap<String, Invoke>,
        issuer: Arc<LocalIssuer>,
    ) -> Result<Self, String> {
        let mut bound = Vec::new();
        for route in routes {
            let invoke = functions.get(&route.function).cloned().ok_or_else(|| {
                format!(
                    "route {} has no runnable function {}",
                    route.key(),
                    route.function
                )
            })?;
            let auth = match &route.authorizer {
                None => Auth::Public,
                Some(name) => match (authorizers.get(name), lambda_authorizers.get(name)) {
                    (Some(jwt), _) => Auth::Jwt(jwt.clone()),
                    (None, Some(lambda)) => Auth::Lambda {
                        name: name.clone(),
                        invoke: functions
                            .get(&lambda.function)
                            .cloned()
                            .ok_or_else(|| format!("authorizer {name} has no runnable function"))?,
                        authorizer: lambda.clone(),
                    },
                    (None, None) => {
                        return Err(format!(
                            "route {} uses unknown authorizer {name}",
                            route.key()
                        ));
                    }
                },
            };
            bound.push(Bound {
                segments: parse_path(&route.path),
                route: route.clone(),
                auth,
                invoke,
            });
        }
        Ok(Self {
            routes: bound,
            issuer,
            throttle: None,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The same API throttled like the stage's `DefaultRouteSettings`: a token bucket of
    /// `burst` requests refilled at `rate` per second; a request with no token left is 429.
    pub fn throttled(self, throttling: Option<crate::template::Throttling>) -> Self {
        Self {
            throttle: throttling.map(|t| {
                Mutex::new(Bucket {
                    rate: t.rate,
                    burst: t.burst,
                    tokens: t.burst,
                    at: Instant::now(),
                })
            }),
            ..self
        }
    }

    /// Whether a request may pass the stage's throttling now.
    fn admit(&self) -> bool {
        let Some(bucket) = &self.throttle else {
            return true;
        };
        let Ok(mut b) = bucket.lock() else {
            return true;
        };
        let now = Instant::now();
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * b.rate).min(b.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// The route keys served.
    pub fn route_keys(&self) -> Vec<String> {
        self.routes.iter().map(|b| b.route.key()).collect()
    }

    /// The axum service answering every request.
    pub fn router(self) -> axum::Router {
        axum::Router::new()
            .fallback(dispatch)
            .with_state(Arc::new(self))
    }

    /// The most specific route for `method` and `path`, as API Gateway chooses it: the one
    /// with the most literal segments, a method over ANY, a greedy path last.
    fn find(&self, method: &str, path: &str) -> Option<(&Bound, Map<String, Value>)> {
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        self.routes
            .iter()
            .filter(|b| b.route.method == method || b.route.method == "ANY")
            .filter_map(|b| match_path(&b.segments, &parts).map(|params| (b, params)))
            .max_by_key(|(b, _)| {
                let literals = b
                    .segments
                    .iter()
                    .filter(|s| matches!(s, Segment::Literal(_)))
                    .count();
                let greedy = b.segments.iter().any(|s| matches!(s, Segment::Greedy(_)));
                (!greedy, literals, b.route.method != "ANY")
            })
    }
}

fn parse_path(path: &str) -> Vec<Segment> {
    path.trim_start_matches('/')
        .split('/')
        .map(
            |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => match name.strip_suffix('+') {
                    Some(g) => Segment::Greedy(g.to_owned()),
                    None => Segment::Param(name.to_owned()),
                },
                None => Segment::Literal(s.to_owned()),
            },
        )
        .collect()
}

fn match_path(segments: &[Segment], parts: &[&str]) -> Option<Map<String, Value>> {
    let mut params = Map::new();
    for (i, seg) in segments.iter().enumerate() {
        match seg {
            Segment::Literal(l) => {
                if parts.get(i) != Some(&l.as_str()) {
                    return None;
                }
            }
            Segment::Param(name) => {
                let part = parts.get(i).filter(|p| !p.is_empty())?;
                params.insert(name.clone(), Value::String(percent_decode(part)));
            }
            Segment::Greedy(name) => {
                let rest = parts.get(i..).filter(|r| !r.is_empty())?.join("/");
                params.insert(name.clone(), Value::String(percent_decode(&rest)));
                return Some(params);
            }
        }
    }
    (segments.len() == parts.len()).then_some(params)
}

async fn dispatch(
    State(api): State<Arc<HttpApi>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: axum::extract::Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let correlation = correlation_id(&parts.headers);
    let refuse = |err: ApiError| {
        let mut res = problem_response(&err);
        if let Ok(v) = HeaderValue::from_str(&correlation) {
            res.headers_mut().insert(CORRELATION_ID, v);
        }
        to_axum(res)
    };
    // API Gateway throttles the stage before routing or authorizing, with its own body.
    if !api.admit() {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(http::header::CONTENT_TYPE, "application/json")],
            r#"{"message":"Too Many Requests"}"#,
        )
            .into_response();
    }
    let method = parts.method.as_str().to_owned();
    let path = parts.uri.path().to_owned();
    let Some((bound, path_params)) = api.find(&method, &path) else {
        return refuse(ApiError::NotFound(format!("no route for {method} {path}")));
    };
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return refuse(ApiError::PayloadTooLarge(format!(
                "the request body exceeds the {MAX_BODY}-byte invocation limit"
            )));
        }
    };
    let mut event = event(&bound.route, &parts, path_params, &body, peer);
    match &bound.auth {
        Auth::Public => {}
        Auth::Jwt(authorizer) => {
            match api
                .issuer
                .authorize(authorizer, &bound.route.scopes, &parts.headers)
            {
                Ok(claims) => {
                    event["requestContext"]["authorizer"] =
                        json!({"jwt": {"claims": claims, "scopes": null}});
                }
                Err(failure) => {
                    tracing::info!(route = %bound.route.key(), reason = %failure, "authorizer refused the request");
                    return refuse(ApiError::Unauthenticated(failure.to_string()));
                }
            }
        }
        Auth::Lambda {
            name,
            authorizer,
            invoke,
        } => match api
            .lambda_authorize(name, authorizer, invoke, &parts.headers, &event)
            .await
        {
            Ok(context) => event["requestContext"]["authorizer"] = json!({"lambda": context}),
            Err(Refusal::Problem(err)) => return refuse(err),
            Err(Refusal::Failed) => return internal_error(&correlation),
        },
    }
    match (bound.invoke)(event).await {
        Ok(result) => from_lambda(result),
        Err(err) => {
            tracing::error!(route = %bound.route.key(), error = %err, "function invocation failed");
            match err {
                InvokeError::BadResult(_) => {
                    let mut res = internal_error(&correlation);
                    *res.status_mut() = StatusCode::BAD_GATEWAY;
                    res
                }
                _ => internal_error(&correlation),
            }
        }
    }
}

/// API Gateway's answer when a function or authorizer fails.
fn internal_error(correlation: &str) -> Response {
    let mut res = (
        StatusCode::INTERNAL_SERVER_ERROR,
        axum::Json(json!({"message": "Internal Server Error"})),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(correlation) {
        res.headers_mut().insert(CORRELATION_ID, v);
    }
    res
}

/// Why a Lambda authorizer let a request no further.
enum Refusal {
    /// 401 or 403.
    Problem(ApiError),
    /// The authorizer failed: 500.
    Failed,
}

impl HttpApi {
    /// Runs (or recalls) the Lambda authorizer for a request whose payload 2.0 event is
    /// `request`; the context to hand the function, or why not.
    async fn lambda_authorize(
        &self,
        name: &str,
        authorizer: &LambdaAuthorizer,
        invoke: &Invoke,
        headers: &HeaderMap,
        request: &Value,
    ) -> Result<Value, Refusal> {
        let mut values = Vec::new();
        for header in &authorizer.headers {
            match headers
                .get(header.as_str())
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.trim().is_empty())
            {
                Some(v) => values.push(v.to_owned()),
                None => {
                    return Err(Refusal::Problem(ApiError::Unauthenticated(format!(
                        "the {header} header is required"
                    ))));
                }
            }
        }
        let key = (name.to_owned(), values.clone());
        let cached = self.cache.lock().ok().and_then(|c| {
            c.get(&key)
                .filter(|(until, _)| *until > Instant::now())
                .cloned()
        });
        let decision = match cached {
            Some((_, decision)) => decision,
            None => {
                let decision = self.call_authorizer(name, invoke, request, values).await?;
                if authorizer.ttl_secs > 0
                    && let Ok(mut cache) = self.cache.lock()
                {
                    let until = Instant::now() + Duration::from_secs(authorizer.ttl_secs);
                    cache.retain(|_, (t, _)| *t > Instant::now());
                    cache.insert(key, (until, decision.clone()));
                }
                decision
            }
        };
        match decision {
            Decision::Allow(context) => Ok(context),
            Decision::Deny => Err(Refusal::Problem(ApiError::Forbidden(
                "the authorizer denied this request".into(),
            ))),
        }
    }

    async fn call_authorizer(
        &self,
        name: &str,
        invoke: &Invoke,
        request: &Value,
        identity: Vec<String>,
    ) -> Result<Decision, Refusal> {
        let mut event = request.clone();
        if let Some(map) = event.as_object_mut() {
            map.remove("body");
            map.remove("isBase64Encoded");
            let route_key = map.get("routeKey").cloned().unwrap_or(Value::Null);
            let (method, path) = route_key
                .as_str()
                .and_then(|k| k.split_once(' '))
                .unwrap_or(("ANY", "/"));
            map.insert("type".into(), json!("REQUEST"));
            map.insert(
                "routeArn".into(),
                json!(format!(
                    "arn:aws:execute-api:{}:{}:local/$default/{method}{path}",
                    crate::template::REGION,
                    crate::template::ACCOUNT
                )),
            );
            map.insert("identitySource".into(), json!(identity));
        }
        match invoke(event).await {
            Ok(answer) => match answer.get("isAuthorized").and_then(Value::as_bool) {
                Some(true) => Ok(Decision::Allow(
                    answer.get("context").cloned().unwrap_or_else(|| json!({})),
                )),
                Some(false) => Ok(Decision::Deny),
                None => {
                    tracing::error!(
                        authorizer = name,
                        "the authorizer's answer has no isAuthorized"
                    );
                    Err(Refusal::Failed)
                }
            },
            Err(InvokeError::Function(message)) if message == "Unauthorized" => {
                Err(Refusal::Problem(ApiError::Unauthenticated(
                    "the credential is not valid".into(),
                )))
            }
            Err(err) => {
                tracing::error!(authorizer = name, error = %err, "the authorizer failed");
                Err(Refusal::Failed)
            }
        }
    }
}

/// The API Gateway HTTP API payload format 2.0 event for this request.
fn event(
    route: &Route,
    parts: &http::request::Parts,
    path_params: Map<String, Value>,
    body: &Bytes,
    peer: SocketAddr,
) -> Value {
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    let mut cookies = Vec::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if name == http::header::COOKIE {
            cookies.extend(
                value
                    .split(';')
                    .map(|c| c.trim().to_owned())
                    .filter(|c| !c.is_empty()),
            );
            continue;
        }
        headers
            .entry(name.as_str().to_owned())
            .and_modify(|v| {
                v.push(',');
                v.push_str(&value);
            })
            .or_insert(value);
    }
    let raw_query = parts.uri.query().unwrap_or("").to_owned();
    let mut query: BTreeMap<String, String> = BTreeMap::new();
    for pair in raw_query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (
            percent_decode(&k.replace('+', " ")),
            percent_decode(&v.replace('+', " ")),
        );
        query
            .entry(k)
            .and_modify(|e| {
                e.push(',');
                e.push_str(&v);
            })
            .or_insert(v);
    }
    let content_type = headers
        .get("content-type")
        .map(String::as_str)
        .unwrap_or("");
    let (body_value, is_base64) = if body.is_empty() {
        (Value::Null, false)
    } else if is_text(content_type) {
        match std::str::from_utf8(body) {
            Ok(text) => (Value::String(text.to_owned()), false),
            Err(_) => (Value::String(STANDARD.encode(body)), true),
        }
    } else {
        (Value::String(STANDARD.encode(body)), true)
    };
    let now = chrono::Utc::now();
    let host = headers
        .get("host")
        .cloned()
        .unwrap_or_else(|| "127.0.0.1".to_owned());
    let context = json!({
        "accountId": crate::template::ACCOUNT,
        "apiId": "local",
        "domainName": host,
        "domainPrefix": host.split('.').next().unwrap_or("local"),
        "http": {
            "method": parts.method.as_str(),
            "path": parts.uri.path(),
            "protocol": "HTTP/1.1",
            "sourceIp": peer.ip().to_string(),
            "userAgent": headers.get("user-agent").cloned().unwrap_or_default(),
        },
        "requestId": uuid::Uuid::new_v4().to_string(),
        "routeKey": route.key(),
        "stage": "$default",
        "time": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
        "timeEpoch": now.timestamp_millis(),
    });
    let mut event = json!({
        "version": "2.0",
        "routeKey": route.key(),
        "rawPath": parts.uri.path(),
        "rawQueryString": raw_query,
        "headers": headers,
        "requestContext": context,
        "isBase64Encoded": is_base64,
    });
    if !cookies.is_empty() {
        event["cookies"] = json!(cookies);
    }
    if !query.is_empty() {
        event["queryStringParameters"] = json!(query);
    }
    if !path_params.is_empty() {
        event["pathParameters"] = Value::Object(path_params);
    }
    if !body_value.is_null() {
        event["body"] = body_value;
    }
    event
}

/// Whether API Gateway would pass this content type as text rather than base64.
fn is_text(content_type: &str) -> bool {
    let ct = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    ct.is_empty()
        || ct.starts_with("text/")
        || ct.ends_with("/json")
        || ct.ends_with("+json")
        || ct.ends_with("/xml")
        || ct.ends_with("+xml")
        || ct == "application/x-www-form-urlencoded"
        || ct == "application/javascript"
        || ct == "application/x-ndjson"
}

/// The HTTP response API Gateway builds from a function's payload format 2.0 result.
fn from_lambda(result: Value) -> Response {
    let status = result
        .get("statusCode")
        .and_then(Value::as_u64)
        .and_then(|s| StatusCode::from_u16(u16::try_from(s).ok()?).ok())
        .unwrap_or(StatusCode::OK);
    let mut headers = HeaderMap::new();
    let mut put = |name: &str, value: &str| {
        if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::from_str(value)) {
            headers.append(n, v);
        }
    };
    if let Some(map) = result.get("headers").and_then(Value::as_object) {
        for (k, v) in map {
            if let Some(v) = v.as_str() {
                put(k, v);
            }
        }
    }
    if let Some(map) = result.get("multiValueHeaders").and_then(Value::as_object) {
        for (k, values) in map {
            for v in values
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                put(k, v);
            }
        }
    }
    for cookie in result
        .get("cookies")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(c) = cookie.as_str() {
            put("set-cookie", c);
        }
    }
    let text = result.get("body").and_then(Value::as_str).unwrap_or("");
    let body = if result
        .get("isBase64Encoded")
        .and_then(Value::as_bool)
        .unwrap_or(false)
    {
        STANDARD.decode(text).unwrap_or_default()
    } else {
        text.as_bytes().to_vec()
    };
    let mut res = Response::new(Body::from(body));
    *res.status_mut() = status;
    *res.headers_mut() = headers;
    res
}

fn to_axum(res: lambda_http::Response<lambda_http::Body>) -> Response {
    let (parts, body) = res.into_parts();
    let bytes = match body {
        lambda_http::Body::Empty => Vec::new(),
        lambda_http::Body::Text(t) => t.into_bytes(),
        lambda_http::Body::Binary(b) => b,
        _ => Vec::new(),
    };
    Response::from_parts(parts, Body::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_templates_match_like_api_gateway() {
        let segs = parse_path("/api/v1/dashboards/{id}");
        let params = match_path(&segs, &["api", "v1", "dashboards", "d%201"]).expect("match");
        assert_eq!(params["id"], "d 1");
        assert!(match_path(&segs, &["api", "v1", "dashboards"]).is_none());
        assert!(match_path(&segs, &["api", "v1", "dashboards", ""]).is_none());
        let greedy = parse_path("/static/{proxy+}");
        let p = match_path(&greedy, &["static", "a", "b.js"]).expect("greedy");
        assert_eq!(p["proxy"], "a/b.js");
    }

    #[test]
    fn textual_content_types_stay_text() {
        assert!(is_text("application/json; charset=utf-8"));
        assert!(is_text("application/problem+json"));
        assert!(!is_text("application/x-protobuf"));
    }
}
