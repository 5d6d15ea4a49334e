//! The WebSocket API's function (`$connect`, `$disconnect`, `subscribe`, `unsubscribe`,
//! `ping`, `$default`), see [`pulse_metrics::live`].
//!
//! `$connect` verifies the JWT in the `token` query parameter as the HTTP API's authorizer
//! does and stores the connection with its tenant and roles (TTL: API Gateway's two-hour
//! limit); any failure is a 401 and API Gateway refuses the upgrade. `$disconnect` deletes
//! the connection and with it its subscriptions. Every other frame is answered on the same
//! connection (two-way routes): `pong`, `ack` with the subscription id, or an `error` frame
//! with a status; a bad frame never closes the connection. A subscription to a metric the
//! caller's role may not see is refused with 403. A new subscription is acknowledged (posted
//! through the management API) and answered with a `snapshot` — the metrics' current values
//! ([`pulse_metrics::live::current_values`]) or the query's answer — so the client never waits
//! for the next event. A query naming a derived metric is resolved here, once: the
//! subscription keeps the definition, so the push needs no definitions.

use authorizer::jwks::JwtVerifier;
use lambda_runtime::Diagnostic;
use pulse_core::Config;
use pulse_core::config::ClaimNames;
use pulse_core::identity::Caller;
use pulse_metrics::live::{
    self, ClientMessage, Connection, FrameError, LiveQuery, MAX_SUBSCRIPTIONS, Subscription, Target,
};
use pulse_metrics::query::required_role;
use pulse_metrics::rollup::{Resolution, Retention};
use pulse_store::app::DynamoApp;
use pulse_store::metrics::DynamoMetrics;
use pulse_store::read::Reader;
use pulse_store::{
    ConnectionPush, ConnectionStore, DefinitionStore, PushError, RollupBuckets, SeriesCatalog,
    StoreError, Totals,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;
use thiserror::Error;

/// An API Gateway WebSocket event, as far as this function reads it.
#[derive(Debug, Clone, Deserialize)]
pub struct WsEvent {
    #[serde(rename = "requestContext")]
    pub context: WsContext,
    #[serde(default, rename = "queryStringParameters")]
    pub query: Option<HashMap<String, String>>,
    #[serde(default)]
    pub body: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WsContext {
    #[serde(rename = "routeKey")]
    pub route_key: String,
    #[serde(rename = "connectionId")]
    pub connection_id: String,
}

/// The answer API Gateway reads: the status (for `$connect`) and the frame to send back.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WsResponse {
    #[serde(rename = "statusCode")]
    pub status_code: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

impl WsResponse {
    fn status(status_code: u16) -> Self {
        Self {
            status_code,
            body: None,
        }
    }
    fn frame(frame: &Value) -> Self {
        Self {
            status_code: 200,
            body: Some(frame.to_string()),
        }
    }
}

/// What makes an invocation fail (API Gateway then answers "Internal server error").
/// Seconds a client waits before retrying a frame that storage failed.
pub const RETRY_AFTER_SECS: u64 = 2;

#[derive(Debug, Error)]
pub enum LiveError {
    #[error("the connection store is unavailable")]
    Store(#[from] StoreError),
}

impl From<LiveError> for Diagnostic {
    fn from(e: LiveError) -> Self {
        Self {
            error_type: "LiveUnavailable".to_owned(),
            error_message: e.to_string(),
        }
    }
}

/// The function with its dependencies: connections and metric definitions, metric buckets,
/// and the management API.
#[derive(Debug)]
pub struct Live<S, M, P> {
    store: S,
    metrics: M,
    push: P,
    verifier: Option<JwtVerifier>,
    claims: ClaimNames,
    retention: Retention,
    clock: fn() -> i64,
}

/// Builds the handler from the function's configuration, as `main` and the local cloud do.
pub fn wire(
    config: &Config,
    aws: &aws_config::SdkConfig,
) -> Live<DynamoApp, DynamoMetrics, pulse_store::push::ManagementApi> {
    Live::new(
        DynamoApp::new(aws, &config.tables.app),
        DynamoMetrics::new(aws, &config.tables.metrics, config.retention),
        pulse_store::push::ManagementApi::new(aws, config.ws_endpoint.as_deref()),
        config.jwt.clone().map(JwtVerifier::new),
        config.claims.clone(),
    )
    .with_retention(config.retention)
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

impl<S, M, P> Live<S, M, P>
where
    S: ConnectionStore + DefinitionStore,
    M: RollupBuckets + SeriesCatalog + Totals,
    P: ConnectionPush,
{
    pub fn new(
        store: S,
        metrics: M,
        push: P,
        verifier: Option<JwtVerifier>,
        claims: ClaimNames,
    ) -> Self {
        Self {
            store,
            metrics,
            push,
            verifier,
            claims,
            retention: Retention::default(),
            clock: now_secs,
        }
    }

    /// The same function with the tenant data's retention (queries may not reach past it).
    pub fn with_retention(self, retention: Retention) -> Self {
        Self { retention, ..self }
    }

    /// The same function reading time from `clock` (epoch s), for tests.
    pub fn with_clock(self, clock: fn() -> i64) -> Self {
        Self { clock, ..self }
    }

    /// Answers one WebSocket event.
    pub async fn handle(&self, event: WsEvent) -> Result<WsResponse, LiveError> {
        let id = event.context.connection_id.clone();
        match event.context.route_key.as_str() {
            "$connect" => self.connect(&id, event.query.as_ref()).await,
            "$disconnect" => {
                self.store.delete_connection(&id).await?;
                tracing::info!(connection = %id, "disconnected");
                Ok(WsResponse::status(200))
            }
            _ => {
                let frame = match live::parse(event.body.as_deref().unwrap_or("")) {
                    Ok(message) => {
                        let client_id = message.id().to_owned();
                        match self.message_retrying(&id, message).await {
                            Ok(frame) => frame,
                            // The client learns which request failed and when to retry, instead
                            // of API Gateway's generic "Internal server error".
                            Err(LiveError::Store(e)) => {
                                tracing::warn!(connection = %id, error = %e, source = ?std::error::Error::source(&e), "storage failed a frame");
                                let mut frame = FrameError::new(
                                    Some(client_id),
                                    503,
                                    "storage is busy; retry this request in a few seconds",
                                )
                                .frame();
                                frame["retry_after"] = json!(RETRY_AFTER_SECS);
                                frame
                            }
                        }
                    }
                    Err(e) => e.frame(),
                };
                Ok(WsResponse::frame(&frame))
            }
        }
    }

    async fn connect(
        &self,
        id: &str,
        query: Option<&HashMap<String, String>>,
    ) -> Result<WsResponse, LiveError> {
        let Some(token) = query.and_then(|q| q.get("token")).filter(|t| !t.is_empty()) else {
            tracing::info!(connection = %id, "connect refused: no token");
            return Ok(WsResponse::status(401));
        };
        let Some(verifier) = &self.verifier else {
            tracing::error!("no JWT issuer is configured; every connect is refused");
            return Ok(WsResponse::status(401));
        };
        let claims = match verifier.verify(token).await {
            Ok(claims) => claims,
            Err(e) => {
                tracing::info!(connection = %id, reason = %e, "connect refused");
                return Ok(WsResponse::status(401));
            }
        };
        let Ok(caller) = Caller::from_claims(&claims, &self.claims) else {
            return Ok(WsResponse::status(401));
        };
        // A token without a known role is refused here as on every HTTP route.
        if caller.admit(None).is_err() {
            tracing::info!(connection = %id, "connect refused: no known role");
            return Ok(WsResponse::status(403));
        }
        let connection = Connection {
            id: id.to_owned(),
            tenant: caller.tenant,
            subject: caller.subject,
            roles: caller.roles.into_iter().collect(),
            connected_at: (self.clock)(),
            subscriptions: Vec::new(),
            version: 0,
        };
        self.store.put_connection(&connection).await?;
        tracing::info!(connection = %id, tenant = %connection.tenant, "connected");
        Ok(WsResponse::status(200))
    }

    /// [`Self::message`], read again and retried when a concurrent write (the push) won.
    async fn message_retrying(&self, id: &str, message: ClientMessage) -> Result<Value, LiveError> {
        let mut attempts = 0;
        loop {
            match self.message(id, message.clone()).await {
                Err(LiveError::Store(StoreError::Conflict)) if attempts < 4 => attempts += 1,
                other => return other,
            }
        }
    }

    async fn message(&self, id: &str, message: ClientMessage) -> Result<Value, LiveError> {
        let (client_id, is_ping) = match &message {
            ClientMessage::Ping { id } => (id.clone(), true),
            ClientMessage::Subscribe { id, .. } | ClientMessage::Unsubscribe { id, .. } => {
                (id.clone(), false)
            }
        };
        if is_ping {
            return Ok(json!({"type": "pong", "id": client_id}));
        }
        let Some(mut connection) = self.store.connection(id).await? else {
            return Ok(FrameError::new(
                Some(client_id),
                401,
                "this connection is not known (expired?); reconnect",
            )
            .frame());
        };
        let reply = match message {
            ClientMessage::Subscribe {
                target,
                interval,
                resume,
                ..
            } => {
                // Limits before work: a flood of subscribes past the cap costs one read each.
                if connection.subscriptions.len() >= MAX_SUBSCRIPTIONS {
                    return Ok(FrameError::new(
                        Some(client_id),
                        409,
                        format!("a connection holds at most {MAX_SUBSCRIPTIONS} subscriptions"),
                    )
                    .frame());
                }
                // Seconds, rounded down: the subscriber counts as told no later than the
                // snapshot's read, so a change aggregated after it is always pushed.
                let now = (self.clock)();
                let (metrics, query, data) = match self.follow(&connection, target, now).await? {
                    Ok(followed) => followed,
                    Err((status, detail)) => {
                        return Ok(FrameError::new(Some(client_id), status, detail).frame());
                    }
                };
                let n = connection
                    .subscriptions
                    .iter()
                    .filter_map(|s| s.id.strip_prefix('s')?.parse::<u64>().ok())
                    .max()
                    .unwrap_or(0)
                    + 1;
                let subscription = format!("s{n}");
                // A reconnecting client continues its sequence with a fresh snapshot.
                let seq = resume.map_or(1, |last| last + 1);
                connection.subscriptions.push(Subscription {
                    id: subscription.clone(),
                    metrics,
                    query,
                    interval,
                    seq,
                    sent_ms: now * 1000,
                });
                self.store.put_connection(&connection).await?;
                let ack = json!({"type": "ack", "id": client_id, "subscription": subscription});
                match self.push.post(id, &ack.to_string()).await {
                    Ok(()) => {}
                    Err(PushError::Gone) => {
                        self.store.delete_connection(id).await?;
                        return Ok(FrameError::new(Some(client_id), 410, "gone").frame());
                    }
                    Err(PushError::Failed(e)) => {
                        tracing::error!(error = %e, source = ?std::error::Error::source(&e), "the ack could not be posted; answering with it instead of the snapshot");
                        return Ok(ack);
                    }
                    Err(PushError::Throttled) => {
                        tracing::warn!(
                            "the ack was throttled; answering with it instead of the snapshot"
                        );
                        return Ok(ack);
                    }
                }
                // A snapshot over the frame limit goes in parts: all but the last posted here.
                let mut parts = live::frames("snapshot", &subscription, seq, &data);
                let last = parts.pop().unwrap_or_default();
                for part in &parts {
                    if let Err(e) = self.push.post(id, part).await {
                        tracing::warn!(error = %e, "a snapshot part could not be posted");
                    }
                }
                return Ok(serde_json::from_str(&last).unwrap_or_default());
            }
            ClientMessage::Unsubscribe { subscription, .. } => {
                let before = connection.subscriptions.len();
                connection.subscriptions.retain(|s| s.id != subscription);
                if connection.subscriptions.len() == before {
                    return Ok(FrameError::new(
                        Some(client_id),
                        404,
                        format!("no subscription {subscription} on this connection"),
                    )
                    .frame());
                }
                json!({"type": "ack", "id": client_id, "subscription": subscription})
            }
            ClientMessage::Ping { .. } => json!({"type": "pong", "id": client_id}),
        };
        self.store.put_connection(&connection).await?;
        Ok(reply)
    }
}

/// What a subscription follows: its watched metrics, its query, and its snapshot's data; or
/// why it is refused (status, detail).
type Followed = Result<(Vec<String>, Option<LiveQuery>, Value), (u16, String)>;

impl<S, M, P> Live<S, M, P>
where
    S: ConnectionStore + DefinitionStore,
    M: RollupBuckets + SeriesCatalog + Totals,
    P: ConnectionPush,
{
    /// Checks a subscription's target against the caller's role and reads its snapshot.
    async fn follow(
        &self,
        connection: &Connection,
        target: Target,
        now: i64,
    ) -> Result<Followed, LiveError> {
        let forbidden = |metrics: &[String]| {
            metrics
                .iter()
                .find(|m| !connection.has(required_role(m)))
                .map(|m| (403, format!("your role may not see {m}")))
        };
        match target {
            Target::Metrics(metrics) => {
                if let Some(refused) = forbidden(&metrics) {
                    return Ok(Err(refused));
                }
                let data = self.current(connection, &metrics, now).await?;
                Ok(Ok((metrics, None, data)))
            }
            Target::Query(body) => {
                let q = match live::parse_query(&body, now, &self.retention) {
                    Ok(q) => q,
                    Err(detail) => return Ok(Err((400, detail))),
                };
                let derived = self
                    .store
                    .definitions(&connection.tenant)
                    .await?
                    .into_iter()
                    .find(|d| d.name == q.metric)
                    .and_then(|d| d.derived);
                if derived.is_some() && q.compare.is_some() {
                    return Ok(Err((
                        400,
                        "#/query/compare_to: a derived metric is not compared".to_owned(),
                    )));
                }
                let live_query = LiveQuery { body, derived };
                let watched = live_query.watched(&q.metric);
                if let Some(refused) = forbidden(&watched) {
                    return Ok(Err(refused));
                }
                let reader = Reader {
                    store: &self.metrics,
                    tenant: &connection.tenant,
                    now,
                };
                let answer = match &live_query.derived {
                    Some(d) => reader.derived_answer(&q, d).await?,
                    // A metric without data yet answers empty: it may start at any moment.
                    None => reader
                        .answer(&q)
                        .await?
                        .unwrap_or_else(|| pulse_metrics::query::compute(&q, &[])),
                };
                let data = live::answer_data(&answer, &q, None);
                Ok(Ok((watched, Some(live_query), data)))
            }
        }
    }

    /// The current values of `metrics` for the connection's tenant.
    async fn current(
        &self,
        connection: &Connection,
        metrics: &[String],
        now: i64,
    ) -> Result<Value, LiveError> {
        let reader = Reader {
            store: &self.metrics,
            tenant: &connection.tenant,
            now,
        };
        let minute = Resolution::Minute.window_start(now);
        let minutes = reader
            .totals(Resolution::Minute, minute - 4 * 60, now + 1)
            .await?;
        let today = Resolution::Day.window_start(now);
        let hours = reader.totals(Resolution::Hour, today, now + 1).await?;
        Ok(live::current_values(metrics, &minutes, &hours, now))
    }
}

#[cfg(test)]
mod tests;
