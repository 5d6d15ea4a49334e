//! The Events stream consumer: folds each batch of new events into live 1-minute buckets.
//!
//! Only INSERT records count (a retried event overwrites its item: MODIFY, so it is counted
//! once). A batch becomes one write per (tenant, metric, series, minute); series past their
//! metric's cap fold into `__other__`. A record whose event cannot be read, or whose bucket
//! cannot be written, is reported in `batchItemFailures`, so Lambda retries it rather than
//! dropping it. Every minute a batch wrote is then marked for the rollup job, which seals it
//! exactly from the raw events once it is closed (a mark that fails fails the minute's
//! records, so a minute is never left unsealed).
//!
//! Events of minutes that ended more than [`LIVE_SECS`] ago (late senders, history imports)
//! are only marked, not merged: the job seals those minutes from the raw events within a
//! minute anyway, and an import of 90 days would otherwise rewrite thousands of old buckets
//! that nobody watches live.

pub mod fanout;

use fanout::Fanout;
use futures::StreamExt;
use pulse_shared::Config;
use pulse_shared::aggregate::Aggregation;
use pulse_shared::identity::TenantId;
use pulse_shared::rollup::Pending;
use pulse_shared::store::events::shard_of;
use pulse_shared::store::metrics::DynamoMetrics;
use pulse_shared::store::stream::{BatchResponse, StreamBatch};
use pulse_shared::store::{BucketStore, PendingWindows};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// A bucket merge's minute and its records: written (`Ok`) or to retry (`Err`).
type MergeOutcome = (TenantId, i64, Result<Vec<String>, Vec<String>>);

/// Bucket merges in flight at once.
const CONCURRENCY: usize = 16;
/// Minutes that ended longer ago than this (seconds) are left to sealing.
pub use pulse_shared::live::LIVE_SECS;

/// The aggregator with its store.
#[derive(Debug)]
pub struct Aggregator<S> {
    store: S,
    series_cap: usize,
    clock: fn() -> i64,
    /// Live updates to WebSocket subscribers (wired where the WebSocket API exists).
    fanout: Option<Arc<dyn Fanout>>,
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Builds the handler from the function's configuration, as `main` and the local cloud do.
pub fn wire(config: &Config, aws: &aws_config::SdkConfig) -> Aggregator<DynamoMetrics> {
    let aggregator = Aggregator::new(
        DynamoMetrics::new(aws, &config.tables.metrics, config.retention),
        config.series_cap,
    );
    match &config.ws_endpoint {
        Some(endpoint) => aggregator.with_fanout(Arc::new(fanout::LivePush::new(
            pulse_shared::store::app::DynamoApp::new(aws, &config.tables.app),
            DynamoMetrics::new(aws, &config.tables.metrics, config.retention),
            pulse_shared::store::push::ManagementApi::new(aws, Some(endpoint)),
            config.retention,
        ))),
        None => aggregator,
    }
}

impl<S: BucketStore + PendingWindows> Aggregator<S> {
    pub fn new(store: S, series_cap: usize) -> Self {
        Self {
            store,
            series_cap,
            clock: now_secs,
            fanout: None,
        }
    }

    /// The same aggregator telling `fanout` what each batch changed.
    pub fn with_fanout(self, fanout: Arc<dyn Fanout>) -> Self {
        Self {
            fanout: Some(fanout),
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
        let mut agg = Aggregation::new();
        let mut inserts = 0usize;
        // The Events shards each minute's events are in: sealing reads only those.
        let mut shards: BTreeMap<(TenantId, i64), BTreeSet<u32>> = BTreeMap::new();
        // Records of minutes left to sealing, by minute.
        let mut old: BTreeMap<(TenantId, i64), Vec<String>> = BTreeMap::new();
        let live_after = (self.clock)() - LIVE_SECS;
        for record in &batch.records {
            if !record.is_insert() {
                continue;
            }
            inserts += 1;
            match record.event() {
                Ok(event) => {
                    let minute = event.timestamp_ms.div_euclid(60_000);
                    let key = (event.tenant.clone(), minute);
                    shards
                        .entry(key.clone())
                        .or_default()
                        .insert(shard_of(&event.id));
                    let sequence = record.dynamodb.sequence_number.clone();
                    if (minute + 1) * 60 < live_after {
                        old.entry(key).or_default().push(sequence);
                    } else {
                        agg.add(&event, sequence);
                    }
                }
                Err(reason) => {
                    tracing::error!(sequence = %record.dynamodb.sequence_number, %reason, "unreadable stream record");
                    failed.push(record.dynamodb.sequence_number.clone());
                }
            }
        }
        let series: Vec<_> = agg
            .series
            .iter()
            .map(|(k, t)| (k.clone(), t.clone()))
            .collect();
        match self.store.register_series(&series, self.series_cap).await {
            Ok(refused) => agg.fold_into_other(&refused),
            Err(e) => {
                // Without the registry no bucket can be trusted to its series: retry them all.
                tracing::error!(error = %e, source = ?std::error::Error::source(&e), "series registry unavailable");
                failed.extend(agg.buckets.into_values().flat_map(|(_, records)| records));
                return BatchResponse::failed(failed);
            }
        }
        let buckets = agg.buckets.len();
        // What changed live, by tenant: what subscribers are told after the batch.
        let mut changed: BTreeMap<TenantId, BTreeSet<String>> = BTreeMap::new();
        for key in agg.buckets.keys() {
            changed
                .entry(key.tenant.clone())
                .or_default()
                .insert(key.metric.clone());
        }
        let outcomes: Vec<MergeOutcome> =
            futures::stream::iter(agg.buckets)
                .map(|(key, (bucket, records))| async move {
                    let outcome = match self.store.merge_bucket(&key, &bucket).await {
                        Ok(()) => Ok(records),
                        Err(e) => {
                            tracing::error!(metric = %key.metric, minute = key.minute, error = %e, "bucket write failed; its records will be retried");
                            Err(records)
                        }
                    };
                    (key.tenant, key.minute, outcome)
                })
                .buffer_unordered(CONCURRENCY)
                .collect()
                .await;
        // The minutes written (or left to sealing), each with the records that wrote it.
        let mut minutes: BTreeMap<(TenantId, i64), Vec<String>> = old;
        for (tenant, minute, outcome) in outcomes {
            match outcome {
                Ok(records) => minutes.entry((tenant, minute)).or_default().extend(records),
                Err(records) => failed.extend(records),
            }
        }
        let marks: Vec<Pending> = minutes
            .keys()
            .map(|key| {
                let written = shards.get(key).cloned().unwrap_or_default();
                Pending::minute(key.0.clone(), key.1, written)
            })
            .collect();
        if let Err(e) = self.store.mark(&marks).await {
            tracing::error!(error = %e, "rollup marks failed; the minutes' records will be retried");
            failed.extend(minutes.into_values().flatten());
        }
        tracing::info!(
            records = batch.records.len(),
            inserts,
            buckets,
            failed = failed.len(),
            "stream batch aggregated"
        );
        if let Some(fanout) = &self.fanout {
            for (tenant, metrics) in &changed {
                fanout.changed(tenant, metrics).await;
            }
        }
        BatchResponse::failed(failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use pulse_shared::aggregate::{Bucket, BucketKey, OTHER_SERIES, SeriesKey};
    use pulse_shared::store::StoreError;
    use serde_json::json;
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    /// Buckets in memory; refuses every series past `cap` and fails writes to `broken`.
    #[derive(Default)]
    struct Memory {
        buckets: Mutex<BTreeMap<BucketKey, Bucket>>,
        series: Mutex<Vec<SeriesKey>>,
        broken: Option<String>,
        marked: Mutex<Vec<(String, i64)>>,
    }

    #[async_trait]
    impl BucketStore for Memory {
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

        async fn merge_bucket(&self, key: &BucketKey, bucket: &Bucket) -> Result<(), StoreError> {
            if self.broken.as_deref() == Some(key.metric.as_str()) {
                return Err(StoreError::Unavailable("down".into()));
            }
            self.buckets
                .lock()
                .expect("lock")
                .entry(key.clone())
                .or_default()
                .merge(bucket);
            Ok(())
        }
    }

    #[async_trait]
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
            _resolution: pulse_shared::rollup::Resolution,
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
        json!({"eventName": name, "dynamodb": {"SequenceNumber": seq, "NewImage": {"data": {"S": event.to_string()}}}})
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
    async fn a_poisoned_record_is_reported_alone() {
        let agg = Aggregator::new(Memory::default(), 100).with_clock(|| NOW);
        let res = agg
            .handle(batch(vec![
                record("1", "INSERT", metric("a", "cpu", 1.0, "h")),
                json!({"eventName": "INSERT", "dynamodb": {"SequenceNumber": "2", "NewImage": {"data": {"S": "{not json"}}}}),
                record("3", "INSERT", metric("c", "cpu", 1.0, "h")),
            ]))
            .await;
        assert_eq!(res, BatchResponse::failed(["2".to_owned()]));
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
                broken: Some("mem".into()),
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
            .find(|(k, _)| k.series == pulse_shared::aggregate::TOTAL_SERIES)
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
