//! The WebSocket API of template.yaml on localhost, with API Gateway's semantics:
//!
//! - a client connects to `ws://127.0.0.1:3001/` (or `/<stage>`); the `$connect` route's
//!   function runs first with a CONNECT event carrying the headers and query string, and a
//!   non-2xx answer refuses the upgrade with that status;
//! - each frame is routed by the API's `RouteSelectionExpression` (`$request.body.action`) to
//!   its route, else to `$default`; with neither, the client gets API Gateway's
//!   `{"message": "Forbidden", ...}` frame and the connection stays open;
//! - a route declared with a `RouteResponseSelectionExpression` sends its function's response
//!   body back to the client (a two-way route);
//! - when the socket closes, `$disconnect` runs with a DISCONNECT event;
//! - the management API (`POST`, `GET`, `DELETE /@connections/{id}`, also under `/<stage>/`)
//!   posts to, describes and closes connections, and answers 410 for a gone one, so
//!   PostToConnection code runs unchanged locally and on AWS.

use crate::functions::Invoke;
use crate::template::WsRoute;
use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures::{SinkExt, StreamExt};
use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// API Gateway's frame size limit.
const MAX_FRAME: usize = 128 * 1024;

struct Connection {
    tx: mpsc::UnboundedSender<Message>,
    connected_at: chrono::DateTime<chrono::Utc>,
    last_active: chrono::DateTime<chrono::Utc>,
    source_ip: String,
    user_agent: String,
}

/// One WebSocket API: its routes and its open connections.
pub struct WsApi {
    routes: HashMap<String, (Invoke, bool)>,
    selection: Vec<String>,
    stage: String,
    connections: Mutex<HashMap<String, Connection>>,
}

impl std::fmt::Debug for WsApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsApi")
            .field("routes", &self.routes.keys().collect::<Vec<_>>())
            .field("stage", &self.stage)
            .finish_non_exhaustive()
    }
}

impl WsApi {
    /// Binds `routes` to `functions` (by logical id); every route must have its function.
    pub fn new(
        routes: &[WsRoute],
        selection: Option<&str>,
        stage: &str,
        functions: &HashMap<String, Invoke>,
    ) -> Result<Self, String> {
        let mut bound = HashMap::new();
        for route in routes {
            let invoke = functions.get(&route.function).cloned().ok_or_else(|| {
                format!(
                    "WebSocket route {} has no runnable function {}",
                    route.route_key, route.function
                )
            })?;
            bound.insert(route.route_key.clone(), (invoke, route.two_way));
        }
        let expression = selection.unwrap_or("$request.body.action");
        let selection = expression
            .strip_prefix("$request.body.")
            .ok_or_else(|| format!("route selection {expression} is not $request.body.<field>"))?
            .split('.')
            .map(str::to_owned)
            .collect();
        Ok(Self {
            routes: bound,
            selection,
            stage: stage.to_owned(),
            connections: Mutex::new(HashMap::new()),
        })
    }

    /// The route keys served.
    pub fn route_keys(&self) -> Vec<String> {
        self.routes.keys().cloned().collect()
    }

    /// The axum service: upgrades on `/` and `/{stage}`, management under `@connections`.
    pub fn router(self) -> Router {
        Router::new()
            .route("/", get(upgrade))
            .route("/{stage}", get(upgrade))
            .route("/@connections/{id}", any(manage))
            .route("/{stage}/@connections/{id}", any(manage_staged))
            .with_state(Arc::new(self))
    }

    fn route_for(&self, body: &str) -> Option<String> {
        let parsed: Value = serde_json::from_str(body).ok()?;
        let mut v = &parsed;
        for key in &self.selection {
            v = v.get(key)?;
        }
        v.as_str().map(str::to_owned)
    }

    fn send(&self, id: &str, message: Message) -> bool {
        let Ok(mut conns) = self.connections.lock() else {
            return false;
        };
        match conns.get_mut(id) {
            Some(c) if c.tx.send(message).is_ok() => {
                c.last_active = chrono::Utc::now();
                true
            }
            Some(_) => {
                conns.remove(id);
                false
            }
            None => false,
        }
    }

    fn context(
        &self,
        id: &str,
        route: &str,
        kind: &str,
        peer: &str,
        user_agent: &str,
        connected_at: i64,
    ) -> Value {
        let now = chrono::Utc::now();
        json!({
            "routeKey": route,
            "eventType": kind,
            "messageDirection": "IN",
            "extendedRequestId": uuid::Uuid::new_v4().to_string(),
            "requestId": uuid::Uuid::new_v4().to_string(),
            "requestTime": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "requestTimeEpoch": now.timestamp_millis(),
            "stage": self.stage,
            "connectedAt": connected_at,
            "identity": {"sourceIp": peer, "userAgent": user_agent},
            "domainName": "127.0.0.1",
            "connectionId": id,
            "apiId": "local-ws",
        })
    }
}

fn header_maps(headers: &HeaderMap) -> (BTreeMap<String, String>, BTreeMap<String, Vec<String>>) {
    let mut single = BTreeMap::new();
    let mut multi: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in headers {
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        single.insert(k.as_str().to_owned(), v.clone());
        multi.entry(k.as_str().to_owned()).or_default().push(v);
    }
    (single, multi)
}

fn query_maps(raw: Option<&str>) -> (BTreeMap<String, String>, BTreeMap<String, Vec<String>>) {
    let mut single = BTreeMap::new();
    let mut multi: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (pulse_http::percent_decode(k), pulse_http::percent_decode(v));
        single.insert(k.clone(), v.clone());
        multi.entry(k).or_default().push(v);
    }
    (single, multi)
}

/// A connection id like API Gateway's: 12 random bytes in base64, from the URL-safe alphabet
/// so it stays one path segment of `@connections/{id}`.
fn connection_id() -> String {
    base64::engine::general_purpose::URL_SAFE.encode(&uuid::Uuid::new_v4().as_bytes()[..12])
}

async fn upgrade(
    State(api): State<Arc<WsApi>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let id = connection_id();
    let connected_at = chrono::Utc::now();
    let peer_ip = peer.ip().to_string();
    let user_agent = headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let mut ws = ws.max_message_size(MAX_FRAME);
    if let Some((invoke, _)) = api.routes.get("$connect") {
        let (h, mh) = header_maps(&headers);
        let (q, mq) = query_maps(query.as_deref());
        let mut event = json!({
            "headers": h, "multiValueHeaders": mh,
            "requestContext": api.context(&id, "$connect", "CONNECT", &peer_ip, &user_agent, connected_at.timestamp_millis()),
            "isBase64Encoded": false,
        });
        if !q.is_empty() {
            event["queryStringParameters"] = json!(q);
            event["multiValueQueryStringParameters"] = json!(mq);
        }
        match invoke(event).await {
            Ok(result) => {
                let status = result
                    .get("statusCode")
                    .and_then(Value::as_u64)
                    .unwrap_or(200);
                if !(200..300).contains(&status) {
                    let code = u16::try_from(status)
                        .ok()
                        .and_then(|s| StatusCode::from_u16(s).ok())
                        .unwrap_or(StatusCode::FORBIDDEN);
                    let body = result
                        .get("body")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned();
                    return (code, body).into_response();
                }
                let protocol = result
                    .pointer("/headers/sec-websocket-protocol")
                    .or_else(|| result.pointer("/headers/Sec-WebSocket-Protocol"))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                if let Some(p) = protocol {
                    ws = ws.protocols([p]);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "$connect function failed");
                return (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
                    .into_response();
            }
        }
    }
    ws.on_upgrade(move |socket| connection(api, socket, id, connected_at, peer_ip, user_agent))
}

async fn connection(
    api: Arc<WsApi>,
    socket: WebSocket,
    id: String,
    connected_at: chrono::DateTime<chrono::Utc>,
    peer: String,
    user_agent: String,
) {
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    if let Ok(mut conns) = api.connections.lock() {
        conns.insert(
            id.clone(),
            Connection {
                tx,
                connected_at,
                last_active: connected_at,
                source_ip: peer.clone(),
                user_agent: user_agent.clone(),
            },
        );
    }
    // When the server closes the connection (DeleteConnection), API Gateway does not wait for
    // the client's close reply: the writer tells the reader to stop.
    let (closed_tx, mut closed_rx) = tokio::sync::watch::channel(false);
    let writer = tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            let closing = matches!(msg, Message::Close(_));
            if sink.send(msg).await.is_err() || closing {
                break;
            }
        }
        let _ = closed_tx.send(true);
    });
    let mut close_code = 1005u16;
    loop {
        let frame = tokio::select! {
            frame = stream.next() => frame,
            _ = closed_rx.wait_for(|closed| *closed) => {
                close_code = 1000;
                None
            }
        };
        let Some(frame) = frame else { break };
        let (body, is_binary) = match frame {
            Ok(Message::Text(t)) => (t.to_string(), false),
            Ok(Message::Binary(b)) => (STANDARD.encode(&b), true),
            Ok(Message::Close(c)) => {
                close_code = c.map_or(1005, |c| c.code);
                break;
            }
            Ok(_) => continue,
            // A message past the limit: API Gateway closes with 1009 (message too big).
            Err(e) if e.to_string().contains("too long") => {
                close_code = 1009;
                api.send(
                    &id,
                    Message::Close(Some(axum::extract::ws::CloseFrame {
                        code: 1009,
                        reason: "message too big: at most 128 KB".into(),
                    })),
                );
                let _ = tokio::time::timeout(
                    std::time::Duration::from_secs(1),
                    closed_rx.wait_for(|closed| *closed),
                )
                .await;
                break;
            }
            Err(_) => {
                close_code = 1006;
                break;
            }
        };
        if let Some(c) = api
            .connections
            .lock()
            .ok()
            .as_mut()
            .and_then(|conns| conns.get_mut(&id))
        {
            c.last_active = chrono::Utc::now();
        }
        let selected = if is_binary {
            None
        } else {
            api.route_for(&body)
        };
        let route_key = selected.filter(|k| api.routes.contains_key(k)).or_else(|| {
            api.routes
                .contains_key("$default")
                .then(|| "$default".to_owned())
        });
        let Some(route_key) = route_key else {
            let forbidden = json!({"message": "Forbidden", "connectionId": id, "requestId": uuid::Uuid::new_v4().to_string()});
            api.send(&id, Message::Text(forbidden.to_string().into()));
            continue;
        };
        let Some((invoke, two_way)) = api.routes.get(&route_key).cloned() else {
            continue;
        };
        let mut context = api.context(
            &id,
            &route_key,
            "MESSAGE",
            &peer,
            &user_agent,
            connected_at.timestamp_millis(),
        );
        context["messageId"] = json!(uuid::Uuid::new_v4().to_string());
        let event = json!({"requestContext": context, "body": body, "isBase64Encoded": is_binary});
        // Frames of one connection are handled in order, as API Gateway invokes them.
        match invoke(event).await {
            Ok(result) if two_way => {
                if let Some(reply) = result.get("body").and_then(Value::as_str) {
                    api.send(&id, Message::Text(reply.to_owned().into()));
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(route = %route_key, error = %e, "WebSocket route function failed");
                let failed = json!({"message": "Internal server error", "connectionId": id, "requestId": uuid::Uuid::new_v4().to_string()});
                api.send(&id, Message::Text(failed.to_string().into()));
            }
        }
    }
    if let Ok(mut conns) = api.connections.lock() {
        conns.remove(&id);
    }
    writer.abort();
    if let Some((invoke, _)) = api.routes.get("$disconnect").cloned() {
        let mut context = api.context(
            &id,
            "$disconnect",
            "DISCONNECT",
            &peer,
            &user_agent,
            connected_at.timestamp_millis(),
        );
        context["disconnectStatusCode"] = json!(close_code);
        context["disconnectReason"] = json!("");
        let event = json!({"requestContext": context, "headers": {}, "isBase64Encoded": false});
        if let Err(e) = invoke(event).await {
            tracing::error!(error = %e, "$disconnect function failed");
        }
    }
}

async fn manage_staged(
    State(api): State<Arc<WsApi>>,
    Path((_stage, id)): Path<(String, String)>,
    method: http::Method,
    body: Bytes,
) -> Response {
    management(&api, &id, &method, body)
}

async fn manage(
    State(api): State<Arc<WsApi>>,
    Path(id): Path<String>,
    method: http::Method,
    body: Bytes,
) -> Response {
    management(&api, &id, &method, body)
}

fn gone(id: &str) -> Response {
    (
        StatusCode::GONE,
        [("x-amzn-errortype", "GoneException")],
        axum::Json(json!({"message": format!("connection {id} is gone")})),
    )
        .into_response()
}

fn management(api: &WsApi, id: &str, method: &http::Method, body: Bytes) -> Response {
    match *method {
        http::Method::POST => {
            if body.len() > MAX_FRAME {
                return (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    [("x-amzn-errortype", "PayloadTooLargeException")],
                    axum::Json(json!({"message": "the frame exceeds 128 KB"})),
                )
                    .into_response();
            }
            let message = match std::str::from_utf8(&body) {
                Ok(text) => Message::Text(text.to_owned().into()),
                Err(_) => Message::Binary(body),
            };
            if api.send(id, message) {
                StatusCode::OK.into_response()
            } else {
                gone(id)
            }
        }
        http::Method::GET => {
            let info = api.connections.lock().ok().and_then(|conns| {
                conns.get(id).map(|c| {
                    json!({
                        "connectedAt": c.connected_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                        "lastActiveAt": c.last_active.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                        "identity": {"sourceIp": c.source_ip, "userAgent": c.user_agent},
                    })
                })
            });
            match info {
                Some(info) => axum::Json(info).into_response(),
                None => gone(id),
            }
        }
        http::Method::DELETE => {
            let conn = api
                .connections
                .lock()
                .ok()
                .and_then(|mut conns| conns.remove(id));
            match conn {
                Some(c) => {
                    let _ = c.tx.send(Message::Close(None));
                    StatusCode::NO_CONTENT.into_response()
                }
                None => gone(id),
            }
        }
        _ => StatusCode::METHOD_NOT_ALLOWED.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_ids_stay_one_path_segment() {
        for _ in 0..2000 {
            let id = connection_id();
            assert!(!id.contains(['/', '+', '?', '#']), "{id}");
            assert_eq!(id.len(), 16);
        }
    }
}
