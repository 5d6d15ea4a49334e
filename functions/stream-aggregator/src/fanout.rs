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
                d.iter().map(|(sub, metrics, seq)| {
                    let data: serde_json::Map<String, Value> = metrics
                        .iter()
                        .filter_map(|m| Some((m.clone(), values.get(m)?.clone())))
                        .collect();
                    let frame = json!({"type": "metrics_update", "subscription": sub, "seq": seq, "data": data});
                    (c.id.clone(), sub.clone(), *seq, frame.to_string())
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
