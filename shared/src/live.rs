//! Live updates over the WebSocket API: connections, subscriptions, and the frames clients
//! and Pulse exchange.
//!
//! A client connects with its JWT in the `token` query parameter (browsers cannot set headers
//! on a WebSocket); the connection is stored with its tenant and roles for API Gateway's
//! two-hour connection limit. Client frames are JSON with an `action` and a client `id`:
//! `subscribe` (`metrics`, an `interval` of 1s, 5s, 30s or 1m, and after a reconnect
//! `resume` with the last `seq` seen, so the sequence continues), `unsubscribe`
//! (`subscription`), `ping`. Every reply names the client `id`; a bad frame gets an `error`
//! frame with a status and the connection stays open.

use crate::aggregate::Bucket;
use crate::identity::{Role, TenantId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// API Gateway closes a WebSocket connection after two hours.
pub const CONNECTION_SECS: i64 = 2 * 3_600;
/// Metrics one subscription may name.
pub const MAX_METRICS: usize = 20;
/// Subscriptions one connection may hold.
pub const MAX_SUBSCRIPTIONS: usize = 20;

/// How often a subscription wants updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Interval {
    #[serde(rename = "1s")]
    OneSecond,
    #[serde(rename = "5s")]
    FiveSeconds,
    #[serde(rename = "30s")]
    ThirtySeconds,
    #[serde(rename = "1m")]
    OneMinute,
}

impl Interval {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "1s" => Some(Self::OneSecond),
            "5s" => Some(Self::FiveSeconds),
            "30s" => Some(Self::ThirtySeconds),
            "1m" => Some(Self::OneMinute),
            _ => None,
        }
    }

    pub fn millis(self) -> i64 {
        match self {
            Self::OneSecond => 1_000,
            Self::FiveSeconds => 5_000,
            Self::ThirtySeconds => 30_000,
            Self::OneMinute => 60_000,
        }
    }
}

/// A subscription of a connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    /// Server-assigned id (`s1`, `s2`, …), unique per connection.
    pub id: String,
    pub metrics: Vec<String>,
    pub interval: Interval,
    /// Sequence number of the last frame sent.
    pub seq: u64,
    /// Epoch ms of the last frame sent.
    pub sent_ms: i64,
}

/// An open connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Connection {
    pub id: String,
    pub tenant: TenantId,
    pub subject: String,
    pub roles: Vec<Role>,
    /// Epoch s.
    pub connected_at: i64,
    pub subscriptions: Vec<Subscription>,
    /// Writes so far: the `ws` function (subscriptions) and the push (sequence numbers) both
    /// write a connection, each on the condition that it is unchanged since read.
    #[serde(default)]
    pub version: u64,
}

impl Connection {
    pub fn has(&self, role: Role) -> bool {
        self.roles.iter().any(|r| *r >= role)
    }
}

/// The current values of `metrics` at `now` (epoch s) from their totals by minute (at least
/// the last 5 minutes) and by hour (today so far): per metric, the current minute (`count`,
/// `sum`, `avg`, `p95`, `uniques`), the last 5 minutes (`count`, `uniques`) and today (`count`,
/// `sum`). A metric without data is all zeros, so a client can render it at once.
pub fn current_values(
    metrics: &[String],
    minutes: &BTreeMap<String, Vec<(i64, Bucket)>>,
    hours: &BTreeMap<String, Vec<(i64, Bucket)>>,
    now: i64,
) -> Value {
    let minute = now - now.rem_euclid(60);
    let today = now - now.rem_euclid(86_400);
    let merged = |data: &BTreeMap<String, Vec<(i64, Bucket)>>, m: &str, from: i64| {
        let mut out = Bucket::default();
        for (start, b) in data.get(m).into_iter().flatten() {
            if *start >= from && *start <= now {
                out.merge(b);
            }
        }
        out
    };
    let mut out = serde_json::Map::new();
    for m in metrics {
        let current = merged(minutes, m, minute);
        let recent = merged(minutes, m, minute - 4 * 60);
        let day = merged(hours, m, today);
        out.insert(
            m.clone(),
            json!({
                "minute": chrono::DateTime::from_timestamp(minute, 0)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                "count": current.count,
                "sum": current.sum,
                "avg": (current.count > 0).then(|| current.sum / current.count as f64),
                "p95": current.quantile(0.95),
                "uniques": current.unique_visitors(),
                "last_5m": {"count": recent.count, "uniques": recent.unique_visitors()},
                "today": {"count": day.count, "sum": day.sum},
            }),
        );
    }
    Value::Object(out)
}

/// A frame a client sent.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMessage {
    Subscribe {
        id: String,
        metrics: Vec<String>,
        interval: Interval,
        /// The last `seq` a reconnecting client saw: the snapshot continues from it.
        resume: Option<u64>,
    },
    Unsubscribe {
        id: String,
        subscription: String,
    },
    Ping {
        id: String,
    },
}

/// A frame's problem: the client id if it could be read, a status and why.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameError {
    pub id: Option<String>,
    pub status: u16,
    pub detail: String,
}

impl FrameError {
    pub fn new(id: Option<String>, status: u16, detail: impl Into<String>) -> Self {
        Self {
            id,
            status,
            detail: detail.into(),
        }
    }

    /// The `error` frame.
    pub fn frame(&self) -> Value {
        json!({"type": "error", "id": self.id, "status": self.status, "detail": self.detail})
    }
}

/// Parses a client frame.
pub fn parse(body: &str) -> Result<ClientMessage, FrameError> {
    let value: Value = serde_json::from_str(body)
        .map_err(|e| FrameError::new(None, 400, format!("a frame is a JSON object: {e}")))?;
    let obj = value
        .as_object()
        .ok_or_else(|| FrameError::new(None, 400, "a frame is a JSON object"))?;
    let id = obj
        .get("id")
        .and_then(Value::as_str)
        .filter(|i| (1..=64).contains(&i.len()))
        .map(str::to_owned);
    let bad = |detail: &str| FrameError::new(id.clone(), 400, detail);
    let Some(client_id) = id.clone() else {
        return Err(bad("every frame has an \"id\" of 1 to 64 characters"));
    };
    match obj.get("action").and_then(Value::as_str) {
        Some("ping") => Ok(ClientMessage::Ping { id: client_id }),
        Some("subscribe") => {
            let metrics: Vec<String> = obj
                .get("metrics")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|m| m.as_str().filter(|s| !s.is_empty() && s.len() <= 128))
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            let count = obj.get("metrics").and_then(Value::as_array).map(Vec::len);
            if metrics.is_empty() || count != Some(metrics.len()) || metrics.len() > MAX_METRICS {
                return Err(bad(&format!(
                    "\"metrics\" is a list of 1 to {MAX_METRICS} metric names"
                )));
            }
            let interval = match obj.get("interval") {
                None => Interval::FiveSeconds,
                Some(v) => v
                    .as_str()
                    .and_then(Interval::parse)
                    .ok_or_else(|| bad("\"interval\" is one of 1s, 5s, 30s, 1m"))?,
            };
            let resume = match obj.get("resume") {
                None | Some(Value::Null) => None,
                Some(v) => Some(
                    v.as_u64()
                        .ok_or_else(|| bad("\"resume\" is the last seq received"))?,
                ),
            };
            Ok(ClientMessage::Subscribe {
                id: client_id,
                metrics,
                interval,
                resume,
            })
        }
        Some("unsubscribe") => {
            let subscription = obj
                .get("subscription")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("\"subscription\" names the subscription to end"))?;
            Ok(ClientMessage::Unsubscribe {
                id: client_id,
                subscription: subscription.to_owned(),
            })
        }
        Some(other) => Err(bad(&format!(
            "unknown action {other:?}; one of subscribe, unsubscribe, ping"
        ))),
        None => Err(bad("every frame has an \"action\"")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_parse_into_messages_or_precise_errors() {
        assert_eq!(
            parse(r#"{"action":"subscribe","id":"c1","metrics":["page_view"],"interval":"1s"}"#),
            Ok(ClientMessage::Subscribe {
                id: "c1".into(),
                metrics: vec!["page_view".into()],
                interval: Interval::OneSecond,
                resume: None,
            })
        );
        assert_eq!(
            parse(r#"{"action":"ping","id":"p"}"#),
            Ok(ClientMessage::Ping { id: "p".into() })
        );
        for (frame, id) in [
            ("not json", None),
            (r#"{"action":"ping"}"#, None),
            (r#"{"action":"dance","id":"x"}"#, Some("x")),
            (r#"{"action":"subscribe","id":"x","metrics":[]}"#, Some("x")),
            (
                r#"{"action":"subscribe","id":"x","metrics":["a"],"interval":"2s"}"#,
                Some("x"),
            ),
            (r#"{"action":"unsubscribe","id":"x"}"#, Some("x")),
        ] {
            let err = parse(frame).expect_err(frame);
            assert_eq!((err.status, err.id.as_deref()), (400, id), "{frame}");
            assert_eq!(err.frame()["type"], "error");
        }
    }
}
