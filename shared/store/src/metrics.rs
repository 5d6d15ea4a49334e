//! The Metrics table adapter: live minute buckets and the series registry.
//!
//! Bucket item: `pk = {tenant}#{metric}#{resolution}#s{shard}`, `sk = {start}#{series}` (start
//! in epoch seconds, zero-padded), where the shard is one of [`SERIES_SHARDS`] picked by the
//! series id: a metric's series share a few partitions, so a grouped query reads a range of all
//! of them in one Query per shard instead of one per series, and writes still spread over
//! several partitions. `count`, `sum`, `min`, `max` as numbers for plain reads, the whole bucket
//! (sketch and HyperLogLog included) as `state` (postcard bytes) for merging, a `version` for
//! optimistic concurrency, and the TTL `expires_at`. DynamoDB cannot take a min, max or
//! sketch merge in an update expression, so a merge reads, merges and writes back on the
//! condition that the version is unchanged, retrying on a conflict.
//!
//! Registry: `pk = {tenant}#{metric}#series`, one item per series (`sk` = series id, its tags)
//! and a counter item (`sk = #count`) whose conditional increment enforces the cap.
//!
//! Rollup marks: `pk = #rollup#{resolution}` (no tenant starts with `#`), `sk =
//! {start}#{tenant}` for a minute to seal or `{start}#{tenant}#{metric}` for a coarser window,
//! with the touched series as a string set and a `marks` counter; the job reads a resolution's
//! oldest marks with one Query and clears each on the condition that `marks` is unchanged.
//! Sealed and rolled buckets are whole-item puts at their resolution's key and TTL.
//!
//! Totals: a metric's `__total__` series (every sample, whatever its tags) is kept in one
//! partition per tenant and resolution, `pk = {tenant}#__totals__#{resolution}`, `sk =
//! {start}#{metric}`, so a dashboard reads every metric's totals over a range in one Query;
//! reading one metric's totals filters that range by `metric`.
//!
//! Funnel trails: `pk = {tenant}#__trails__`, `sk = {hour}#{chunk}`, the encoded chunk as
//! `trail` and the hour's chunk count as `chunks` (a rewrite with fewer chunks leaves stale
//! ones that readers skip), kept as long as hourly buckets. Sealed minutes' visit records sit
//! the same way under `{tenant}#__visits__`, kept four hours.
//!
//! Breakdowns (every series of every metric of a tenant in one window, for dashboard views):
//! `pk = {tenant}#__breakdown__#{resolution}`, `sk = {start}#{kind}#{chunk}`, chunked like
//! trails, kept as long as that resolution's buckets.

use super::keys::{EXPIRES_AT, PK, SK};
use super::{
    BreakdownReader, BreakdownWriter, BucketStore, BucketWriter, HistoryWriter, Merged,
    PendingWindows, RollupBuckets, SeriesCatalog, SeriesRegistry, StoreError, Totals, TrailStore,
    TrailWriter, VisitReader, VisitWriter,
};
use aws_config::SdkConfig;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use futures::StreamExt;
use pulse_core::identity::TenantId;
use pulse_core::watermark::{Check, Sequence, Span, Watermarks};
use pulse_metrics::aggregate::{Bucket, BucketKey, SeriesKey, TOTAL_SERIES};
use pulse_metrics::breakdown::Kind;
use pulse_metrics::rollup::{BucketAt, Pending, Resolution, Retention, Window};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

/// Merge attempts before a contended bucket is reported failed (its records are retried).
const MERGE_ATTEMPTS: usize = 8;
const COUNT_SK: &str = "#count";

/// The Metrics table.
#[derive(Debug)]
pub struct DynamoMetrics {
    client: aws_sdk_dynamodb::Client,
    table: String,
    retention: Retention,
    /// Series known to be registered: a warm function skips the registry for them.
    known: Mutex<HashSet<SeriesKey>>,
}

impl DynamoMetrics {
    pub fn new(aws: &SdkConfig, table: &str, retention: Retention) -> Self {
        Self::with_client(aws_sdk_dynamodb::Client::new(aws), table, retention)
    }

    /// The adapter over a client built elsewhere (a benchmark counting requests).
    pub fn with_client(
        client: aws_sdk_dynamodb::Client,
        table: &str,
        retention: Retention,
    ) -> Self {
        Self {
            client,
            table: table.to_owned(),
            retention,
            known: Mutex::new(HashSet::new()),
        }
    }
}

/// Partitions a metric's series are spread over at each resolution. A grouped read costs one
/// Query per shard holding a matching series; a one-series read filters its shard's range.
pub const SERIES_SHARDS: u32 = 8;

/// The shard of a series: a stable function of its id (ids are stored in keys, so this never
/// changes).
pub fn series_shard(series: &str) -> u32 {
    series
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % SERIES_SHARDS
}

/// The partition key of a series' shard of a metric at a resolution.
pub fn bucket_pk(tenant: &str, metric: &str, resolution: &str, series: &str) -> String {
    format!("{tenant}#{metric}#{resolution}#s{}", series_shard(series))
}

/// The partition of a tenant's metric totals at a resolution: every metric's
/// [`TOTAL_SERIES`] bucket, keyed `{start}#{metric}`, so one Query reads a range of all of
/// them.
fn totals_pk(tenant: &str, resolution: &str) -> String {
    format!("{tenant}#__totals__#{resolution}")
}

/// The key of a bucket: a series' own partition, or the tenant's totals partition.
fn bucket_key(at: &BucketAt) -> (String, String) {
    let (tenant, metric) = (at.series.tenant.as_str(), at.series.metric.as_str());
    if at.series.series == TOTAL_SERIES {
        (
            totals_pk(tenant, at.resolution.as_str()),
            format!("{}#{metric}", bucket_sk(at.start)),
        )
    } else {
        (
            bucket_pk(tenant, metric, at.resolution.as_str(), &at.series.series),
            format!("{}#{}", bucket_sk(at.start), at.series.series),
        )
    }
}

/// The start (epoch s) a bucket item's sort key names (`{start}` or `{start}#{metric}`).
fn bucket_start(item: &HashMap<String, AttributeValue>) -> Option<i64> {
    item.get(SK)?.as_s().ok()?.split('#').next()?.parse().ok()
}

fn bucket_state(item: &HashMap<String, AttributeValue>) -> Option<Bucket> {
    postcard::from_bytes::<Bucket>(item.get("state")?.as_b().ok()?.as_ref()).ok()
}

/// The sort key of a bucket starting at `epoch_secs`.
pub fn bucket_sk(epoch_secs: i64) -> String {
    format!("{epoch_secs:012}")
}

fn registry_pk(tenant: &str, metric: &str) -> String {
    format!("{tenant}#{metric}#series")
}

impl DynamoMetrics {
    /// The item of a whole bucket: figures as numbers for plain reads, the bucket as postcard
    /// bytes for merging, its version, and its resolution's TTL.
    fn bucket_item(
        &self,
        at: &BucketAt,
        bucket: &Bucket,
        version: i64,
    ) -> Result<HashMap<String, AttributeValue>, StoreError> {
        let mut frozen = bucket.clone();
        frozen.freeze();
        let state =
            postcard::to_allocvec(&frozen).map_err(|e| StoreError::Unavailable(Box::new(e)))?;
        // A sum of storable values can still pass DynamoDB's range: saturate the plain
        // figures (the exact state is in `state`), so a bucket write never fails on a number.
        let n = |v: f64| AttributeValue::N(pulse_ingest::events::saturate(v).to_string());
        let s = AttributeValue::S;
        let now = chrono::Utc::now().timestamp();
        let (pk, sk) = bucket_key(at);
        Ok(HashMap::from([
            (PK.to_owned(), s(pk)),
            (SK.to_owned(), s(sk)),
            ("tenant".to_owned(), s(at.series.tenant.to_string())),
            ("metric".to_owned(), s(at.series.metric.clone())),
            ("series".to_owned(), s(at.series.series.clone())),
            (
                "resolution".to_owned(),
                s(at.resolution.as_str().to_owned()),
            ),
            (
                "count".to_owned(),
                AttributeValue::N(bucket.count.to_string()),
            ),
            ("sum".to_owned(), n(bucket.sum)),
            ("min".to_owned(), n(bucket.min)),
            ("max".to_owned(), n(bucket.max)),
            ("state".to_owned(), AttributeValue::B(Blob::new(state))),
            ("version".to_owned(), AttributeValue::N(version.to_string())),
            (
                EXPIRES_AT.to_owned(),
                AttributeValue::N(
                    self.retention
                        .expires_at(at.resolution, at.start, now)
                        .to_string(),
                ),
            ),
        ]))
    }
}

type Item = HashMap<String, AttributeValue>;

impl DynamoMetrics {
    /// Every item of partition `pk` with sort key in `[from, to]` (all pages), only those whose
    /// attribute `only.0` is one of `only.1` when given (a totals partition holds every
    /// metric, a series shard many series).
    async fn range(
        &self,
        pk: String,
        from: String,
        to: String,
        only: Option<(&str, &[&str])>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#p = :p AND #s BETWEEN :from AND :to")
            .expression_attribute_names("#p", PK)
            .expression_attribute_names("#s", SK)
            .expression_attribute_values(":p", AttributeValue::S(pk))
            .expression_attribute_values(":from", AttributeValue::S(from))
            .expression_attribute_values(":to", AttributeValue::S(to));
        if let Some((name, values)) = only.filter(|(_, v)| !v.is_empty()) {
            let names: Vec<String> = (0..values.len()).map(|i| format!(":f{i}")).collect();
            query = query
                .filter_expression(format!("#f IN ({})", names.join(", ")))
                .expression_attribute_names("#f", name);
            for (n, v) in names.into_iter().zip(values) {
                query = query.expression_attribute_values(n, AttributeValue::S((*v).to_owned()));
            }
        }
        query
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(crate::classify)
    }
}

fn rollup_pk(resolution: Resolution) -> String {
    format!("#rollup#{resolution}")
}

fn mark_sk(p: &Pending) -> String {
    match &p.metric {
        Some(metric) => format!("{:012}#{}#{metric}", p.window.start, p.tenant),
        None => format!("{:012}#{}", p.window.start, p.tenant),
    }
}

fn pending_from(resolution: Resolution, item: &HashMap<String, AttributeValue>) -> Option<Pending> {
    let sk = item.get(SK)?.as_s().ok()?;
    let start: i64 = sk.split('#').next()?.parse().ok()?;
    Some(Pending {
        tenant: TenantId::parse(item.get("tenant")?.as_s().ok()?).ok()?,
        window: Window::at(resolution, start),
        metric: item.get("metric").and_then(|v| v.as_s().ok()).cloned(),
        series: item
            .get("series")
            .and_then(|v| v.as_ss().ok())
            .map(|ss| ss.iter().cloned().collect())
            .unwrap_or_default(),
        shards: item
            .get("shards")
            .and_then(|v| v.as_ns().ok())
            .map(|ns| ns.iter().filter_map(|n| n.parse().ok()).collect())
            .unwrap_or_default(),
        marks: item
            .get("marks")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
    })
}

impl PendingWindows for DynamoMetrics {
    async fn mark(&self, windows: &[Pending]) -> Result<(), StoreError> {
        // Marks are atomic adds on distinct items: sent 16 at a time (an import marks
        // thousands of minutes at once).
        let sent: Vec<Result<(), StoreError>> = futures::stream::iter(windows.iter().cloned())
            .map(|p| async move {
                let mut update = self
                    .client
                    .update_item()
                    .table_name(&self.table)
                    .key(PK, AttributeValue::S(rollup_pk(p.window.resolution)))
                    .key(SK, AttributeValue::S(mark_sk(&p)))
                    .expression_attribute_values(":one", AttributeValue::N("1".into()))
                    .expression_attribute_values(":t", AttributeValue::S(p.tenant.to_string()));
                let mut expression = "SET tenant = :t".to_owned();
                if let Some(metric) = &p.metric {
                    expression.push_str(", metric = :m");
                    update =
                        update.expression_attribute_values(":m", AttributeValue::S(metric.clone()));
                }
                expression.push_str(" ADD marks :one");
                if !p.series.is_empty() {
                    expression.push_str(", series :s");
                    update = update.expression_attribute_values(
                        ":s",
                        AttributeValue::Ss(p.series.iter().cloned().collect()),
                    );
                }
                if !p.shards.is_empty() {
                    expression.push_str(", shards :h");
                    update = update.expression_attribute_values(
                        ":h",
                        AttributeValue::Ns(p.shards.iter().map(u32::to_string).collect()),
                    );
                }
                update
                    .update_expression(expression)
                    .send()
                    .await
                    .map_err(crate::classify)?;
                Ok(())
            })
            .buffer_unordered(16)
            .collect()
            .await;
        sent.into_iter().collect()
    }

    async fn pending(
        &self,
        resolution: Resolution,
        before: i64,
        limit: usize,
    ) -> Result<Vec<Pending>, StoreError> {
        let page = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#p = :p AND #s < :before")
            .expression_attribute_names("#p", PK)
            .expression_attribute_names("#s", SK)
            .expression_attribute_values(":p", AttributeValue::S(rollup_pk(resolution)))
            .expression_attribute_values(":before", AttributeValue::S(bucket_sk(before)))
            .consistent_read(true)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(crate::classify)?;
        Ok(page
            .items()
            .iter()
            .filter_map(|i| pending_from(resolution, i))
            .collect())
    }

    async fn clear(&self, window: &Pending) -> Result<(), StoreError> {
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(rollup_pk(window.window.resolution)))
            .key(SK, AttributeValue::S(mark_sk(window)))
            .condition_expression("marks = :m")
            .expression_attribute_values(":m", AttributeValue::N(window.marks.to_string()))
            .send()
            .await;
        match deleted {
            Ok(_) => Ok(()),
            // Marked again meanwhile: it stays for the next run.
            Err(e) if conditional_failed(&e) => Ok(()),
            Err(e) => Err(crate::classify(e)),
        }
    }
}

impl RollupBuckets for DynamoMetrics {
    async fn was_sealed(&self, tenant: &TenantId, start: i64) -> Result<bool, StoreError> {
        // Sealing writes every metric's total of the minute with `sealed`: one is enough.
        let page = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#p = :p AND begins_with(#s, :s)")
            .expression_attribute_names("#p", PK)
            .expression_attribute_names("#s", SK)
            .expression_attribute_values(
                ":p",
                AttributeValue::S(totals_pk(tenant.as_str(), Resolution::Minute.as_str())),
            )
            .expression_attribute_values(":s", AttributeValue::S(format!("{}#", bucket_sk(start))))
            .consistent_read(true)
            .send()
            .await
            .map_err(crate::classify)?;
        Ok(page
            .items()
            .iter()
            .any(|i| i.get(SEALED).is_some_and(|v| v.as_bool() == Ok(&true))))
    }

    async fn buckets(
        &self,
        series: &SeriesKey,
        resolution: Resolution,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, Bucket)>, StoreError> {
        let first = BucketAt {
            series: series.clone(),
            resolution,
            start: from,
        };
        let (pk, from_sk) = bucket_key(&first);
        // Every key of a start is `{start}#…` (metric names and series ids sort below '~'),
        // and a filter keeps this series' (or, in the totals partition, this metric's).
        let to_sk = format!("{}#~", bucket_sk(to - 1));
        let only = if series.series == TOTAL_SERIES {
            ("metric", [series.metric.as_str()])
        } else {
            ("series", [series.series.as_str()])
        };
        let items = self
            .range(pk, from_sk, to_sk, Some((only.0, &only.1)))
            .await?;
        Ok(items
            .iter()
            .filter_map(|item| Some((bucket_start(item)?, bucket_state(item)?)))
            .collect())
    }

    async fn series_buckets(
        &self,
        tenant: &TenantId,
        metric: &str,
        series: &[String],
        resolution: Resolution,
        from: i64,
        to: i64,
    ) -> Result<Vec<(String, i64, Bucket)>, StoreError> {
        let wanted: HashSet<&str> = series.iter().map(String::as_str).collect();
        let mut shards: BTreeMap<u32, usize> = BTreeMap::new();
        let mut out = Vec::new();
        for id in &wanted {
            if *id == TOTAL_SERIES {
                let key = SeriesKey {
                    tenant: tenant.clone(),
                    metric: metric.to_owned(),
                    series: (*id).to_owned(),
                };
                let buckets = self.buckets(&key, resolution, from, to).await?;
                out.extend(buckets.into_iter().map(|(s, b)| ((*id).to_owned(), s, b)));
            } else {
                *shards.entry(series_shard(id)).or_default() += 1;
            }
        }
        let (from_sk, to_sk) = (bucket_sk(from), format!("{}#~", bucket_sk(to - 1)));
        let read: Vec<Result<Vec<Item>, StoreError>> =
            futures::stream::iter(shards.into_iter().map(|(shard, wanted_here)| {
                let pk = format!("{tenant}#{metric}#{}#s{shard}", resolution.as_str());
                let (from_sk, to_sk) = (from_sk.clone(), to_sk.clone());
                async move {
                    // One series of a shard: let DynamoDB filter, as a one-series read does.
                    let only = (wanted_here == 1).then(|| {
                        series
                            .iter()
                            .find(|id| series_shard(id) == shard && *id != TOTAL_SERIES)
                            .map(|id| [id.as_str()])
                    });
                    let only = only.flatten();
                    self.range(
                        pk,
                        from_sk,
                        to_sk,
                        only.as_ref().map(|v| ("series", &v[..])),
                    )
                    .await
                }
            }))
            .buffer_unordered(SERIES_SHARDS as usize)
            .collect()
            .await;
        for items in read {
            for item in items? {
                let Some(id) = item.get("series").and_then(|v| v.as_s().ok()) else {
                    continue;
                };
                if !wanted.contains(id.as_str()) {
                    continue;
                }
                if let (Some(start), Some(bucket)) = (bucket_start(&item), bucket_state(&item)) {
                    out.push((id.clone(), start, bucket));
                }
            }
        }
        Ok(out)
    }
}

impl BucketWriter for DynamoMetrics {
    async fn put_bucket(&self, at: &BucketAt, bucket: &Bucket) -> Result<(), StoreError> {
        let item = self.sealed_item(at, bucket)?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(crate::classify)?;
        Ok(())
    }

    async fn put_buckets(&self, buckets: &[(BucketAt, Bucket)]) -> Result<(), StoreError> {
        // 25 a request, 4 requests in flight: sealing a minute of 1,200 series is 48 requests
        // instead of 1,200, which matters most where requests cost most (the local cloud).
        let items: Vec<Item> = buckets
            .iter()
            .map(|(at, bucket)| self.sealed_item(at, bucket))
            .collect::<Result<_, _>>()?;
        let chunks: Vec<Vec<Item>> = items.chunks(25).map(<[_]>::to_vec).collect();
        let written: Vec<Result<(), StoreError>> = futures::stream::iter(chunks)
            .map(|chunk| self.put_batch(chunk))
            .buffer_unordered(4)
            .collect()
            .await;
        written.into_iter().collect()
    }
}

impl DynamoMetrics {
    /// A sealed or rolled bucket's item. A fresh version: a live merge that read the replaced
    /// bucket fails its condition and merges into this one instead (and marks the minute for
    /// sealing again). Sealed: exact from the raw events, so no live merge may add to it any
    /// more (a late record marks the minute and the next seal includes it).
    fn sealed_item(&self, at: &BucketAt, bucket: &Bucket) -> Result<Item, StoreError> {
        let version = chrono::Utc::now().timestamp_micros();
        let mut item = self.bucket_item(at, bucket, version)?;
        item.insert(SEALED.to_owned(), AttributeValue::Bool(true));
        Ok(item)
    }
}

impl Totals for DynamoMetrics {
    async fn totals(
        &self,
        tenant: &TenantId,
        resolution: Resolution,
        from: i64,
        to: i64,
        metrics: &[&str],
    ) -> Result<Vec<(String, i64, Bucket)>, StoreError> {
        // DynamoDB allows 100 operands in an IN; more metrics than that read them all.
        let only = (metrics.len() <= 100).then_some(("metric", metrics));
        let items = self
            .range(
                totals_pk(tenant.as_str(), resolution.as_str()),
                bucket_sk(from),
                format!("{}#~", bucket_sk(to - 1)),
                only,
            )
            .await?;
        Ok(items
            .iter()
            .filter_map(|item| {
                let metric = item.get("metric")?.as_s().ok()?.clone();
                Some((metric, bucket_start(item)?, bucket_state(item)?))
            })
            .collect())
    }
}

impl DynamoMetrics {
    /// The current chunks of the records of partition `pk` starting in `[from, to)`: items
    /// `{record}#{chunk}` (a record key starts with its zero-padded start) whose chunk 0 says
    /// how many chunks are current, so a record rewritten in fewer chunks leaves no stale tail
    /// behind. As `(record, chunk)`.
    async fn chunked_records(
        &self,
        pk: String,
        from: i64,
        to: i64,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let items = self
            .range(
                pk,
                bucket_sk(from),
                format!("{}#~", bucket_sk(to - 1)),
                None,
            )
            .await?;
        let mut current: HashMap<String, usize> = HashMap::new();
        for item in &items {
            let sk = item.get(SK).and_then(|v| v.as_s().ok());
            if let Some((record, "0000")) = sk.and_then(|s| s.rsplit_once('#')) {
                let n = item
                    .get("chunks")
                    .and_then(|v| v.as_n().ok())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1);
                current.insert(record.to_owned(), n);
            }
        }
        Ok(items
            .iter()
            .filter_map(|item| {
                let (record, chunk) = item.get(SK)?.as_s().ok()?.rsplit_once('#')?;
                let chunk: usize = chunk.parse().ok()?;
                (chunk < *current.get(record)?).then_some(())?;
                Some((
                    record.to_owned(),
                    item.get("trail")?.as_b().ok()?.as_ref().to_vec(),
                ))
            })
            .collect())
    }

    /// [`DynamoMetrics::chunked_records`] of records keyed by their start alone.
    async fn chunked(&self, pk: String, from: i64, to: i64) -> Result<Vec<Vec<u8>>, StoreError> {
        Ok(self
            .chunked_records(pk, from, to)
            .await?
            .into_iter()
            .map(|(_, chunk)| chunk)
            .collect())
    }

    /// The items of record `record` (its sort key prefix) of partition `pk` holding `chunks`.
    fn chunk_items(
        pk: &str,
        record: &str,
        tenant: &TenantId,
        chunks: &[Vec<u8>],
        expires: i64,
    ) -> Vec<Item> {
        chunks
            .iter()
            .enumerate()
            .map(|(i, chunk)| {
                HashMap::from([
                    (PK.to_owned(), AttributeValue::S(pk.to_owned())),
                    (SK.to_owned(), AttributeValue::S(format!("{record}#{i:04}"))),
                    ("tenant".to_owned(), AttributeValue::S(tenant.to_string())),
                    (
                        "trail".to_owned(),
                        AttributeValue::B(Blob::new(chunk.clone())),
                    ),
                    (
                        "chunks".to_owned(),
                        AttributeValue::N(chunks.len().to_string()),
                    ),
                    (
                        EXPIRES_AT.to_owned(),
                        AttributeValue::N(expires.to_string()),
                    ),
                ])
            })
            .collect()
    }

    /// Replaces the record of partition `pk` starting at `start` with `chunks`.
    async fn put_chunked(
        &self,
        pk: String,
        tenant: &TenantId,
        start: i64,
        chunks: &[Vec<u8>],
        expires: i64,
    ) -> Result<(), StoreError> {
        for item in Self::chunk_items(&pk, &bucket_sk(start), tenant, chunks, expires) {
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .send()
                .await
                .map_err(crate::classify)?;
        }
        Ok(())
    }
}

impl TrailStore for DynamoMetrics {
    async fn trails(
        &self,
        tenant: &TenantId,
        from: i64,
        to: i64,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        self.chunked(format!("{tenant}#__trails__"), from, to).await
    }
}

impl TrailWriter for DynamoMetrics {
    async fn put_trail(
        &self,
        tenant: &TenantId,
        hour: i64,
        chunks: &[Vec<u8>],
    ) -> Result<(), StoreError> {
        let expires =
            self.retention
                .expires_at(Resolution::Hour, hour, chrono::Utc::now().timestamp());
        self.put_chunked(
            format!("{tenant}#__trails__"),
            tenant,
            hour,
            chunks,
            expires,
        )
        .await
    }
}

/// How long a sealed minute's visit record is kept: the open hours it serves end within
/// 90 minutes of it; the rest is margin for a lagging job.
const VISIT_MINUTE_SECS: i64 = 4 * 3_600;

impl VisitReader for DynamoMetrics {
    async fn visit_minutes(
        &self,
        tenant: &TenantId,
        from: i64,
        to: i64,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        self.chunked(format!("{tenant}#__visits__"), from, to).await
    }
}

impl VisitWriter for DynamoMetrics {
    async fn put_visit_minute(
        &self,
        tenant: &TenantId,
        minute: i64,
        chunks: &[Vec<u8>],
    ) -> Result<(), StoreError> {
        let expires = minute + VISIT_MINUTE_SECS;
        self.put_chunked(
            format!("{tenant}#__visits__"),
            tenant,
            minute,
            chunks,
            expires,
        )
        .await
    }
}

fn breakdown_pk(tenant: &TenantId, resolution: Resolution) -> String {
    format!("{tenant}#__breakdown__#{resolution}")
}

impl BreakdownWriter for DynamoMetrics {
    async fn put_breakdowns(
        &self,
        tenant: &TenantId,
        records: &[crate::BreakdownRecord],
    ) -> Result<(), StoreError> {
        let now = chrono::Utc::now().timestamp();
        let items: Vec<Item> = records
            .iter()
            .flat_map(|(resolution, start, kind, chunks)| {
                let record = format!("{}#{}", bucket_sk(*start), kind.key());
                let expires = self.retention.expires_at(*resolution, *start, now);
                Self::chunk_items(
                    &breakdown_pk(tenant, *resolution),
                    &record,
                    tenant,
                    chunks,
                    expires,
                )
            })
            .collect();
        // A batch holds at most 25 items and 16 MB; chunks are at most ~350 KB.
        for batch in items.chunks(25) {
            self.put_batch(batch.to_vec()).await?;
        }
        Ok(())
    }
}

impl BreakdownReader for DynamoMetrics {
    async fn breakdowns(
        &self,
        tenant: &TenantId,
        resolution: Resolution,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, Kind, Vec<u8>)>, StoreError> {
        Ok(self
            .chunked_records(breakdown_pk(tenant, resolution), from, to)
            .await?
            .into_iter()
            .filter_map(|(record, chunk)| {
                let (start, kind) = record.split_once('#')?;
                Some((start.parse().ok()?, Kind::from_key(kind)?, chunk))
            })
            .collect())
    }
}

impl SeriesCatalog for DynamoMetrics {
    async fn series(
        &self,
        tenant: &TenantId,
        metric: &str,
    ) -> Result<Vec<(String, BTreeMap<String, String>)>, StoreError> {
        let items = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#p = :p")
            .expression_attribute_names("#p", PK)
            .expression_attribute_values(
                ":p",
                AttributeValue::S(registry_pk(tenant.as_str(), metric)),
            )
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(crate::classify)?;
        let mut out = Vec::new();
        for item in &items {
            let Some(id) = item.get(SK).and_then(|v| v.as_s().ok()) else {
                continue;
            };
            if id == COUNT_SK {
                // The counter says whether anything overflowed into __other__.
                if item.contains_key("overflow_series") {
                    out.push((
                        pulse_metrics::aggregate::OTHER_SERIES.to_owned(),
                        BTreeMap::from([(
                            pulse_metrics::query::FOLDED.to_owned(),
                            "true".to_owned(),
                        )]),
                    ));
                }
                continue;
            }
            let tags = item
                .get("tags")
                .and_then(|v| v.as_m().ok())
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_s().ok()?.clone())))
                        .collect()
                })
                .unwrap_or_default();
            out.push((id.clone(), tags));
        }
        Ok(out)
    }
}

/// The attribute holding a live bucket's [`Watermarks`]: partition → sequence.
const APPLIED: &str = "applied";
/// Set on a bucket sealing wrote.
const SEALED: &str = "sealed";

/// The marks stored on a bucket item (none on a bucket written before marks existed).
fn watermarks(item: &HashMap<String, AttributeValue>) -> Watermarks {
    Watermarks(
        item.get(APPLIED)
            .and_then(|v| v.as_m().ok())
            .map(|m| {
                m.iter()
                    .filter_map(|(p, s)| Some((p.clone(), Sequence::new(s.as_s().ok()?.clone()))))
                    .collect()
            })
            .unwrap_or_default(),
    )
}

fn conditional_failed<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    e.code() == Some("ConditionalCheckFailedException")
}

impl DynamoMetrics {
    /// Claims `key` in the registry: `true` if this call created it, `false` if it existed.
    async fn claim_series(
        &self,
        key: &SeriesKey,
        tags: &BTreeMap<String, String>,
    ) -> Result<bool, StoreError> {
        let tag_map = tags
            .iter()
            .map(|(k, v)| (k.clone(), AttributeValue::S(v.clone())))
            .collect();
        let claimed = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(
                PK,
                AttributeValue::S(registry_pk(key.tenant.as_str(), &key.metric)),
            )
            .item(SK, AttributeValue::S(key.series.clone()))
            .item("tags", AttributeValue::M(tag_map))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match claimed {
            Ok(_) => Ok(true),
            Err(e) if conditional_failed(&e) => Ok(false),
            Err(e) => Err(super::classify(e)),
        }
    }

    /// Adds `n` to the metric's series count if the total stays within `cap`; `false` if it
    /// would not.
    async fn count_series(
        &self,
        tenant: &TenantId,
        metric: &str,
        n: usize,
        cap: usize,
    ) -> Result<bool, StoreError> {
        let Some(room) = cap.checked_sub(n) else {
            return Ok(false);
        };
        let counted = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(registry_pk(tenant.as_str(), metric)))
            .key(SK, AttributeValue::S(COUNT_SK.to_owned()))
            .update_expression("ADD series_count :n")
            .condition_expression("attribute_not_exists(series_count) OR series_count <= :room")
            .expression_attribute_values(":n", AttributeValue::N(n.to_string()))
            .expression_attribute_values(":room", AttributeValue::N(room.to_string()))
            .send()
            .await;
        match counted {
            Ok(_) => Ok(true),
            Err(e) if conditional_failed(&e) => Ok(false),
            Err(e) => Err(super::classify(e)),
        }
    }

    /// The number of series registered for a metric.
    async fn series_count(&self, tenant: &TenantId, metric: &str) -> Result<usize, StoreError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(registry_pk(tenant.as_str(), metric)))
            .key(SK, AttributeValue::S(COUNT_SK.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(crate::classify)?;
        Ok(item
            .item()
            .and_then(|i| i.get("series_count"))
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0))
    }

    /// Gives back the claim of a series that lost the room under the cap to another writer.
    async fn release_series(&self, key: &SeriesKey) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key(
                PK,
                AttributeValue::S(registry_pk(key.tenant.as_str(), &key.metric)),
            )
            .key(SK, AttributeValue::S(key.series.clone()))
            .send()
            .await
            .map_err(crate::classify)?;
        Ok(())
    }

    /// Counts samples of `n` series folded into `__other__` (visible, never silent).
    async fn count_overflow(
        &self,
        tenant: &TenantId,
        metric: &str,
        n: usize,
    ) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(registry_pk(tenant.as_str(), metric)))
            .key(SK, AttributeValue::S(COUNT_SK.to_owned()))
            .update_expression("ADD overflow_series :n")
            .expression_attribute_values(":n", AttributeValue::N(n.to_string()))
            .send()
            .await
            .map_err(crate::classify)?;
        Ok(())
    }

    /// Remembers a registered series, so a warm function skips the registry for it.
    fn remember(&self, key: &SeriesKey) {
        if let Ok(mut known) = self.known.lock() {
            known.insert(key.clone());
        }
    }
}

/// Series registered at once by one batch.
const REGISTRY_CONCURRENCY: usize = 4;

impl DynamoMetrics {
    /// [`BucketStore::merge_bucket`], starting from `prefetched` (the item as a batch read
    /// found it, `Some(None)` for no item) instead of reading it; a lost race reads again.
    async fn merge_from(
        &self,
        key: &BucketKey,
        bucket: &Bucket,
        span: &Span,
        mut prefetched: Option<Option<Item>>,
    ) -> Result<Merged, StoreError> {
        let start = key.minute * 60;
        let at = BucketAt {
            series: SeriesKey {
                tenant: key.tenant.clone(),
                metric: key.metric.clone(),
                series: key.series.clone(),
            },
            resolution: Resolution::Minute,
            start,
        };
        let (pk, sk) = bucket_key(&at);
        for attempt in 0..MERGE_ATTEMPTS {
            let current = match prefetched.take() {
                Some(item) => item,
                None => self.item_at(&pk, &sk).await?,
            };
            let item = current.as_ref();
            if item.is_some_and(|i| i.get(SEALED).is_some_and(|v| v.as_bool() == Ok(&true))) {
                return Ok(Merged::Sealed);
            }
            let marks = item.map(watermarks).unwrap_or_default();
            match marks.check(span) {
                Check::New => {}
                Check::Applied => return Ok(Merged::AlreadyApplied),
                Check::Partly => return Ok(Merged::Partly(marks)),
            }
            let (mut merged, version) = match item {
                Some(item) => stored(item, &pk, &sk)?,
                None => (Bucket::default(), 0),
            };
            merged.merge(bucket);
            let mut item = self.bucket_item(&at, &merged, version + 1)?;
            let applied = span.applied_over(&marks);
            item.insert(
                APPLIED.to_owned(),
                AttributeValue::M(
                    applied
                        .0
                        .into_iter()
                        .map(|(p, s)| (p, AttributeValue::S(s.as_str().to_owned())))
                        .collect(),
                ),
            );
            if self
                .put_if_version(item, version)
                .await?
                .written(attempt, &mut prefetched)
                .await
            {
                return Ok(Merged::Written);
            }
        }
        Err(StoreError::Throttled(
            format!("bucket {pk}/{sk} stayed contended after {MERGE_ATTEMPTS} attempts").into(),
        ))
    }

    /// The items at `keys` (pk, sk), read consistently 100 at a time, retrying what DynamoDB
    /// leaves unprocessed.
    async fn batch_get(
        &self,
        keys: &[(String, String)],
    ) -> Result<HashMap<(String, String), Item>, StoreError> {
        let mut found = HashMap::new();
        for chunk in keys.chunks(100) {
            let mut request =
                aws_sdk_dynamodb::types::KeysAndAttributes::builder().consistent_read(true);
            for (pk, sk) in chunk.iter().collect::<HashSet<_>>() {
                request = request.keys(HashMap::from([
                    (PK.to_owned(), AttributeValue::S(pk.clone())),
                    (SK.to_owned(), AttributeValue::S(sk.clone())),
                ]));
            }
            let mut pending = Some(
                request
                    .build()
                    .map_err(|e| StoreError::Unavailable(Box::new(e)))?,
            );
            for _ in 0..MERGE_ATTEMPTS {
                let Some(request) = pending.take() else { break };
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(crate::classify)?;
                for item in out
                    .responses
                    .and_then(|mut r| r.remove(&self.table))
                    .unwrap_or_default()
                {
                    let key = |k: &str| {
                        item.get(k)
                            .and_then(|v| v.as_s().ok())
                            .cloned()
                            .unwrap_or_default()
                    };
                    found.insert((key(PK), key(SK)), item);
                }
                pending = out
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                    .filter(|k| !k.keys().is_empty());
                if pending.is_some() {
                    tokio::time::sleep(std::time::Duration::from_millis(25)).await;
                }
            }
            if pending.is_some() {
                return Err(StoreError::Throttled(
                    "bucket reads stayed unprocessed".into(),
                ));
            }
        }
        Ok(found)
    }
}

/// The minute bucket `key` names.
fn minute_at(key: &BucketKey) -> BucketAt {
    BucketAt {
        series: SeriesKey {
            tenant: key.tenant.clone(),
            metric: key.metric.clone(),
            series: key.series.clone(),
        },
        resolution: Resolution::Minute,
        start: key.minute * 60,
    }
}

/// Bucket writes in flight at once for one batch.
const MERGE_CONCURRENCY: usize = 4;

/// The imports merged into a bucket (a string set of their ids).
const IMPORTS: &str = "imports";

impl DynamoMetrics {
    /// [`HistoryWriter::merge_history`] for one bucket, starting from `prefetched` when a batch
    /// read found it (`Some(None)`: no item); a lost race reads again.
    async fn merge_imported(
        &self,
        at: &BucketAt,
        bucket: &Bucket,
        contribution: &str,
        mut prefetched: Option<Option<Item>>,
    ) -> Result<(), StoreError> {
        let (pk, sk) = bucket_key(at);
        for attempt in 0..MERGE_ATTEMPTS {
            let current = match prefetched.take() {
                Some(item) => item,
                None => self.item_at(&pk, &sk).await?,
            };
            let Some(item) = self.merged_item(at, bucket, contribution, current.as_ref())? else {
                return Ok(());
            };
            let version = current.as_ref().map_or(0, version_of);
            if self
                .put_if_version(item, version)
                .await?
                .written(attempt, &mut prefetched)
                .await
            {
                return Ok(());
            }
        }
        Err(StoreError::Throttled(
            format!("bucket {pk}/{sk} stayed contended after {MERGE_ATTEMPTS} attempts").into(),
        ))
    }
}

impl DynamoMetrics {
    /// The item at `(pk, sk)`, read consistently.
    async fn item_at(&self, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
        Ok(self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(pk.to_owned()))
            .key(SK, AttributeValue::S(sk.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(crate::classify)?
            .item)
    }

    /// Puts `item` if the stored one is still at `version` (none stored, for 0); [`Put::Lost`]
    /// with the item as it now stands when another writer got there first.
    async fn put_if_version(&self, item: Item, version: i64) -> Result<Put, StoreError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            // A lost race answers the item it lost to, so the next attempt needs no read.
            .return_values_on_condition_check_failure(
                aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
            );
        put = if version == 0 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("version = :v")
                .expression_attribute_values(":v", AttributeValue::N(version.to_string()))
        };
        match put.send().await {
            Ok(_) => Ok(Put::Written),
            Err(e) if conditional_failed(&e) => {
                let current = e.into_service_error();
                let item = match current {
                    aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c) => c.item,
                    _ => None,
                };
                Ok(Put::Lost(item))
            }
            Err(e) => Err(crate::classify(e)),
        }
    }
}

/// The outcome of a versioned put.
enum Put {
    Written,
    /// Another writer got there first; the item as it now stands, when the store says.
    Lost(Option<Item>),
}

impl Put {
    /// `true` if written; otherwise `prefetched` becomes the item the write lost to (or stays
    /// empty, to be read), after a pause with jitter that spreads contending writers apart
    /// (none after the last of [`MERGE_ATTEMPTS`]).
    async fn written(self, attempt: usize, prefetched: &mut Option<Option<Item>>) -> bool {
        match self {
            Put::Written => true,
            Put::Lost(item) => {
                *prefetched = item.map(Some);
                if attempt + 1 < MERGE_ATTEMPTS {
                    tokio::time::sleep(contention_pause(attempt)).await;
                }
                false
            }
        }
    }
}

/// A random pause of up to 5 ms × 2^attempt (at most 160 ms): writers of one hot bucket (the
/// parallel batches of a stream shard all add to a metric's totals) that lost a race retry at
/// different moments instead of colliding again.
fn contention_pause(attempt: usize) -> std::time::Duration {
    let ceiling = 5u64 << attempt.min(5);
    let nanos = u64::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos(),
    );
    let spread = xxhash_rust::xxh3::xxh3_64(&nanos.to_le_bytes()) % (ceiling * 1_000);
    std::time::Duration::from_micros(spread)
}

/// A stored bucket's state and version.
fn stored(item: &Item, pk: &str, sk: &str) -> Result<(Bucket, i64), StoreError> {
    let version = version_of(item);
    let bucket = item
        .get("state")
        .and_then(|v| v.as_b().ok())
        .and_then(|b| postcard::from_bytes::<Bucket>(b.as_ref()).ok())
        .ok_or_else(|| {
            StoreError::Unavailable(format!("bucket {pk}/{sk} has no readable state").into())
        })?;
    Ok((bucket, version))
}

/// A stored bucket's version (0 for none).
fn version_of(item: &Item) -> i64 {
    item.get("version")
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// History merges in flight at once for one import.
const HISTORY_CONCURRENCY: usize = 8;

impl HistoryWriter for DynamoMetrics {
    async fn lease_imports(
        &self,
        tenant: &TenantId,
        now: i64,
        until: i64,
    ) -> Result<bool, StoreError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, AttributeValue::S(format!("{tenant}#imports")))
            .item(SK, AttributeValue::S(LEASE_SK.to_owned()))
            .item(EXPIRES_AT, AttributeValue::N(until.to_string()))
            .condition_expression("attribute_not_exists(pk) OR #e < :now")
            .expression_attribute_names("#e", EXPIRES_AT)
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .send()
            .await;
        match put {
            Ok(_) => Ok(true),
            Err(e) if conditional_failed(&e) => Ok(false),
            Err(e) => Err(crate::classify(e)),
        }
    }

    async fn import_boundary(
        &self,
        tenant: &TenantId,
        contribution: &str,
        live_from: i64,
        keep_until: i64,
    ) -> Result<i64, StoreError> {
        let (pk, sk) = (
            format!("{tenant}#imports"),
            format!("boundary#{contribution}"),
        );
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, AttributeValue::S(pk.clone()))
            .item(SK, AttributeValue::S(sk.clone()))
            .item("live_from", AttributeValue::N(live_from.to_string()))
            .item(EXPIRES_AT, AttributeValue::N(keep_until.to_string()))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match put {
            Ok(_) => return Ok(live_from),
            Err(e) if conditional_failed(&e) => {}
            Err(e) => return Err(crate::classify(e)),
        }
        let got = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(pk))
            .key(SK, AttributeValue::S(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(crate::classify)?;
        Ok(got
            .item()
            .and_then(|i| i.get("live_from"))
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(live_from))
    }

    async fn release_imports(&self, tenant: &TenantId) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(format!("{tenant}#imports")))
            .key(SK, AttributeValue::S(LEASE_SK.to_owned()))
            .send()
            .await
            .map_err(crate::classify)?;
        Ok(())
    }

    async fn merge_history(
        &self,
        buckets: &[(BucketAt, Bucket)],
        contribution: &str,
        unshared_before: i64,
    ) -> Result<(), StoreError> {
        let keys: Vec<(String, String)> = buckets.iter().map(|(at, _)| bucket_key(at)).collect();
        let found = self.batch_get(&keys).await?;
        let mut batched = Vec::new();
        let mut shared = Vec::new();
        for ((at, bucket), k) in buckets.iter().zip(&keys) {
            let current = found.get(k);
            if at.start + at.resolution.secs() <= unshared_before {
                if let Some(item) = self.merged_item(at, bucket, contribution, current)? {
                    batched.push(item);
                }
            } else {
                shared.push((at, bucket, Some(current.cloned())));
            }
        }
        let chunks: Vec<Vec<Item>> = batched.chunks(25).map(<[_]>::to_vec).collect();
        let written: Vec<Result<(), StoreError>> = futures::stream::iter(chunks)
            .map(|chunk| self.put_batch(chunk))
            .buffer_unordered(HISTORY_CONCURRENCY)
            .collect()
            .await;
        written.into_iter().collect::<Result<(), StoreError>>()?;
        let writes: Vec<_> = shared
            .into_iter()
            .map(|(at, bucket, prefetched)| {
                self.merge_imported(at, bucket, contribution, prefetched)
            })
            .collect();
        let merged: Vec<Result<(), StoreError>> = futures::stream::iter(writes)
            .buffer_unordered(HISTORY_CONCURRENCY)
            .collect()
            .await;
        merged.into_iter().collect()
    }
}

/// The sort key of a tenant's import lease.
const LEASE_SK: &str = "#lease";

impl DynamoMetrics {
    /// The item of `bucket` merged into `current` with `contribution` marked, or `None` when
    /// `current` already has it.
    fn merged_item(
        &self,
        at: &BucketAt,
        bucket: &Bucket,
        contribution: &str,
        current: Option<&Item>,
    ) -> Result<Option<Item>, StoreError> {
        let (pk, sk) = bucket_key(at);
        let mut imports: Vec<String> = current
            .and_then(|i| i.get(IMPORTS))
            .and_then(|v| v.as_ss().ok())
            .cloned()
            .unwrap_or_default();
        if imports.iter().any(|i| i == contribution) {
            return Ok(None);
        }
        let (mut merged, version) = match current {
            Some(item) => stored(item, &pk, &sk)?,
            None => (Bucket::default(), 0),
        };
        merged.merge(bucket);
        let mut item = self.bucket_item(at, &merged, version + 1)?;
        // What the stream and the job wrote stays: the live marks of applied records and the
        // sealed flag.
        for kept in [APPLIED, SEALED] {
            if let Some(v) = current.and_then(|c| c.get(kept)) {
                item.insert(kept.to_owned(), v.clone());
            }
        }
        imports.push(contribution.to_owned());
        item.insert(IMPORTS.to_owned(), AttributeValue::Ss(imports));
        Ok(Some(item))
    }

    /// Puts `items` with BatchWriteItem, retrying what DynamoDB leaves unprocessed.
    async fn put_batch(&self, items: Vec<Item>) -> Result<(), StoreError> {
        use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
        let mut pending: Vec<WriteRequest> = items
            .into_iter()
            .map(|item| {
                PutRequest::builder()
                    .set_item(Some(item))
                    .build()
                    .map(|put| WriteRequest::builder().put_request(put).build())
                    .map_err(|e| StoreError::Unavailable(Box::new(e)))
            })
            .collect::<Result<_, _>>()?;
        for attempt in 0..MERGE_ATTEMPTS {
            if pending.is_empty() {
                return Ok(());
            }
            if attempt > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(25 << attempt)).await;
            }
            pending = self
                .client
                .batch_write_item()
                .request_items(&self.table, pending)
                .send()
                .await
                .map_err(crate::classify)?
                .unprocessed_items
                .and_then(|mut u| u.remove(&self.table))
                .unwrap_or_default();
        }
        if pending.is_empty() {
            Ok(())
        } else {
            Err(StoreError::Throttled(
                "bucket writes stayed unprocessed".into(),
            ))
        }
    }
}

impl SeriesRegistry for DynamoMetrics {
    async fn register_series(
        &self,
        series: &[(SeriesKey, BTreeMap<String, String>)],
        cap: usize,
    ) -> Result<Vec<SeriesKey>, StoreError> {
        // Unknown to this function: look them up together (one read per 100), then claim only
        // the truly new ones that fit under each metric's cap (of concurrent writers exactly one
        // creates each), and count each metric's claims with one conditional ADD. A batch of
        // many new tag sets costs about one write per series; past the cap, none.
        let unknown: Vec<&(SeriesKey, BTreeMap<String, String>)> = series
            .iter()
            .filter(|(key, _)| !self.known.lock().map(|k| k.contains(key)).unwrap_or(false))
            .collect();
        if unknown.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<(String, String)> = unknown
            .iter()
            .map(|(k, _)| (registry_pk(k.tenant.as_str(), &k.metric), k.series.clone()))
            .collect();
        let registered = self.batch_get(&keys).await?;
        type Tagged = (SeriesKey, BTreeMap<String, String>);
        let mut new: BTreeMap<(TenantId, String), Vec<&Tagged>> = BTreeMap::new();
        for (entry, key) in unknown.into_iter().zip(&keys) {
            if registered.contains_key(key) {
                self.remember(&entry.0);
            } else {
                new.entry((entry.0.tenant.clone(), entry.0.metric.clone()))
                    .or_default()
                    .push(entry);
            }
        }
        let mut refused = Vec::new();
        for ((tenant, metric), entries) in new {
            let room = cap.saturating_sub(self.series_count(&tenant, &metric).await?);
            let (fit, over) = entries.split_at(room.min(entries.len()));
            let claims: Vec<_> =
                fit.iter()
                    .map(|(key, tags)| async move {
                        self.claim_series(key, tags).await.map(|c| (key, c))
                    })
                    .collect();
            let outcomes: Vec<Result<(&SeriesKey, bool), StoreError>> =
                futures::stream::iter(claims)
                    .buffer_unordered(REGISTRY_CONCURRENCY)
                    .collect()
                    .await;
            let mut claimed = Vec::new();
            for outcome in outcomes {
                let (key, created) = outcome?;
                if created {
                    claimed.push(key.clone());
                } else {
                    self.remember(key);
                }
            }
            if !claimed.is_empty()
                && self
                    .count_series(&tenant, &metric, claimed.len(), cap)
                    .await?
            {
                claimed.iter().for_each(|k| self.remember(k));
            } else if !claimed.is_empty() {
                // A concurrent writer took some of the room: count as many as still fit in one
                // go (re-reading the room while others keep taking it), give the rest back.
                let mut fit = 0;
                for _ in 0..MERGE_ATTEMPTS {
                    let room = cap.saturating_sub(self.series_count(&tenant, &metric).await?);
                    let take = room.min(claimed.len());
                    if take == 0 || self.count_series(&tenant, &metric, take, cap).await? {
                        fit = take;
                        break;
                    }
                }
                let lost = claimed.split_off(fit);
                claimed.iter().for_each(|k| self.remember(k));
                let releases: Vec<_> = lost
                    .iter()
                    .map(|key| async move { self.release_series(key).await })
                    .collect();
                let releases: Vec<Result<(), StoreError>> = futures::stream::iter(releases)
                    .buffer_unordered(REGISTRY_CONCURRENCY)
                    .collect()
                    .await;
                releases.into_iter().collect::<Result<(), _>>()?;
                refused.extend(lost);
            }
            refused.extend(over.iter().map(|(k, _)| k.clone()));
            let overflow = refused
                .iter()
                .filter(|k| k.tenant == tenant && k.metric == metric)
                .count();
            if overflow > 0 {
                self.count_overflow(&tenant, &metric, overflow).await?;
                tracing::warn!(tenant = %tenant, metric = %metric, cap, overflow, "series cap reached; folding into __other__");
            }
        }
        Ok(refused)
    }
}

impl BucketStore for DynamoMetrics {
    async fn merge_bucket(
        &self,
        key: &BucketKey,
        bucket: &Bucket,
        span: &Span,
    ) -> Result<Merged, StoreError> {
        self.merge_from(key, bucket, span, None).await
    }

    async fn merge_buckets(
        &self,
        merges: &[(BucketKey, Bucket, Span)],
    ) -> Vec<Result<Merged, StoreError>> {
        // One consistent BatchGetItem per 100 buckets instead of a GetItem each; the writes
        // stay one conditional PutItem each (DynamoDB batches no conditions).
        let keys: Vec<(String, String)> = merges
            .iter()
            .map(|(k, _, _)| bucket_key(&minute_at(k)))
            .collect();
        let found = match self.batch_get(&keys).await {
            Ok(found) => Some(found),
            Err(e) => {
                tracing::warn!(error = %e, "batch read of buckets failed; reading them one by one");
                None
            }
        };
        let writes: Vec<_> = merges
            .iter()
            .zip(&keys)
            .map(|((key, bucket, span), k)| {
                let prefetched = found.as_ref().map(|f| f.get(k).cloned());
                async move { self.merge_from(key, bucket, span, prefetched).await }
            })
            .collect();
        futures::stream::iter(writes)
            .buffered(MERGE_CONCURRENCY)
            .collect()
            .await
    }
}
