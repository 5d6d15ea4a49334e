//! The Events stream consumer: folds each batch of new events into live 1-minute buckets,
//! each stream record exactly once.
//!
//! Only INSERT records count (a resent event overwrites its item: MODIFY). A batch becomes one
//! write per (tenant, metric, series, minute); series past their metric's cap fold into
//! `__other__`. Each write carries the bucket's marks of applied records ([`watermark`]), so
//! a retried, bisected or redelivered batch adds none of its records twice: a bucket that has
//! them all writes nothing, one that has some is rebuilt from the rest.
//!
//! Failures are classified. A record that can never succeed (its event does not parse, storage
//! refuses its bucket as invalid) is kept in the dead-letter bucket, counted and logged, and
//! the batch goes on: it never holds up other records or tenants. A record whose write may
//! succeed later (throttling, an outage) is reported in `batchItemFailures` for Lambda to
//! retry, within the mapping's `MaximumRetryAttempts`, after which Lambda sends the batch to
//! the same bucket (`DestinationConfig.OnFailure`). Every minute a batch wrote is then marked
//! for the rollup job, which seals it exactly from the raw events (a mark that fails fails the
//! minute's records, so a minute is never left unsealed).
//!
//! Events of minutes that ended more than [`LIVE_SECS`] ago (late senders) are only marked,
//! not merged: the job seals those minutes from the raw events within a minute anyway. An
//! import's recent events (stored raw, flagged) were merged by the import and are not counted
//! again; their minutes are only marked, so the job seals them like any other (the open hours'
//! visits, the hours' sessions and the breakdowns, which only sealing writes, include them).

pub mod fanout;

use fanout::Fanout;
use pulse_core::Config;
use pulse_core::identity::TenantId;
use pulse_core::watermark::{Position, Span};
use pulse_ingest::events::Event;
use pulse_metrics::aggregate::{Aggregation, Bucket, BucketKey, SeriesKey};
use pulse_metrics::rollup::Pending;
use pulse_store::deferred::{DeferredPush, QueueBatch};
use pulse_store::events::shard_of;
use pulse_store::metrics::DynamoMetrics;
use pulse_store::stream::{BatchResponse, StreamBatch};
use pulse_store::{BucketStore, DeadLetters, Discarded, Merged, PendingWindows};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// A bucket merge's records: written, to retry, or to set aside (with why).
#[derive(Debug)]
enum Outcome {
    Done(Vec<String>),
    Retry(Vec<String>),
    Discard(Vec<String>, String),
}

/// Buckets of a tenant's part that make it small: written before the large parts.
const SMALL_PART: usize = 64;
/// Rebuilds of a partly applied bucket before its records are retried instead.
const REBUILDS: usize = 3;
/// The name records are set aside under.
const SOURCE: &str = "stream-aggregator";
/// Minutes that ended longer ago than this (seconds) are left to sealing.
pub use pulse_metrics::live::LIVE_SECS;

/// The aggregator with its store.
#[derive(Debug)]
pub struct Aggregator<S> {
    store: S,
    series_cap: usize,
    clock: fn() -> i64,
    /// Epoch ms, for the time changes are aggregated.
    clock_ms: fn() -> i64,
    /// Live updates to WebSocket subscribers (wired where the WebSocket API exists).
    fanout: Option<Arc<dyn Fanout>>,
    /// Where records that can never succeed are kept; without one they are retried (and
    /// Lambda's on-failure destination takes them after the mapping's retries).
    dead_letters: Option<Arc<dyn DeadLetters>>,
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Builds the handler from the function's configuration, as `main` and the local cloud do.
pub fn wire(config: &Config, aws: &aws_config::SdkConfig) -> Aggregator<DynamoMetrics> {
    let mut aggregator = Aggregator::new(
        DynamoMetrics::new(aws, &config.tables.metrics, config.retention),
        config.series_cap,
    );
    if let Some(bucket) = &config.dead_letter_bucket {
        aggregator = aggregator.with_dead_letters(Arc::new(
            pulse_store::deadletters::S3DeadLetters::new(aws, bucket),
        ));
    }
    match &config.ws_endpoint {
        Some(endpoint) => {
            let mut push = fanout::LivePush::new(
                pulse_store::app::DynamoApp::new(aws, &config.tables.app),
                DynamoMetrics::new(aws, &config.tables.metrics, config.retention),
                pulse_store::push::ManagementApi::new(aws, Some(endpoint)),
                config.retention,
            );
            if let Some(queue) = &config.live_push_queue {
                push = push.with_later(Arc::new(pulse_store::deferred::SqsPushLater::new(
                    aws, queue,
                )));
            }
            aggregator.with_fanout(Arc::new(push))
        }
        None => aggregator,
    }
}

/// What invokes the function: a batch of the Events stream, or of the delay queue (an SQS
/// record has a `body`, a stream record none).
#[derive(Debug, serde::Deserialize)]
#[serde(untagged)]
pub enum Trigger {
    Deferred(QueueBatch),
    Stream(StreamBatch),
}

/// What one tenant's part of a batch left: records to retry, records set aside, buckets.
#[derive(Debug, Default)]
struct TenantPart {
    failed: Vec<String>,
    discarded: Vec<Discarded>,
    buckets: usize,
}

/// The records of a batch that were read: each one's position and event.
type Read = HashMap<String, (Position, Event)>;

impl<S: BucketStore + PendingWindows> Aggregator<S> {
    pub fn new(store: S, series_cap: usize) -> Self {
        Self {
            store,
            series_cap,
            clock: now_secs,
            clock_ms: || chrono::Utc::now().timestamp_millis(),
            fanout: None,
            dead_letters: None,
        }
    }

    /// The same aggregator telling `fanout` what each batch changed.
    pub fn with_fanout(self, fanout: Arc<dyn Fanout>) -> Self {
        Self {
            fanout: Some(fanout),
            ..self
        }
    }

    /// The same aggregator keeping records that can never succeed in `dead_letters`.
    pub fn with_dead_letters(self, dead_letters: Arc<dyn DeadLetters>) -> Self {
        Self {
            dead_letters: Some(dead_letters),
            ..self
        }
    }

    /// The same aggregator reading time from `clock` (epoch s), for tests.
    pub fn with_clock(self, clock: fn() -> i64) -> Self {
        Self { clock, ..self }
    }

    /// Aggregates one batch; answers the records to retry.
    pub async fn handle(&self, batch: StreamBatch) -> BatchResponse {
        let mut failed = Vec::new();
        let mut discarded: Vec<Discarded> = Vec::new();
        let mut agg = Aggregation::new();
        let mut read: Read = HashMap::new();
        let mut inserts = 0usize;
        // The Events shards each minute's events are in: sealing reads only those.
        let mut shards: BTreeMap<(TenantId, i64), BTreeSet<u32>> = BTreeMap::new();
        // Records of minutes left to sealing, by minute.
        let mut old: BTreeMap<(TenantId, i64), Vec<String>> = BTreeMap::new();
        let live_after = (self.clock)() - LIVE_SECS;
        // An imported record was merged by its import; its minute is only left to sealing,
        // which recomputes it from the raw events (imported ones included) and writes what
        // only sealing writes: the visit minutes, the hours' sessions, the breakdowns.
        for record in &batch.records {
            if !record.is_insert() {
                continue;
            }
            if record.is_imported() {
                if let Ok(event) = record.event() {
                    let key = (event.tenant.clone(), event.timestamp_ms.div_euclid(60_000));
                    shards
                        .entry(key.clone())
                        .or_default()
                        .insert(shard_of(&event.id));
                    old.entry(key)
                        .or_default()
                        .push(record.dynamodb.sequence_number.clone());
                }
                continue;
            }
            inserts += 1;
            let position = record.position();
            let sequence = record.dynamodb.sequence_number.clone();
            match record.event() {
                Ok(event) => {
                    let minute = event.timestamp_ms.div_euclid(60_000);
                    let key = (event.tenant.clone(), minute);
                    shards
                        .entry(key.clone())
                        .or_default()
                        .insert(shard_of(&event.id));
                    if (minute + 1) * 60 < live_after {
                        old.entry(key).or_default().push(sequence);
                    } else {
                        agg.add(&event, sequence.clone());
                        read.insert(sequence, (position, event));
                    }
                }
                Err(reason) => {
                    // It will never parse: keep it aside rather than stall the stream on it.
                    tracing::error!(sequence = %sequence, %reason, "unreadable stream record set aside");
                    discarded.push(Discarded {
                        sequence,
                        partition: position.partition,
                        tenant: None,
                        reason,
                    });
                }
            }
        }
        // Each tenant's part goes its own way: a burst of one tenant (thousands of new series
        // and buckets) never holds up another tenant's writes, marks and live push.
        let mut tenants: BTreeMap<TenantId, Aggregation<String>> = BTreeMap::new();
        for (key, contribution) in agg.buckets {
            tenants
                .entry(key.tenant.clone())
                .or_default()
                .buckets
                .insert(key, contribution);
        }
        for (key, tags) in agg.series {
            tenants
                .entry(key.tenant.clone())
                .or_default()
                .series
                .insert(key, tags);
        }
        for (tenant, _) in old.keys() {
            tenants.entry(tenant.clone()).or_default();
        }
        let (read, old, shards) = (&read, &old, &shards);
        // Small parts first, all at once, then the large ones: a tenant with a few events is
        // written and pushed before a burst's thousands of buckets take the store's capacity.
        let (small, large): (Vec<_>, Vec<_>) = tenants
            .into_iter()
            .partition(|(_, agg)| agg.buckets.len() <= SMALL_PART);
        let mut parts = Vec::new();
        for group in [small, large] {
            parts.extend(
                futures::future::join_all(
                    group
                        .into_iter()
                        .map(|(tenant, agg)| self.tenant_part(tenant, agg, read, old, shards)),
                )
                .await,
            );
        }
        let mut buckets = 0;
        for part in parts {
            failed.extend(part.failed);
            discarded.extend(part.discarded);
            buckets += part.buckets;
        }
        tracing::info!(
            records = batch.records.len(),
            inserts,
            buckets,
            failed = failed.len(),
            discarded = discarded.len(),
            "stream batch aggregated"
        );
        self.answer(failed, discarded).await
    }

    /// One tenant's part of a batch: its series, its buckets, its minutes' marks, then its
    /// subscribers' live push.
    async fn tenant_part(
        &self,
        tenant: TenantId,
        mut agg: Aggregation<String>,
        read: &Read,
        old: &BTreeMap<(TenantId, i64), Vec<String>>,
        shards: &BTreeMap<(TenantId, i64), BTreeSet<u32>>,
    ) -> TenantPart {
        let mut part = TenantPart::default();
        let old_minutes = old.iter().filter(|((t, _), _)| *t == tenant);
        let series: Vec<_> = agg
            .series
            .iter()
            .map(|(k, t)| (k.clone(), t.clone()))
            .collect();
        let refused = match self.store.register_series(&series, self.series_cap).await {
            Ok(refused) => {
                agg.fold_into_other(&refused);
                refused
            }
            Err(e) => {
                // Without the registry no bucket can be trusted to its series: retry them all.
                tracing::error!(tenant = %tenant, error = %e, source = ?std::error::Error::source(&e), "series registry unavailable");
                part.failed
                    .extend(agg.buckets.into_values().flat_map(|(_, records)| records));
                part.failed
                    .extend(old_minutes.flat_map(|(_, records)| records.iter().cloned()));
                return part;
            }
        };
        part.buckets = agg.buckets.len();
        // What changed live: what subscribers are told after the writes.
        let changed: BTreeSet<String> = agg.buckets.keys().map(|k| k.metric.clone()).collect();
        let outcomes = self.merge_all(agg.buckets, read, &refused).await;
        // The minutes written (or left to sealing), each with the records that wrote it.
        let mut minutes: BTreeMap<i64, Vec<String>> = old_minutes
            .map(|((_, minute), records)| (*minute, records.clone()))
            .collect();
        let mut set_aside: BTreeMap<String, String> = BTreeMap::new();
        for (minute, outcome) in outcomes {
            match outcome {
                Outcome::Done(records) => minutes.entry(minute).or_default().extend(records),
                Outcome::Retry(records) => part.failed.extend(records),
                Outcome::Discard(records, reason) => {
                    // Its raw event is stored: sealing still counts what it can.
                    minutes
                        .entry(minute)
                        .or_default()
                        .extend(records.iter().cloned());
                    for r in records {
                        set_aside.insert(r, reason.clone());
                    }
                }
            }
        }
        for (sequence, reason) in set_aside {
            let partition = read
                .get(&sequence)
                .map(|(p, _)| p.partition.clone())
                .unwrap_or_default();
            part.discarded.push(Discarded {
                sequence,
                partition,
                tenant: Some(tenant.to_string()),
                reason,
            });
        }
        let marks: Vec<Pending> = minutes
            .keys()
            .map(|minute| {
                let key = (tenant.clone(), *minute);
                let written = shards.get(&key).cloned().unwrap_or_default();
                Pending::minute(tenant.clone(), *minute, written)
            })
            .collect();
        if let Err(e) = self.store.mark(&marks).await {
            tracing::error!(tenant = %tenant, error = %e, "rollup marks failed; the minutes' records will be retried");
            part.failed.extend(minutes.into_values().flatten());
        }
        if let Some(fanout) = &self.fanout
            && !changed.is_empty()
        {
            // After the writes: a subscriber told from now on sees these changes.
            fanout.changed(&tenant, &changed, (self.clock_ms)()).await;
        }
        part
    }

    /// Pushes that waited for their subscribers' interval (the delay queue's messages).
    pub async fn handle_deferred(&self, batch: QueueBatch) -> BatchResponse {
        for message in &batch.records {
            match serde_json::from_str::<DeferredPush>(&message.body) {
                Ok(push) => {
                    if let Some(fanout) = &self.fanout {
                        fanout
                            .changed(&push.tenant, &push.metrics, push.changed_ms)
                            .await;
                    }
                }
                // Only this function writes the queue: a body it cannot read is a bug, logged
                // and dropped (a live update is never worth blocking the queue).
                Err(e) => {
                    tracing::error!(message = %message.message_id, error = %e, "unreadable deferred push dropped");
                }
            }
        }
        BatchResponse::default()
    }

    /// Either trigger of the function: the Events stream, or the delay queue.
    pub async fn handle_any(&self, trigger: Trigger) -> BatchResponse {
        match trigger {
            Trigger::Deferred(batch) => self.handle_deferred(batch).await,
            Trigger::Stream(batch) => self.handle(batch).await,
        }
    }

    /// Merges a tenant's buckets together (the store may read them in one go); a bucket that
    /// has some of its records already is rebuilt from the rest and merged again.
    async fn merge_all(
        &self,
        buckets: HashMap<BucketKey, (Bucket, Vec<String>)>,
        read: &Read,
        refused: &[SeriesKey],
    ) -> Vec<(i64, Outcome)> {
        let mut outcomes = Vec::with_capacity(buckets.len());
        // (key, bucket to merge, every record of the bucket, the records still to apply)
        let mut work: Vec<(BucketKey, Bucket, Vec<String>, Vec<String>)> = buckets
            .into_iter()
            .map(|(key, (bucket, records))| (key, bucket, records.clone(), records))
            .collect();
        for _ in 0..=REBUILDS {
            if work.is_empty() {
                break;
            }
            let merges: Vec<_> = work
                .iter()
                .map(|(key, bucket, _, pending)| {
                    let span = Span::of(pending.iter().filter_map(|r| read.get(r).map(|(p, _)| p)));
                    (key.clone(), bucket.clone(), span)
                })
                .collect();
            let results = self.store.merge_buckets(&merges).await;
            let mut again = Vec::new();
            for ((key, _, records, mut pending), result) in work.into_iter().zip(results) {
                match result {
                    Ok(Merged::Written | Merged::AlreadyApplied | Merged::Sealed) => {
                        outcomes.push((key.minute, Outcome::Done(records)));
                    }
                    Ok(Merged::Partly(marks)) => {
                        pending.retain(|r| read.get(r).is_some_and(|(p, _)| !marks.covers(p)));
                        pending.dedup();
                        let bucket = rebuild(&key, &pending, read, refused);
                        tracing::info!(metric = %key.metric, minute = key.minute, rest = pending.len(), "bucket had some of these records; merging the rest");
                        again.push((key, bucket, records, pending));
                    }
                    Err(e) if !e.is_retryable() => {
                        tracing::error!(metric = %key.metric, minute = key.minute, error = %e, source = ?std::error::Error::source(&e), "bucket refused by storage; its records are set aside");
                        outcomes.push((key.minute, Outcome::Discard(records, e.to_string())));
                    }
                    Err(e) => {
                        tracing::error!(metric = %key.metric, minute = key.minute, error = %e, "bucket write failed; its records will be retried");
                        outcomes.push((key.minute, Outcome::Retry(records)));
                    }
                }
            }
            work = again;
        }
        outcomes.extend(
            work.into_iter()
                .map(|(key, _, records, _)| (key.minute, Outcome::Retry(records))),
        );
        outcomes
    }

    /// The batch response: discarded records are kept aside (or retried if that fails).
    async fn answer(&self, mut failed: Vec<String>, discarded: Vec<Discarded>) -> BatchResponse {
        if !discarded.is_empty() {
            match &self.dead_letters {
                Some(dl) => match dl.keep(SOURCE, &discarded).await {
                    Ok(()) => {
                        tracing::warn!(
                            discarded = discarded.len(),
                            "records that can never succeed kept in the dead-letter bucket"
                        );
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "dead-letter bucket unavailable; retrying the records");
                        failed.extend(discarded.into_iter().map(|d| d.sequence));
                    }
                },
                None => failed.extend(discarded.into_iter().map(|d| d.sequence)),
            }
        }
        BatchResponse::failed(failed)
    }
}

/// The bucket `key` made of only `records` (each event once, with the batch's refusals).
fn rebuild(key: &BucketKey, records: &[String], read: &Read, refused: &[SeriesKey]) -> Bucket {
    let mut agg: Aggregation<()> = Aggregation::new();
    let mut seen = BTreeSet::new();
    for r in records {
        if seen.insert(r.as_str())
            && let Some((_, event)) = read.get(r)
        {
            agg.add(event, ());
        }
    }
    agg.fold_into_other(refused);
    agg.buckets
        .remove(key)
        .map(|(bucket, _)| bucket)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use pulse_core::watermark::{Check, Watermarks};
    use pulse_metrics::aggregate::OTHER_SERIES;
    use pulse_store::StoreError;
    use serde_json::json;
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    /// Buckets in memory with their marks, as the DynamoDB adapter keeps them; refuses every
    /// series past `cap`, fails writes to `broken` (retryably) and refuses writes to
    /// `invalid` (permanently).
    #[derive(Default)]
    struct Memory {
        buckets: Mutex<BTreeMap<BucketKey, Bucket>>,
        marks: Mutex<BTreeMap<BucketKey, Watermarks>>,
        series: Mutex<Vec<SeriesKey>>,
        broken: Mutex<Option<String>>,
        invalid: Option<String>,
        marked: Mutex<Vec<(String, i64)>>,
    }

    /// Kept records in memory.
    #[derive(Debug, Default)]
    struct Kept(Mutex<Vec<Discarded>>);

    #[async_trait]
    impl DeadLetters for Kept {
        async fn keep(&self, _source: &str, records: &[Discarded]) -> Result<(), StoreError> {
            self.0.lock().expect("lock").extend(records.iter().cloned());
            Ok(())
        }
    }

    impl pulse_store::SeriesRegistry for Memory {
        async fn register_series(
            &self,
            series: &[(SeriesKey, BTreeMap<String, String>)],
            cap: usize,
        ) -> Result<Vec<SeriesKey>, StoreError> {
            let mut known = self.series.lock().expect("lock");
            let mut refused = Vec::new();
            for (k, _) in series {
                if known.contains(k) {
                    continue;
                }
                if known.len() < cap {
                    known.push(k.clone());
                } else {
                    refused.push(k.clone());
                }
            }
            Ok(refused)
        }
    }

    impl BucketStore for Memory {
        async fn merge_bucket(
            &self,
            key: &BucketKey,
            bucket: &Bucket,
            span: &Span,
        ) -> Result<Merged, StoreError> {
            if self.broken.lock().expect("lock").as_deref() == Some(key.metric.as_str()) {
                return Err(StoreError::Unavailable("down".into()));
            }
            if self.invalid.as_deref() == Some(key.metric.as_str()) {
                return Err(StoreError::Rejected("Number overflow".into()));
            }
            let mut marks = self.marks.lock().expect("lock");
            let current = marks.entry(key.clone()).or_default();
            match current.check(span) {
                Check::Applied => return Ok(Merged::AlreadyApplied),
                Check::Partly => return Ok(Merged::Partly(current.clone())),
                Check::New => {}
            }
            *current = span.applied_over(current);
            self.buckets
                .lock()
                .expect("lock")
                .entry(key.clone())
                .or_default()
                .merge(bucket);
            Ok(Merged::Written)
        }
    }

    impl PendingWindows for Memory {
        async fn mark(&self, windows: &[Pending]) -> Result<(), StoreError> {
            self.marked.lock().expect("lock").extend(
                windows
                    .iter()
                    .map(|w| (w.tenant.to_string(), w.window.start)),
            );
            Ok(())
        }
        async fn pending(
            &self,
            _resolution: pulse_metrics::rollup::Resolution,
            _before: i64,
            _limit: usize,
        ) -> Result<Vec<Pending>, StoreError> {
            Ok(Vec::new())
        }
        async fn clear(&self, _window: &Pending) -> Result<(), StoreError> {
            Ok(())
        }
    }

    fn record(seq: &str, name: &str, event: serde_json::Value) -> serde_json::Value {
        json!({"eventName": name, "dynamodb": {"SequenceNumber": seq, "NewImage": {
            "pk": {"S": "acme#29922360#00"}, "data": {"S": event.to_string()}}}})
    }

    /// A minute after the test events.
    const NOW: i64 = 1_795_341_660;

    fn metric(id: &str, metric: &str, value: f64, host: &str) -> serde_json::Value {
        json!({"id": id, "tenant": "acme", "timestamp_ms": 1_795_341_600_000i64, "name": metric, "kind": "metric", "value": value, "tags": {"host": host}})
    }

    fn batch(records: Vec<serde_json::Value>) -> StreamBatch {
        serde_json::from_value(json!({"Records": records})).expect("stream batch")
    }

    #[tokio::test]
    async fn inserts_become_exact_minute_buckets_and_modifies_are_ignored() {
        let agg = Aggregator::new(Memory::default(), 100).with_clock(|| NOW);
        let res = agg
            .handle(batch(vec![
                record("1", "INSERT", metric("a", "cpu", 2.0, "h")),
                record("2", "INSERT", metric("b", "cpu", 4.0, "h")),
                record("3", "MODIFY", metric("a", "cpu", 2.0, "h")),
            ]))
            .await;
        assert!(res.batch_item_failures.is_empty());
        let buckets = agg.store.buckets.lock().expect("lock");
        let b = buckets.values().next().expect("a bucket");
        assert_eq!((b.count, b.sum, b.min, b.max), (2, 6.0, 2.0, 4.0));
        // And the minute is marked once for the rollup job to seal
        assert_eq!(
            *agg.store.marked.lock().expect("lock"),
            [("acme".to_owned(), 1_795_341_600)]
        );
    }

    #[tokio::test]
    async fn an_old_minute_is_marked_for_sealing_without_a_live_merge() {
        // Given an event of a minute that ended an hour ago (a late sender, an import)
        let agg = Aggregator::new(Memory::default(), 100).with_clock(|| NOW + 3_600);
        // When its batch is aggregated
        let res = agg
            .handle(batch(vec![record(
                "1",
                "INSERT",
                metric("a", "cpu", 2.0, "h"),
            )]))
            .await;
        // Then no live bucket is written, but the minute is marked for the job to seal
        assert!(res.batch_item_failures.is_empty());
        assert!(agg.store.buckets.lock().expect("lock").is_empty());
        assert_eq!(
            *agg.store.marked.lock().expect("lock"),
            [("acme".to_owned(), 1_795_341_600)]
        );
    }

    #[tokio::test]
    async fn an_imported_record_is_not_counted_again_since_its_import_merged_it() {
        // Given a recent event an import stored raw (flagged) beside one sent live
        let agg = Aggregator::new(Memory::default(), 100).with_clock(|| NOW);
        let mut imported = record("1", "INSERT", metric("a", "cpu", 2.0, "h"));
        imported["dynamodb"]["NewImage"]["imported"] = json!({"BOOL": true});
        // When their batch is aggregated
        let res = agg
            .handle(batch(vec![
                imported,
                record("2", "INSERT", metric("b", "cpu", 4.0, "h")),
            ]))
            .await;
        // Then only the live one is counted
        assert!(res.batch_item_failures.is_empty());
        let buckets = agg.store.buckets.lock().expect("lock");
        let b = buckets.values().next().expect("a bucket");
        assert_eq!((b.count, b.sum), (1, 4.0));
    }

    #[tokio::test]
    async fn an_imported_page_view_is_not_counted_again_and_its_minute_is_left_to_sealing() {
        // Given page views an import stored raw: one of 40 minutes ago, one of three hours ago
        let view = |id: &str, at_ms: i64| {
            let mut r = record(
                id,
                "INSERT",
                json!({"id": id, "tenant": "acme", "timestamp_ms": at_ms, "name": "page_view",
                       "kind": "page_view", "path": "/", "visitor": "v1", "tags": {}}),
            );
            r["dynamodb"]["NewImage"]["imported"] = json!({"BOOL": true});
            r
        };
        let agg = Aggregator::new(Memory::default(), 100).with_clock(|| NOW + 3 * 3_600);
        // When their batch is aggregated
        let res = agg
            .handle(batch(vec![
                view("1", (NOW + 3 * 3_600 - 40 * 60) * 1000),
                view("2", (NOW - 60) * 1000),
            ]))
            .await;
        // Then neither is counted again, and both minutes are left to sealing
        assert!(res.batch_item_failures.is_empty());
        assert!(agg.store.buckets.lock().expect("lock").is_empty());
        let recent = (NOW + 3 * 3_600 - 40 * 60).div_euclid(60) * 60;
        let older = (NOW - 60).div_euclid(60) * 60;
        let mut marked = agg.store.marked.lock().expect("lock").clone();
        marked.sort();
        assert_eq!(
            marked,
            [("acme".to_owned(), older), ("acme".to_owned(), recent)]
        );
    }

    /// Records `i` of `range`, each a `cpu` sample with sequence number `i`.
    fn cpu_records(range: std::ops::RangeInclusive<u32>) -> Vec<serde_json::Value> {
        range
            .map(|i| {
                record(
                    &i.to_string(),
                    "INSERT",
                    metric(&format!("e{i}"), "cpu", 1.0, "h"),
                )
            })
            .collect()
    }

    fn count(agg: &Aggregator<Memory>, metric: &str) -> u64 {
        agg.store
            .buckets
            .lock()
            .expect("lock")
            .iter()
            .filter(|(k, _)| {
                k.metric == metric && k.series == pulse_metrics::aggregate::TOTAL_SERIES
            })
            .map(|(_, b)| b.count)
            .sum()
    }

    #[tokio::test]
    async fn a_retried_stream_batch_counts_each_record_once() {
        // Given a batch aggregated once
        let agg = Aggregator::new(Memory::default(), 100).with_clock(|| NOW);
        let first = cpu_records(1..=3);
        agg.handle(batch(first.clone())).await;
        // When Lambda delivers it again, and then a batch that overlaps it and goes further
        agg.handle(batch(first)).await;
        let overlapping = cpu_records(2..=5);
        let res = agg.handle(batch(overlapping)).await;
        // Then every record is counted once
        assert!(res.batch_item_failures.is_empty());
        assert_eq!(count(&agg, "cpu"), 5);
    }

    #[tokio::test]
    async fn a_redelivery_after_a_partial_failure_adds_only_what_failed() {
        // Given a batch whose `mem` bucket fails while `cpu` is written
        let agg = Aggregator::new(Memory::default(), 100).with_clock(|| NOW);
        *agg.store.broken.lock().expect("lock") = Some("mem".into());
        let records = vec![
            record("1", "INSERT", metric("a", "cpu", 1.0, "h")),
            record("2", "INSERT", metric("b", "mem", 1.0, "h")),
            record("3", "INSERT", metric("c", "cpu", 1.0, "h")),
        ];
        let res = agg.handle(batch(records.clone())).await;
        assert_eq!(res, BatchResponse::failed(["2".to_owned()]));
        // When Lambda retries from the failed record (with the ones after it) once storage is back
        *agg.store.broken.lock().expect("lock") = None;
        let res = agg.handle(batch(records[1..].to_vec())).await;
        // Then `cpu` keeps 2 (record 3 is not added again) and `mem` gets its 1
        assert!(res.batch_item_failures.is_empty());
        assert_eq!((count(&agg, "cpu"), count(&agg, "mem")), (2, 1));
    }

    #[tokio::test]
    async fn a_record_storage_refuses_is_set_aside_and_the_rest_flow() {
        // Given a batch where storage refuses one metric's bucket as invalid (permanent)
        let kept = Arc::new(Kept::default());
        let agg = Aggregator::new(
            Memory {
                invalid: Some("huge".into()),
                ..Default::default()
            },
            100,
        )
        .with_clock(|| NOW)
        .with_dead_letters(kept.clone());
        let res = agg
            .handle(batch(vec![
                record("1", "INSERT", metric("a", "cpu", 1.0, "h")),
                record("2", "INSERT", metric("b", "huge", 1.0, "h")),
                record("3", "INSERT", metric("c", "cpu", 1.0, "h")),
            ]))
            .await;
        // Then nothing is retried, the refused record is kept with why, and the rest counted
        assert!(res.batch_item_failures.is_empty());
        let kept = kept.0.lock().expect("lock").clone();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].sequence, "2");
        assert_eq!(kept[0].tenant.as_deref(), Some("acme"));
        assert_eq!(count(&agg, "cpu"), 2);
        // And its minute is still marked, so sealing counts what it can from the raw events
        assert!(!agg.store.marked.lock().expect("lock").is_empty());
    }

    #[tokio::test]
    async fn a_poisoned_record_is_set_aside_alone() {
        let kept = Arc::new(Kept::default());
        let agg = Aggregator::new(Memory::default(), 100)
            .with_clock(|| NOW)
            .with_dead_letters(kept.clone());
        let res = agg
            .handle(batch(vec![
                record("1", "INSERT", metric("a", "cpu", 1.0, "h")),
                json!({"eventName": "INSERT", "dynamodb": {"SequenceNumber": "2", "NewImage": {"data": {"S": "{not json"}}}}),
                record("3", "INSERT", metric("c", "cpu", 1.0, "h")),
            ]))
            .await;
        assert!(res.batch_item_failures.is_empty());
        assert_eq!(kept.0.lock().expect("lock")[0].sequence, "2");
        assert_eq!(
            agg.store
                .buckets
                .lock()
                .expect("lock")
                .values()
                .next()
                .expect("bucket")
                .count,
            2
        );
    }

    #[tokio::test]
    async fn a_failed_bucket_reports_exactly_its_records() {
        let agg = Aggregator::new(
            Memory {
                broken: Mutex::new(Some("mem".into())),
                ..Default::default()
            },
            100,
        )
        .with_clock(|| NOW);
        let res = agg
            .handle(batch(vec![
                record("1", "INSERT", metric("a", "cpu", 1.0, "h")),
                record("2", "INSERT", metric("b", "mem", 1.0, "h")),
                record("3", "INSERT", metric("c", "mem", 1.0, "h")),
            ]))
            .await;
        assert_eq!(res, BatchResponse::failed(["2".to_owned(), "3".to_owned()]));
    }

    #[tokio::test]
    async fn series_past_the_cap_fold_into_other_and_are_still_counted() {
        let agg = Aggregator::new(Memory::default(), 2).with_clock(|| NOW);
        let records = (0..5)
            .map(|i| {
                record(
                    &i.to_string(),
                    "INSERT",
                    metric(&format!("e{i}"), "cpu", 1.0, &format!("host-{i}")),
                )
            })
            .collect();
        let res = agg.handle(batch(records)).await;
        assert!(res.batch_item_failures.is_empty());
        let mut buckets = agg.store.buckets.lock().expect("lock").clone();
        let total = buckets
            .iter()
            .find(|(k, _)| k.series == pulse_metrics::aggregate::TOTAL_SERIES)
            .map(|(k, b)| (k.clone(), b.count))
            .expect("the metric's total");
        assert_eq!(total.1, 5, "the total counts every sample");
        buckets.remove(&total.0);
        assert_eq!(buckets.len(), 3, "two series and __other__");
        let other = buckets
            .iter()
            .find(|(k, _)| k.series == OTHER_SERIES)
            .expect("__other__");
        assert_eq!(other.1.count, 3);
        assert_eq!(
            buckets.values().map(|b| b.count).sum::<u64>(),
            5,
            "no event dropped"
        );
    }
}
