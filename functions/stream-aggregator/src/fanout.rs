//! Live updates after each stream batch: the WebSocket subscriptions of the tenants a batch
//! wrote get a `metrics_update` frame once their interval has elapsed, if a metric they watch
//! changed.
//!
//! Per tenant with changes: one gsi1 Query for its connections; nothing more if none is due.
//! Otherwise one read of the tenant's totals (the current minute, the last 5 minutes, today)
//! gives the values of every due metric, each due subscription gets one frame with the
//! metrics it watches that changed, 16 posts in flight. A connection that is gone (410) is
//! deleted; the others get their subscriptions' `seq` and last-sent time written back, on the
//! condition that nobody wrote the connection since it was read (re-read and retried).

use async_trait::async_trait;
use futures::StreamExt;
use pulse_shared::identity::TenantId;
use pulse_shared::live::{self, Connection};
use pulse_shared::read::Reader;
use pulse_shared::rollup::Resolution;
use pulse_shared::store::{
    ConnectionPush, ConnectionStore, PushError, RollupBuckets, SeriesCatalog, StoreError, Totals,
};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// Posts in flight at once.
const CONCURRENCY: usize = 16;

/// What the aggregator tells after a batch: which metrics of a tenant changed.
#[async_trait]
pub trait Fanout: Send + Sync + std::fmt::Debug {
    async fn changed(&self, tenant: &TenantId, metrics: &BTreeSet<String>);
}

/// The WebSocket fan-out with its stores.
#[derive(Debug)]
pub struct LivePush<C, M, P> {
    connections: C,
    metrics: M,
    push: P,
    /// Epoch ms.
    clock: fn() -> i64,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl<C, M, P> LivePush<C, M, P> {
    pub fn new(connections: C, metrics: M, push: P) -> Self {
        Self {
            connections,
            metrics,
            push,
            clock: now_ms,
        }
    }

    /// The same fan-out reading time from `clock` (epoch ms), for tests.
    pub fn with_clock(self, clock: fn() -> i64) -> Self {
        Self { clock, ..self }
    }
}

/// API Gateway's WebSocket frame limit is 32 KB; frames stay under this.
pub const MAX_FRAME_BYTES: usize = 30 * 1024;

/// The `metrics_update` frames of one subscription: one, or the metrics split over several
/// (same `seq`, `part` numbered) when one would pass [`MAX_FRAME_BYTES`].
pub fn frames_of(sub: &str, seq: u64, metrics: &[String], values: &Value) -> Vec<String> {
    let frame = |data: serde_json::Map<String, Value>, part: Option<usize>| {
        let mut f =
            json!({"type": "metrics_update", "subscription": sub, "seq": seq, "data": data});
        if let Some(p) = part {
            f["part"] = json!(p);
        }
        f.to_string()
    };
    let entries: Vec<(String, Value)> = metrics
        .iter()
        .filter_map(|m| Some((m.clone(), values.get(m)?.clone())))
        .collect();
    let whole = frame(entries.iter().cloned().collect(), None);
    if whole.len() <= MAX_FRAME_BYTES {
        return vec![whole];
    }
    let mut out = Vec::new();
    let mut part = serde_json::Map::new();
    let mut size = 0;
    for (m, v) in entries {
        let add = m.len() + v.to_string().len() + 8;
        if size + add > MAX_FRAME_BYTES - 200 && !part.is_empty() {
            out.push(frame(std::mem::take(&mut part), Some(out.len() + 1)));
            size = 0;
        }
        size += add;
        part.insert(m, v);
    }
    if !part.is_empty() {
        out.push(frame(part, Some(out.len() + 1)));
    }
    out
}

/// A frame to post: connection, subscription, its sequence number, the frame.
type Frame = (String, String, u64, String);
/// A due subscription: its id, the watched metrics that changed, the next sequence number.
type Due = (String, Vec<String>, u64);

impl<C, M, P> LivePush<C, M, P>
where
    C: ConnectionStore,
    M: RollupBuckets + SeriesCatalog + Totals,
    P: ConnectionPush,
{
    async fn run(&self, tenant: &TenantId, changed: &BTreeSet<String>) -> Result<(), StoreError> {
        let connections = self.connections.connections(tenant).await?;
        let now = (self.clock)();
        let due = |c: &Connection| -> Vec<Due> {
            c.subscriptions
                .iter()
                .filter(|s| now - s.sent_ms >= s.interval.millis())
                .filter_map(|s| {
                    let watched: Vec<String> = s
                        .metrics
                        .iter()
                        .filter(|m| changed.contains(*m))
                        .cloned()
                        .collect();
                    (!watched.is_empty()).then(|| (s.id.clone(), watched, s.seq + 1))
                })
                .collect()
        };
        let plan: Vec<(&Connection, Vec<Due>)> = connections
            .iter()
            .map(|c| (c, due(c)))
            .filter(|(_, d)| !d.is_empty())
            .collect();
        if plan.is_empty() {
            return Ok(());
        }
        let wanted: Vec<String> = plan
            .iter()
            .flat_map(|(_, d)| d.iter().flat_map(|(_, m, _)| m.clone()))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let secs = now.div_euclid(1000);
        let reader = Reader {
            store: &self.metrics,
            tenant,
            now: secs,
        };
        let minute = Resolution::Minute.window_start(secs);
        let minutes = reader
            .totals(Resolution::Minute, minute - 4 * 60, secs + 1)
            .await?;
        let today = Resolution::Day.window_start(secs);
        let hours = reader.totals(Resolution::Hour, today, secs + 1).await?;
        let values = live::current_values(&wanted, &minutes, &hours, secs);
        let frames: Vec<Frame> = plan
            .iter()
            .flat_map(|(c, d)| {
                d.iter().flat_map(|(sub, metrics, seq)| {
                    frames_of(sub, *seq, metrics, &values)
                        .into_iter()
                        .map(|f| (c.id.clone(), sub.clone(), *seq, f))
                })
            })
            .collect();
        let sent: Vec<(Frame, Result<(), PushError>)> = futures::stream::iter(frames)
            .map(|f| async move {
                // Throttled posts back off (50, 100, 200 ms) before giving up on this update.
                let mut outcome = self.push.post(&f.0, &f.3).await;
                for wait in [50, 100, 200] {
                    if !matches!(outcome, Err(PushError::Throttled)) {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
                    outcome = self.push.post(&f.0, &f.3).await;
                }
                (f, outcome)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut delivered: BTreeMap<String, Vec<(String, u64)>> = BTreeMap::new();
        let mut gone = BTreeSet::new();
        for ((conn, sub, seq, _), outcome) in sent {
            match outcome {
                Ok(()) => delivered.entry(conn).or_default().push((sub, seq)),
                Err(PushError::Gone) => {
                    gone.insert(conn);
                }
                Err(PushError::Failed(e)) => {
                    tracing::warn!(connection = %conn, error = %e, "a live update was not delivered");
                }
                Err(PushError::Throttled) => {
                    tracing::warn!(connection = %conn, "a live update stayed throttled; the next one carries the values");
                }
            }
        }
        for conn in &gone {
            self.connections.delete_connection(conn).await?;
            tracing::info!(connection = %conn, "connection gone; forgotten");
        }
        for (conn, subs) in delivered.into_iter().filter(|(c, _)| !gone.contains(c)) {
            self.record(&conn, &subs, now).await?;
        }
        Ok(())
    }

    /// Writes back the sequence numbers sent, re-reading the connection on a conflict.
    async fn record(&self, id: &str, sent: &[(String, u64)], now: i64) -> Result<(), StoreError> {
        for _ in 0..5 {
            let Some(mut c) = self.connections.connection(id).await? else {
                return Ok(());
            };
            for s in &mut c.subscriptions {
                if let Some((_, seq)) = sent.iter().find(|(sub, _)| *sub == s.id) {
                    s.seq = s.seq.max(*seq);
                    s.sent_ms = now;
                }
            }
            match self.connections.put_connection(&c).await {
                Err(StoreError::Conflict) => continue,
                other => return other,
            }
        }
        Err(StoreError::Conflict)
    }
}

#[async_trait]
impl<C, M, P> Fanout for LivePush<C, M, P>
where
    C: ConnectionStore + std::fmt::Debug,
    M: RollupBuckets + SeriesCatalog + Totals + std::fmt::Debug,
    P: ConnectionPush + std::fmt::Debug,
{
    async fn changed(&self, tenant: &TenantId, metrics: &BTreeSet<String>) {
        // Live updates never fail a batch: the data is stored; a client resyncs on reconnect.
        if let Err(e) = self.run(tenant, metrics).await {
            tracing::warn!(tenant = %tenant, error = %e, "live updates skipped for this batch");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_over_the_limit_is_split_by_metric_and_every_part_fits() {
        let metrics: Vec<String> = (0..200).map(|i| format!("metric.{i}")).collect();
        let values: serde_json::Map<String, Value> = metrics
            .iter()
            .map(|m| (m.clone(), json!({"count": 1, "note": "x".repeat(300)})))
            .collect();
        let values = Value::Object(values);
        let frames = frames_of("s1", 7, &metrics, &values);
        assert!(frames.len() > 1);
        assert!(frames.iter().all(|f| f.len() <= MAX_FRAME_BYTES));
        let carried: usize = frames
            .iter()
            .map(|f| {
                let v: Value = serde_json::from_str(f).expect("json");
                assert_eq!(v["seq"], 7);
                v["data"].as_object().map_or(0, serde_json::Map::len)
            })
            .sum();
        assert_eq!(carried, 200, "no metric lost");
        assert_eq!(frames_of("s1", 1, &metrics[..2], &values).len(), 1);
    }
}
