//! Live updates over the WebSocket API: connections, subscriptions, and the frames clients
//! and Pulse exchange.
//!
//! A client connects with its JWT in the `token` query parameter (browsers cannot set headers
//! on a WebSocket); the connection is stored with its tenant and roles for API Gateway's
//! two-hour connection limit. Client frames are JSON with an `action` and a client `id`:
//! `subscribe` (`metrics`, or a `query` in the metrics-query format; an `interval` of 1s, 5s,
//! 30s or 1m; after a reconnect `resume` with the last `seq` seen, so the sequence continues),
//! `unsubscribe` (`subscription`), `ping`. Every reply names the client `id`; a bad frame gets
//! an `error` frame with a status and the connection stays open.
//!
//! A `metrics` subscription gets each metric's current values ([`current_values`]). A `query`
//! subscription gets the query's answer over a moving range (a relative `time_range` of at
//! most [`MAX_QUERY_RANGE`]): the whole answer in the snapshot, then in each update only the
//! points from [`tail_start`] on — the windows live events can still change — with `since`
//! saying so; a client replaces its points from `since` on and drops those before `range.start`.

use crate::aggregate::Bucket;
use crate::definitions::Derived;
use crate::query::{self, Answer, Query};
use crate::rollup::Retention;
use pulse_core::error::ApiError;
use pulse_core::identity::{Role, TenantId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// API Gateway closes a WebSocket connection after two hours.
pub const CONNECTION_SECS: i64 = 2 * 3_600;
/// Metrics one subscription may name.
pub const MAX_METRICS: usize = 20;
/// Subscriptions one connection may hold.
pub const MAX_SUBSCRIPTIONS: usize = 20;
/// The longest moving range a query subscription may follow, in seconds.
pub const MAX_QUERY_RANGE: i64 = 86_400;
/// Events of minutes that ended longer ago than this are not merged live (the stream leaves
/// them to the rollup job), so live updates only ever change the last this-many seconds.
pub const LIVE_SECS: i64 = 600;
/// API Gateway's WebSocket frame limit is 32 KB; frames stay under this.
pub const MAX_FRAME_BYTES: usize = 30 * 1024;

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
    /// The metrics watched: a change to one makes the subscription due.
    pub metrics: Vec<String>,
    /// For a query subscription, the query it follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<LiveQuery>,
    pub interval: Interval,
    /// Sequence number of the last frame sent.
    pub seq: u64,
    /// Epoch ms of the last frame sent.
    pub sent_ms: i64,
}

/// A query subscription's query: the request as sent (its relative range moves with time, so
/// it is parsed again at each update) and, for a derived metric, its definition when
/// subscribed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveQuery {
    pub body: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub derived: Option<Derived>,
}

impl LiveQuery {
    /// The metrics whose changes move the answer.
    pub fn watched(&self, metric: &str) -> Vec<String> {
        match &self.derived {
            Some(d) => d.of.to_vec(),
            None => vec![metric.to_owned()],
        }
    }
}

/// Parses a subscription's `query` at `now` (epoch s): a metrics query whose `time_range` is a
/// relative range of at most [`MAX_QUERY_RANGE`].
pub fn parse_query(body: &Value, now: i64, retention: &Retention) -> Result<Query, String> {
    let moving = body
        .get("time_range")
        .and_then(Value::as_str)
        .and_then(query::relative);
    if moving.is_none_or(|len| len > MAX_QUERY_RANGE) {
        return Err(
            "#/query/time_range: a live query follows a relative range of at most 24h, such as \"1h\""
                .to_owned(),
        );
    }
    query::parse(body, now, retention).map_err(|e| match e {
        ApiError::Validation { errors, .. } => errors
            .iter()
            .map(|f| format!("#/query{}: {}", &f.pointer[1..], f.detail))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    })
}

/// The first window of `q` that live events can still change at `now`: updates carry the
/// points from here on.
pub fn tail_start(q: &Query, now: i64) -> i64 {
    q.resolution.window_start(now - LIVE_SECS).max(q.start)
}

/// The part of `q` live events can still change at `now`: from [`tail_start`] to its end. A
/// range up to now also takes in the bucket that starts this very second (ranges are
/// half-open and `now` whole seconds: an event in a minute's first second would otherwise miss
/// the update it triggered).
pub fn tail(q: &Query, now: i64) -> Query {
    Query {
        start: tail_start(q, now),
        end: if q.end == now { now + 1 } else { q.end },
        compare: None,
        ..q.clone()
    }
}

/// A query answer as frame data: the answer, its `range`, and for an update the `since` from
/// which its points replace the client's.
pub fn answer_data(answer: &Answer, q: &Query, since: Option<i64>) -> Value {
    let mut data = serde_json::to_value(answer).unwrap_or_default();
    let at = |t: i64| {
        chrono::DateTime::from_timestamp(t, 0)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    };
    data["range"] = json!({"start": at(q.start), "end": at(q.end)});
    if let Some(since) = since {
        data["since"] = json!(at(since));
    }
    data
}

/// The frames of one `snapshot` or `metrics_update`: one, or when it would pass
/// [`MAX_FRAME_BYTES`] several with the same `seq` and a numbered `part` — metric values split
/// by metric, a query answer's points split in runs (every part repeats the answer's other
/// fields).
pub fn frames(kind: &str, sub: &str, seq: u64, data: &Value) -> Vec<String> {
    let frame = |data: Value, part: Option<usize>| {
        let mut f = json!({"type": kind, "subscription": sub, "seq": seq, "data": data});
        if let Some(p) = part {
            f["part"] = json!(p);
        }
        f.to_string()
    };
    let whole = frame(data.clone(), None);
    if whole.len() <= MAX_FRAME_BYTES {
        return vec![whole];
    }
    let budget = MAX_FRAME_BYTES - 512;
    let mut parts: Vec<Value> = Vec::new();
    if let Some(points) = data.get("data").and_then(Value::as_array) {
        let mut shell = data.clone();
        shell["data"] = json!([]);
        shell.as_object_mut().map(|o| o.remove("comparison"));
        let base = shell.to_string().len();
        let mut run: Vec<Value> = Vec::new();
        let mut size = base;
        for p in points {
            let add = p.to_string().len() + 1;
            if size + add > budget && !run.is_empty() {
                let mut part = shell.clone();
                part["data"] = Value::Array(std::mem::take(&mut run));
                parts.push(part);
                size = base;
            }
            size += add;
            run.push(p.clone());
        }
        let mut last = shell;
        last["data"] = Value::Array(run);
        if let Some(c) = data.get("comparison") {
            // The compared answer travels whole when it fits in the last part, else alone.
            if last.to_string().len() + c.to_string().len() <= budget {
                last["comparison"] = c.clone();
            } else {
                parts.push(last);
                last = json!({"comparison": c});
            }
        }
        parts.push(last);
    } else if let Some(values) = data.as_object() {
        let mut part = serde_json::Map::new();
        let mut size = 0;
        for (m, v) in values {
            let add = m.len() + v.to_string().len() + 8;
            if size + add > budget && !part.is_empty() {
                parts.push(Value::Object(std::mem::take(&mut part)));
                size = 0;
            }
            size += add;
            part.insert(m.clone(), v.clone());
        }
        parts.push(Value::Object(part));
    }
    parts
        .into_iter()
        .enumerate()
        .map(|(i, d)| frame(d, Some(i + 1)))
        .collect()
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
        target: Target,
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

/// What a subscription follows.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// Each metric's current values.
    Metrics(Vec<String>),
    /// A metrics query (the request body of `POST /api/v1/metrics/query`) over a moving range.
    Query(Value),
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

impl ClientMessage {
    /// The client's id of the request, echoed on every answer to it.
    pub fn id(&self) -> &str {
        match self {
            ClientMessage::Ping { id }
            | ClientMessage::Subscribe { id, .. }
            | ClientMessage::Unsubscribe { id, .. } => id,
        }
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
            let target = match (obj.get("metrics"), obj.get("query")) {
                (Some(_), Some(_)) => {
                    return Err(bad(
                        "a subscription has \"metrics\" or a \"query\", not both",
                    ));
                }
                (None, Some(q)) if q.is_object() => Target::Query(q.clone()),
                (None, Some(_)) => return Err(bad("\"query\" is a metrics query object")),
                (metrics, None) => {
                    let list = metrics.and_then(Value::as_array);
                    let names: Vec<String> = list
                        .into_iter()
                        .flatten()
                        .filter_map(|m| m.as_str().filter(|s| !s.is_empty() && s.len() <= 128))
                        .map(str::to_owned)
                        .collect();
                    if names.is_empty()
                        || list.map(Vec::len) != Some(names.len())
                        || names.len() > MAX_METRICS
                    {
                        return Err(bad(&format!(
                            "\"metrics\" is a list of 1 to {MAX_METRICS} metric names (or send a \"query\")"
                        )));
                    }
                    Target::Metrics(names)
                }
            };
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
                target,
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
    fn a_live_tail_at_a_minutes_first_second_holds_that_minute() {
        // Given a query of the last hour by minute, answered at the first second of a minute
        let now = 1_795_341_600; // 2026-11-22T10:00:00Z
        let body = json!({"metric_name": "page_view", "time_range": "1h", "interval": "1m"});
        let q = parse_query(&body, now, &Retention::default()).expect("a query");
        // When its live tail is taken
        let t = tail(&q, now);
        // Then the minute starting now is in it (an event of this second counts), and the
        // minutes live events can still change before it
        assert!((t.start..t.end).contains(&now), "{t:?}");
        assert_eq!(t.start, tail_start(&q, now));
        // And a query whose range ended before now (not a live one's) keeps its end
        let past = json!({"metric_name": "page_view", "interval": "1m",
            "time_range": {"start": "2026-11-22T08:00:00Z", "end": "2026-11-22T09:00:00Z"}});
        let q = query::parse(&past, now, &Retention::default()).expect("a query");
        assert_eq!(tail(&q, now).end, q.end);
    }

    #[test]
    fn frames_parse_into_messages_or_precise_errors() {
        assert_eq!(
            parse(r#"{"action":"subscribe","id":"c1","metrics":["page_view"],"interval":"1s"}"#),
            Ok(ClientMessage::Subscribe {
                id: "c1".into(),
                target: Target::Metrics(vec!["page_view".into()]),
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
