//! Live updates after each stream batch: the WebSocket subscriptions of the tenants a batch
//! wrote get a `metrics_update` frame if a metric they watch changed since they were last told:
//! at once if their interval has elapsed, otherwise when it ends. The wait is a delayed
//! message ([`PushLater`]) that brings the same change back to this function, so a change
//! reaches every subscriber within its interval (+ ≤ 1 s) even when no other event follows.
//!
//! Per tenant with changes: one gsi1 Query for its connections; nothing more if none is due.
//! Otherwise one read of the tenant's totals (the current minute, the last 5 minutes, today)
//! gives the values of every due metric, each due `metrics` subscription gets one frame with
//! the metrics it watches that changed; each due `query` subscription is answered over the
//! tail of its range that live events can change ([`live::tail`]), one answer per
//! distinct query. 16 posts in flight; frames split under API Gateway's 32 KB limit. A connection that is gone (410) is
//! deleted; the others get their subscriptions' `seq` and last-sent time written back, on the
//! condition that nobody wrote the connection since it was read (re-read and retried).

use async_trait::async_trait;
use backon::{ExponentialBuilder, Retryable};
use futures::StreamExt;
use pulse_core::identity::TenantId;
use pulse_metrics::live::{self, Connection, LiveQuery};
use pulse_metrics::rollup::{Resolution, Retention};
use pulse_store::deferred::{DeferredPush, PushLater};
use pulse_store::read::Reader;
use pulse_store::{
    ConnectionPush, ConnectionStore, PushError, RollupBuckets, SeriesCatalog, StoreError,
    TenantConnections, Totals,
};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Posts in flight at once.
const CONCURRENCY: usize = 16;

/// What the aggregator tells after a batch: which metrics of a tenant changed.
#[async_trait]
pub trait Fanout: Send + Sync + std::fmt::Debug {
    /// `metrics` of `tenant` changed, aggregated at `changed_ms` (epoch ms).
    async fn changed(&self, tenant: &TenantId, metrics: &BTreeSet<String>, changed_ms: i64);
}

/// The WebSocket fan-out with its stores.
#[derive(Debug)]
pub struct LivePush<C, M, P> {
    connections: C,
    metrics: M,
    push: P,
    retention: Retention,
    /// Epoch ms.
    clock: fn() -> i64,
    /// Brings back a change for subscribers whose interval has not ended yet.
    later: Option<Arc<dyn PushLater>>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl<C, M, P> LivePush<C, M, P> {
    pub fn new(connections: C, metrics: M, push: P, retention: Retention) -> Self {
        Self {
            connections,
            metrics,
            push,
            retention,
            clock: now_ms,
            later: None,
        }
    }

    /// The same fan-out scheduling pushes for subscribers not yet due through `later`.
    pub fn with_later(self, later: Arc<dyn PushLater>) -> Self {
        Self {
            later: Some(later),
            ..self
        }
    }

    /// The same fan-out reading time from `clock` (epoch ms), for tests.
    pub fn with_clock(self, clock: fn() -> i64) -> Self {
        Self { clock, ..self }
    }
}

/// A frame to post: connection, subscription, its sequence number, the frame.
type Frame = (String, String, u64, String);
/// What a due subscription gets.
enum Update {
    /// The values of these watched metrics, which changed.
    Values(Vec<String>),
    /// The tail of this query's answer.
    Answer(LiveQuery),
}
/// A due subscription: its id, its update, the next sequence number.
type Due = (String, Update, u64);

impl<C, M, P> LivePush<C, M, P>
where
    C: ConnectionStore + TenantConnections,
    M: RollupBuckets + SeriesCatalog + Totals,
    P: ConnectionPush,
{
    async fn run(
        &self,
        tenant: &TenantId,
        changed: &BTreeSet<String>,
        changed_ms: i64,
    ) -> Result<(), StoreError> {
        let connections = self.connections.connections(tenant).await?;
        let now = (self.clock)();
        // Subscribers not told of this change (told before it) whose interval has not ended:
        // the earliest end, and the metrics they wait for.
        let mut wait: Option<(i64, BTreeSet<String>)> = None;
        for s in connections.iter().flat_map(|c| c.subscriptions.iter()) {
            let due_at = s.sent_ms + s.interval.millis();
            if s.sent_ms < changed_ms && now < due_at {
                let watched: BTreeSet<String> = s
                    .metrics
                    .iter()
                    .filter(|m| changed.contains(*m))
                    .cloned()
                    .collect();
                if !watched.is_empty() {
                    let w = wait.get_or_insert_with(|| (due_at, BTreeSet::new()));
                    w.0 = w.0.min(due_at);
                    w.1.extend(watched);
                }
            }
        }
        if let Some((due_at, metrics)) = wait {
            self.later(tenant, metrics, changed_ms, due_at).await;
        }
        let due = |c: &Connection| -> Vec<Due> {
            c.subscriptions
                .iter()
                .filter(|s| s.sent_ms < changed_ms && now - s.sent_ms >= s.interval.millis())
                .filter_map(|s| {
                    let watched: Vec<String> = s
                        .metrics
                        .iter()
                        .filter(|m| changed.contains(*m))
                        .cloned()
                        .collect();
                    let update = match &s.query {
                        _ if watched.is_empty() => return None,
                        Some(q) => Update::Answer(q.clone()),
                        None => Update::Values(watched),
                    };
                    Some((s.id.clone(), update, s.seq + 1))
                })
                .collect()
        };
        // Claim before posting: the subscriptions' next sequence numbers and send time are
        // written first, on the condition that nobody wrote the connection since it was read.
        // Of concurrent pushes (lanes of a shard, shards, the ws function) exactly one sends
        // each update, so a client never gets two frames with one sequence number.
        let mut plan: Vec<(Connection, Vec<Due>)> = Vec::new();
        for c in connections {
            if let Some(claimed) = self.claim(c, &due, now).await? {
                plan.push(claimed);
            }
        }
        if plan.is_empty() {
            return Ok(());
        }
        let secs = now.div_euclid(1000);
        let reader = Reader {
            store: &self.metrics,
            tenant,
            now: secs,
        };
        let wanted: Vec<String> = plan
            .iter()
            .flat_map(|(_, d)| d.iter())
            .filter_map(|(_, u, _)| match u {
                Update::Values(m) => Some(m.clone()),
                Update::Answer(_) => None,
            })
            .flatten()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let values = if wanted.is_empty() {
            Value::Null
        } else {
            let minute = Resolution::Minute.window_start(secs);
            let minutes = reader
                .totals(Resolution::Minute, minute - 4 * 60, secs + 1)
                .await?;
            let today = Resolution::Day.window_start(secs);
            let hours = reader.totals(Resolution::Hour, today, secs + 1).await?;
            live::current_values(&wanted, &minutes, &hours, secs)
        };
        // Subscriptions to the same query share one answer.
        let mut answers: BTreeMap<String, Option<Value>> = BTreeMap::new();
        for (_, d) in &plan {
            for (_, update, _) in d {
                if let Update::Answer(q) = update {
                    let key = q.body.to_string();
                    if let std::collections::btree_map::Entry::Vacant(slot) = answers.entry(key) {
                        slot.insert(self.tail_answer(&reader, q, secs).await?);
                    }
                }
            }
        }
        let frames: Vec<Frame> = plan
            .iter()
            .flat_map(|(c, d)| {
                d.iter().flat_map(|(sub, update, seq)| {
                    let data = match update {
                        Update::Values(metrics) => Some(Value::Object(
                            metrics
                                .iter()
                                .filter_map(|m| Some((m.clone(), values.get(m)?.clone())))
                                .collect(),
                        )),
                        Update::Answer(q) => answers.get(&q.body.to_string()).cloned().flatten(),
                    };
                    data.map(|data| live::frames("metrics_update", sub, *seq, &data))
                        .unwrap_or_default()
                        .into_iter()
                        .map(|f| (c.id.clone(), sub.clone(), *seq, f))
                })
            })
            .collect();
        let sent: Vec<(Frame, Result<(), PushError>)> = futures::stream::iter(frames)
            .map(|f| async move {
                // Throttled posts back off (from 50 ms, three more tries) before giving up on
                // this update; any other outcome is final.
                let outcome = (|| self.push.post(&f.0, &f.3))
                    .retry(
                        ExponentialBuilder::default()
                            .with_min_delay(std::time::Duration::from_millis(50))
                            .with_max_times(3),
                    )
                    .sleep(tokio::time::sleep)
                    .when(|e| matches!(e, PushError::Throttled))
                    .await;
                (f, outcome)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut gone = BTreeSet::new();
        for ((conn, _, _, _), outcome) in sent {
            match outcome {
                Ok(()) => {}
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
        Ok(())
    }

    /// Schedules the change for subscribers whose interval ends at `due_ms`.
    async fn later(
        &self,
        tenant: &TenantId,
        metrics: BTreeSet<String>,
        changed_ms: i64,
        due_ms: i64,
    ) {
        let Some(later) = &self.later else {
            tracing::warn!(tenant = %tenant, "no delay queue: subscribers not yet due wait for the next change");
            return;
        };
        let push = DeferredPush {
            tenant: tenant.clone(),
            metrics,
            changed_ms,
        };
        if let Err(e) = later.push_later(&push, due_ms).await {
            tracing::warn!(tenant = %tenant, error = %e, "a deferred live update could not be scheduled");
        }
    }

    /// A query subscription's answer over the windows live events can change, as frame data;
    /// `None` when the query no longer parses (the tenant's retention changed) or has no data.
    async fn tail_answer(
        &self,
        reader: &Reader<'_, M>,
        live_query: &LiveQuery,
        now: i64,
    ) -> Result<Option<Value>, StoreError> {
        let q = match live::parse_query(&live_query.body, now, &self.retention) {
            Ok(q) => q,
            Err(e) => {
                tracing::warn!(detail = %e, "a live query no longer parses; not updated");
                return Ok(None);
            }
        };
        let tail = live::tail(&q, now);
        let since = tail.start;
        let answer = match &live_query.derived {
            Some(d) => Some(reader.derived_answer(&tail, d).await?),
            None => reader.answer(&tail).await?,
        };
        Ok(answer.map(|a| live::answer_data(&a, &q, Some(since))))
    }

    /// Claims `c`'s due subscriptions ([`Due`] by `due`): writes their next sequence number
    /// and send time, re-reading the connection when another writer won. `None` when nothing
    /// is due any more (another push took it) or the connection is gone.
    async fn claim(
        &self,
        mut c: Connection,
        due: &(dyn Fn(&Connection) -> Vec<Due> + Sync),
        now: i64,
    ) -> Result<Option<(Connection, Vec<Due>)>, StoreError> {
        for _ in 0..5 {
            let d = due(&c);
            if d.is_empty() {
                return Ok(None);
            }
            let mut claimed = c.clone();
            for s in &mut claimed.subscriptions {
                if let Some((_, _, seq)) = d.iter().find(|(sub, _, _)| *sub == s.id) {
                    s.seq = s.seq.max(*seq);
                    s.sent_ms = now;
                }
            }
            match self.connections.put_connection(&claimed).await {
                Ok(()) => return Ok(Some((claimed, d))),
                Err(StoreError::Conflict) => match self.connections.connection(&c.id).await? {
                    Some(fresh) => c = fresh,
                    None => return Ok(None),
                },
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Conflict)
    }
}

#[async_trait]
impl<C, M, P> Fanout for LivePush<C, M, P>
where
    C: ConnectionStore + TenantConnections + std::fmt::Debug,
    M: RollupBuckets + SeriesCatalog + Totals + std::fmt::Debug,
    P: ConnectionPush + std::fmt::Debug,
{
    async fn changed(&self, tenant: &TenantId, metrics: &BTreeSet<String>, changed_ms: i64) {
        // Live updates never fail a batch: the data is stored; a client resyncs on reconnect.
        if let Err(e) = self.run(tenant, metrics, changed_ms).await {
            tracing::warn!(tenant = %tenant, error = %e, "live updates skipped for this batch");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_frame_over_the_limit_is_split_by_metric_and_every_part_fits() {
        let metrics: Vec<String> = (0..200).map(|i| format!("metric.{i}")).collect();
        let values: serde_json::Map<String, Value> = metrics
            .iter()
            .map(|m| (m.clone(), json!({"count": 1, "note": "x".repeat(300)})))
            .collect();
        let values = Value::Object(values);
        let frames = live::frames("metrics_update", "s1", 7, &values);
        assert!(frames.len() > 1);
        assert!(frames.iter().all(|f| f.len() <= live::MAX_FRAME_BYTES));
        let carried: usize = frames
            .iter()
            .map(|f| {
                let v: Value = serde_json::from_str(f).expect("json");
                assert_eq!(v["seq"], 7);
                v["data"].as_object().map_or(0, serde_json::Map::len)
            })
            .sum();
        assert_eq!(carried, 200, "no metric lost");
        let two = json!({"a": values["metric.0"], "b": values["metric.1"]});
        assert_eq!(live::frames("metrics_update", "s1", 1, &two).len(), 1);
    }

    #[test]
    fn a_query_answer_over_the_limit_is_split_into_runs_of_points() {
        // Given an answer of 1,440 points with a comparison
        let points: Vec<Value> = (0..1_440)
            .map(|i| json!({"timestamp": format!("t{i}"), "value": i, "values": {"count": i}, "tags": {"path": "/x"}}))
            .collect();
        let answer = json!({"metric": "page_view", "resolution": "1m", "data": points,
            "comparison": {"metric": "page_view", "data": [{"timestamp": "t", "value": 1}]},
            "range": {"start": "a", "end": "b"}});
        // When it is framed
        let frames = live::frames("snapshot", "s2", 3, &answer);
        // Then every part fits, repeats the answer's fields and the points arrive in order, once
        assert!(frames.len() > 1);
        let mut seen = Vec::new();
        let mut comparisons = 0;
        for (i, f) in frames.iter().enumerate() {
            assert!(f.len() <= live::MAX_FRAME_BYTES);
            let v: Value = serde_json::from_str(f).expect("json");
            assert_eq!(
                (v["type"].as_str(), v["seq"].as_u64()),
                (Some("snapshot"), Some(3))
            );
            assert_eq!(v["part"], i + 1);
            if v["data"].get("comparison").is_some() {
                comparisons += 1;
            }
            for p in v["data"]["data"].as_array().into_iter().flatten() {
                assert_eq!(v["data"]["metric"], "page_view");
                seen.push(p["value"].as_i64().expect("value"));
            }
        }
        assert_eq!(seen, (0..1_440).collect::<Vec<i64>>());
        assert_eq!(comparisons, 1);
    }
}
