//! Live aggregation: a stream batch of events folded, in memory, into one bucket per
//! (tenant, metric, series, minute), so a batch costs one write per bucket, not per event.
//!
//! Each event feeds one metric with one value ([`Sample`]): a `metric` its own name and value,
//! a typed kind the quantity its views chart (an API request its latency, an order its
//! revenue, a page view 1), with the kind's dimensions added to its tags. A bucket keeps
//! count, sum, min and max exactly, a DDSketch of the values (percentiles within 1 % relative
//! error) and a HyperLogLog of visitor ids (unique counts within 2 %). Both sketches merge, so
//! buckets roll up across series and resolutions without rescanning events.

use cardinality_estimator::CardinalityEstimator;
use pulse_core::identity::TenantId;
use pulse_ingest::events::{Body, Event};
use serde::{Deserialize, Serialize};
use sketches_ddsketch::{Config as SketchConfig, DDSketch};
use std::collections::{BTreeMap, HashMap};

/// The series new tag sets fold into once a metric reaches its cardinality cap.
pub const OTHER_SERIES: &str = "__other__";
/// The series every sample of a metric also feeds, whatever its tags: the metric's total.
/// It is not in the registry (a group-by never sees it); queries without filters or groups
/// read it instead of every series, and the store keeps a tenant's totals together so one
/// read answers a whole dashboard.
pub const TOTAL_SERIES: &str = "__total__";

/// DDSketch relative accuracy: 1 %.
const SKETCH_ALPHA: f64 = 0.01;
/// DDSketch bins per sign; 2,048 bins at 1 % cover about 18 orders of magnitude.
const SKETCH_BINS: u32 = 2048;

/// HyperLogLog with 2^12 registers: about 1.6 % standard error.
pub type Uniques = CardinalityEstimator<u64>;

/// The metric one event feeds.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample<'a> {
    pub metric: &'a str,
    pub value: f64,
    /// The event's tags with the kind's dimensions added.
    pub tags: BTreeMap<String, String>,
    pub visitor: Option<&'a str>,
}

/// The metric, value and series tags of `event`: its own metric.
pub fn sample(event: &Event) -> Sample<'_> {
    let mut tags = event.tags.clone();
    let mut dim = |k: &str, v: &str| {
        tags.entry(k.to_owned()).or_insert_with(|| v.to_owned());
    };
    let value = match &event.body {
        Body::Metric { value, .. } => *value,
        Body::Event { value, .. } => value.unwrap_or(1.0),
        Body::PageView { .. } => 1.0,
        Body::ProductView {
            product,
            collection,
            ..
        } => {
            dim("product", product);
            if let Some(c) = collection {
                dim("collection", c);
            }
            1.0
        }
        Body::ApiRequest {
            route,
            method,
            status,
            latency_ms,
        } => {
            dim("route", route);
            dim("method", method);
            dim("status", &status.to_string());
            *latency_ms
        }
        Body::Error { error_type, .. } => {
            if let Some(t) = error_type {
                dim("error_type", t);
            }
            1.0
        }
        Body::TaskExecution {
            task_type,
            status,
            duration_ms,
            ..
        } => {
            dim("task_type", task_type);
            dim("status", status);
            duration_ms.unwrap_or(0.0)
        }
        Body::MlJob {
            pipeline,
            provider,
            status,
            duration_ms,
            ..
        } => {
            dim("pipeline", pipeline);
            dim("provider", provider);
            dim("status", status);
            duration_ms.unwrap_or(0.0)
        }
        Body::Order {
            revenue, currency, ..
        } => {
            dim("currency", currency);
            *revenue
        }
        Body::AddToCart {
            product,
            collection,
            quantity,
            ..
        } => {
            dim("product", product);
            if let Some(c) = collection {
                dim("collection", c);
            }
            f64::from(*quantity)
        }
        Body::Checkout { cart_value, .. } => cart_value.unwrap_or(0.0),
    };
    Sample {
        metric: &event.name,
        value,
        tags,
        visitor: event.visitor.as_deref(),
    }
}

/// Page views by path alone (`site`, `path`): the pages view, without the other dimensions
/// multiplying its series.
pub const WEB_PAGES: &str = "web.pages";
/// Order line items by product (`product`, `collection`, `currency`), valued at quantity ×
/// price: purchases and revenue per product.
pub const ORDER_ITEMS: &str = "order.items";
/// API requests answered with a 5xx status, with the request's dimensions.
pub const API_FAILED: &str = "api_request.failed";
/// ML job cost by `pipeline`, `provider` and `status`.
pub const ML_COST: &str = "ml_job.cost";
/// ML jobs that did not succeed ([`ml_succeeded`]), valued at their duration, by `pipeline`,
/// `provider` and `status`: a success rate from totals alone.
pub const ML_FAILED: &str = "ml_job.failed";

/// Whether an ML job status means success.
pub fn ml_succeeded(status: &str) -> bool {
    ["success", "succeeded", "completed", "ok"]
        .iter()
        .any(|s| s.eq_ignore_ascii_case(status))
}

/// Every metric `event` feeds: its own ([`sample`]) and the derived ones its views chart
/// ([`WEB_PAGES`], [`ORDER_ITEMS`], [`API_FAILED`], [`ML_COST`], [`ML_FAILED`]). Derived metrics carry only
/// the dimensions their view groups by, so their series stay few.
pub fn samples(event: &Event) -> Vec<Sample<'_>> {
    let own = sample(event);
    let visitor = event.visitor.as_deref();
    let mut out = Vec::with_capacity(2);
    match &event.body {
        Body::PageView { path, .. } if event.name == "page_view" => {
            let mut tags = BTreeMap::from([("path".to_owned(), path.clone())]);
            if let Some(site) = event.tags.get("site") {
                tags.insert("site".to_owned(), site.clone());
            }
            out.push(Sample {
                metric: WEB_PAGES,
                value: 1.0,
                tags,
                visitor,
            });
        }
        Body::Order {
            items, currency, ..
        } => {
            for item in items {
                let mut tags = BTreeMap::from([
                    ("product".to_owned(), item.product.clone()),
                    ("currency".to_owned(), currency.clone()),
                ]);
                if let Some(c) = &item.collection {
                    tags.insert("collection".to_owned(), c.clone());
                }
                out.push(Sample {
                    metric: ORDER_ITEMS,
                    value: f64::from(item.quantity) * item.price.unwrap_or(0.0),
                    tags,
                    visitor,
                });
            }
        }
        Body::ApiRequest { status, .. } if *status >= 500 => out.push(Sample {
            metric: API_FAILED,
            value: own.value,
            tags: own.tags.clone(),
            visitor,
        }),
        Body::MlJob {
            pipeline,
            provider,
            status,
            cost,
            ..
        } => {
            let tags = BTreeMap::from([
                ("pipeline".to_owned(), pipeline.clone()),
                ("provider".to_owned(), provider.clone()),
                ("status".to_owned(), status.clone()),
            ]);
            if !ml_succeeded(status) {
                out.push(Sample {
                    metric: ML_FAILED,
                    value: own.value,
                    tags: tags.clone(),
                    visitor,
                });
            }
            if let Some(cost) = cost {
                out.push(Sample {
                    metric: ML_COST,
                    value: *cost,
                    tags,
                    visitor,
                });
            }
        }
        _ => {}
    }
    out.insert(0, own);
    out
}

/// A series id: a stable hash of the tag set, so the same tags always name the same series.
pub fn series_id(tags: &BTreeMap<String, String>) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for (k, v) in tags {
        h.update(k.as_bytes());
        h.update(&[0x1f]);
        h.update(v.as_bytes());
        h.update(&[0x1e]);
    }
    format!("{:016x}", h.digest())
}

/// One minute of one series.
#[derive(Clone, Serialize, Deserialize)]
pub struct Bucket {
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    pub sketch: DDSketch,
    pub uniques: Uniques,
    /// p50, p95 and p99 as of the last [`Bucket::freeze`] (stored buckets are frozen when
    /// written), so a query reads a stored bucket's percentiles without walking its sketch.
    /// Any change clears them.
    pub quantiles: Option<[f64; 3]>,
}

/// The quantiles [`Bucket::freeze`] keeps.
const FROZEN: [f64; 3] = [0.5, 0.95, 0.99];

impl Default for Bucket {
    fn default() -> Self {
        Self {
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            sketch: DDSketch::new(SketchConfig::new(SKETCH_ALPHA, SKETCH_BINS, 1e-9)),
            uniques: Uniques::new(),
            quantiles: None,
        }
    }
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bucket")
            .field("count", &self.count)
            .field("sum", &self.sum)
            .field("min", &self.min)
            .field("max", &self.max)
            .field("uniques", &self.uniques.estimate())
            .finish_non_exhaustive()
    }
}

impl PartialEq for Bucket {
    fn eq(&self, other: &Self) -> bool {
        self.count == other.count
            && self.sum == other.sum
            && self.min == other.min
            && self.max == other.max
            && self.uniques.estimate() == other.uniques.estimate()
    }
}

impl Bucket {
    pub fn add(&mut self, value: f64, visitor: Option<&str>) {
        self.quantiles = None;
        self.count += 1;
        self.sum += value;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        self.sketch.add(value);
        if let Some(v) = visitor {
            self.uniques
                .insert_hash(xxhash_rust::xxh3::xxh3_64(v.as_bytes()));
        }
    }

    /// Folds `other` in: exact for count, sum, min and max; sketch-merged for the rest.
    pub fn merge(&mut self, other: &Bucket) {
        self.quantiles = None;
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        // Both sketches share SKETCH_ALPHA and SKETCH_BINS, the only case merge refuses.
        let _ = self.sketch.merge(&other.sketch);
        self.uniques.merge(&other.uniques);
    }

    /// The `q` quantile (0..=1) of the values, within 1 % relative error.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if let Some(kept) = self.quantiles
            && let Some(i) = FROZEN.iter().position(|f| *f == q)
        {
            return Some(kept[i]);
        }
        self.sketch.quantile(q).ok().flatten()
    }

    /// Computes and keeps p50, p95 and p99 (before the bucket is stored).
    pub fn freeze(&mut self) {
        if self.count == 0 {
            return;
        }
        let mut kept = [0.0; 3];
        for (k, q) in kept.iter_mut().zip(FROZEN) {
            match self.sketch.quantile(q).ok().flatten() {
                Some(v) => *k = v,
                None => return,
            }
        }
        self.quantiles = Some(kept);
    }

    /// Distinct visitors, within about 2 %.
    pub fn unique_visitors(&self) -> usize {
        self.uniques.estimate()
    }

    /// Distinct visitors in both `self` and `other` (viewers of a product who also bought
    /// it): |A| + |B| − |A ∪ B| from the merged HyperLogLogs, kept within [0, min(|A|, |B|)],
    /// where the true value lies, so a rate made of it over |A| is in [0, 1] by construction.
    pub fn shared_visitors(&self, other: &Bucket) -> usize {
        let (a, b) = (self.unique_visitors(), other.unique_visitors());
        let mut union = self.clone();
        union.merge(other);
        (a + b)
            .saturating_sub(union.unique_visitors())
            .min(a.min(b))
    }
}

/// Identifies a bucket.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BucketKey {
    pub tenant: TenantId,
    pub metric: String,
    pub series: String,
    /// Epoch minute (epoch ms / 60,000).
    pub minute: i64,
}

/// A series and its tags, for the registry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesKey {
    pub tenant: TenantId,
    pub metric: String,
    pub series: String,
}

/// A batch folded into buckets, remembering which input contributed to which bucket (so a
/// failed bucket write reports exactly its records).
#[derive(Debug, Default)]
pub struct Aggregation<R> {
    pub buckets: HashMap<BucketKey, (Bucket, Vec<R>)>,
    pub series: HashMap<SeriesKey, BTreeMap<String, String>>,
}

impl<R> Aggregation<R> {
    pub fn new() -> Self {
        Self {
            buckets: HashMap::new(),
            series: HashMap::new(),
        }
    }

    /// Adds every sample of `event` ([`samples`]) to its series and to its metric's total,
    /// contributed by the input `record`.
    pub fn add(&mut self, event: &Event, record: R)
    where
        R: Clone,
    {
        let minute = event.timestamp_ms.div_euclid(60_000);
        for s in samples(event) {
            self.add_sample(&event.tenant, minute, s, &record);
        }
    }

    /// Adds one sample in `minute` (epoch minute) to its series and its metric's total.
    pub fn add_sample(&mut self, tenant: &TenantId, minute: i64, s: Sample<'_>, record: &R)
    where
        R: Clone,
    {
        let series = series_id(&s.tags);
        let key = BucketKey {
            tenant: tenant.clone(),
            metric: s.metric.to_owned(),
            series: series.clone(),
            minute,
        };
        let total = BucketKey {
            series: TOTAL_SERIES.to_owned(),
            ..key.clone()
        };
        self.series
            .entry(SeriesKey {
                tenant: tenant.clone(),
                metric: key.metric.clone(),
                series,
            })
            .or_insert(s.tags);
        for key in [key, total] {
            let (bucket, records) = self.buckets.entry(key).or_default();
            bucket.add(s.value, s.visitor);
            records.push(record.clone());
        }
    }

    /// Moves the buckets of series the registry refused into the metric's `__other__` series.
    pub fn fold_into_other(&mut self, refused: &[SeriesKey]) {
        if refused.is_empty() {
            return;
        }
        let moved: Vec<BucketKey> = self
            .buckets
            .keys()
            .filter(|k| {
                refused
                    .iter()
                    .any(|r| r.tenant == k.tenant && r.metric == k.metric && r.series == k.series)
            })
            .cloned()
            .collect();
        for key in moved {
            if let Some((bucket, records)) = self.buckets.remove(&key) {
                let other = BucketKey {
                    series: OTHER_SERIES.to_owned(),
                    ..key
                };
                let (b, r) = self.buckets.entry(other).or_default();
                b.merge(&bucket);
                r.extend(records);
            }
        }
        for r in refused {
            self.series.remove(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pulse_ingest::events::Body;

    #[test]
    fn shared_visitors_are_the_overlap_and_never_exceed_either_side() {
        // Given 1,000 viewers of a product, of whom 300 bought it, and 50 buyers who never
        // viewed it (a backend order)
        let mut viewers = Bucket::default();
        let mut buyers = Bucket::default();
        for i in 0..1_000 {
            viewers.add(1.0, Some(&format!("v{i}")));
        }
        for i in (0..300).chain(5_000..5_050) {
            buyers.add(1.0, Some(&format!("v{i}")));
        }
        // When the overlap is estimated
        let shared = viewers.shared_visitors(&buyers);
        // Then it is the 300 within the sketches' error, and never above either side
        assert!((270..=330).contains(&shared), "{shared}");
        assert!(shared <= viewers.unique_visitors().min(buyers.unique_visitors()));
        // And disjoint or empty sides share nobody beyond the error, never a negative count
        let mut strangers = Bucket::default();
        strangers.add(1.0, Some("x"));
        assert!(viewers.shared_visitors(&strangers) <= 1);
        assert_eq!(viewers.shared_visitors(&Bucket::default()), 0);
    }

    fn event(name: &str, body: Body, ts: i64, visitor: Option<&str>) -> Event {
        Event {
            id: format!("{name}-{ts}"),
            tenant: TenantId::parse("acme").expect("tenant"),
            timestamp_ms: ts,
            name: name.into(),
            tags: BTreeMap::from([("host".into(), "a".into())]),
            visitor: visitor.map(str::to_owned),
            correlation_id: None,
            supplied_id: false,
            imported: false,
            body,
        }
    }

    fn metric(v: f64, ts: i64) -> Event {
        event(
            "cpu",
            Body::Metric {
                value: v,
                unit: None,
            },
            ts,
            None,
        )
    }

    #[test]
    fn frozen_percentiles_equal_the_sketch_until_the_bucket_changes() {
        let mut b = Bucket::default();
        for v in 1..=1000 {
            b.add(f64::from(v), None);
        }
        let walked = [b.quantile(0.5), b.quantile(0.95), b.quantile(0.99)];
        b.freeze();
        assert!(b.quantiles.is_some());
        assert_eq!(
            [b.quantile(0.5), b.quantile(0.95), b.quantile(0.99)],
            walked
        );
        // A stored and decoded bucket keeps them
        let decoded: Bucket =
            postcard::from_bytes(&postcard::to_allocvec(&b).expect("encode")).expect("decode");
        assert_eq!(decoded.quantiles, b.quantiles);
        // Any change clears them, so they are never stale
        b.add(5000.0, None);
        assert!(b.quantiles.is_none());
        let mut other = Bucket::default();
        other.freeze();
        assert!(
            other.quantiles.is_none(),
            "an empty bucket has no percentiles"
        );
    }

    #[test]
    fn a_batch_folds_into_exact_minute_buckets() {
        let mut agg = Aggregation::new();
        for (i, v) in [3.0, 1.0, 2.0].into_iter().enumerate() {
            agg.add(&metric(v, 60_000 + i as i64), i);
        }
        agg.add(&metric(10.0, 120_000), 3);
        assert_eq!(
            agg.buckets.len(),
            4,
            "two minutes of the series and of its total"
        );
        for series in ["total", "own"] {
            let first = agg
                .buckets
                .iter()
                .find(|(k, _)| k.minute == 1 && (k.series == TOTAL_SERIES) == (series == "total"))
                .expect("minute 1");
            let (b, records) = first.1;
            assert_eq!(
                (b.count, b.sum, b.min, b.max),
                (3, 6.0, 1.0, 3.0),
                "{series}"
            );
            assert_eq!(records, &vec![0, 1, 2]);
        }
        assert_eq!(
            agg.series.len(),
            1,
            "one tag set; the total is not registered"
        );
    }

    #[test]
    fn typed_kinds_feed_their_quantity_with_their_dimensions_as_tags() {
        let req = event(
            "api_request",
            Body::ApiRequest {
                route: "/x".into(),
                method: "GET".into(),
                status: 503,
                latency_ms: 42.0,
            },
            0,
            None,
        );
        let s = sample(&req);
        assert_eq!((s.metric, s.value), ("api_request", 42.0));
        assert_eq!(s.tags["status"], "503");
        assert_eq!(s.tags["host"], "a", "the event's own tags stay");
        let order = event(
            "order",
            Body::Order {
                order_id: "o".into(),
                revenue: 99.5,
                currency: "EUR".into(),
                items: vec![],
            },
            0,
            None,
        );
        assert_eq!(sample(&order).value, 99.5);
    }

    #[test]
    fn buckets_merge_exactly_and_count_unique_visitors() {
        let mut a = Bucket::default();
        let mut b = Bucket::default();
        for i in 0..1000 {
            a.add(f64::from(i), Some(&format!("v{}", i % 100)));
            b.add(f64::from(i + 1000), Some(&format!("v{}", i % 150)));
        }
        a.merge(&b);
        assert_eq!((a.count, a.min, a.max), (2000, 0.0, 1999.0));
        assert_eq!(a.sum, (0..2000).map(f64::from).sum::<f64>());
        let p50 = a.quantile(0.5).expect("p50");
        assert!((p50 - 999.5).abs() / 999.5 < 0.011, "p50 {p50}");
        let uniques = a.unique_visitors() as f64;
        assert!((uniques - 150.0).abs() / 150.0 < 0.02, "uniques {uniques}");
    }

    #[test]
    fn a_bucket_survives_its_stored_form() {
        let mut b = Bucket::default();
        b.add(5.0, Some("v1"));
        b.add(7.0, Some("v2"));
        let bytes = postcard::to_allocvec(&b).expect("encodes");
        let back: Bucket = postcard::from_bytes(&bytes).expect("decodes");
        assert_eq!(back, b);
        assert_eq!(back.quantile(1.0), b.quantile(1.0));
    }

    #[test]
    fn refused_series_fold_into_other_keeping_their_counts() {
        let mut agg = Aggregation::new();
        let mut e = metric(1.0, 0);
        agg.add(&e, 0);
        e.tags.insert("host".into(), "b".into());
        e.id = "other".into();
        agg.add(&e, 1);
        let refused: Vec<SeriesKey> = agg
            .series
            .iter()
            .filter(|(_, tags)| tags["host"] == "b")
            .map(|(k, _)| k.clone())
            .collect();
        agg.fold_into_other(&refused);
        let other = agg
            .buckets
            .iter()
            .find(|(k, _)| k.series == OTHER_SERIES)
            .expect("__other__ bucket");
        assert_eq!(other.1.0.count, 1);
        assert_eq!(other.1.1, vec![1]);
        assert_eq!(
            agg.buckets
                .iter()
                .filter(|(k, _)| k.series != TOTAL_SERIES)
                .map(|(_, (b, _))| b.count)
                .sum::<u64>(),
            2,
            "nothing dropped"
        );
        let total = agg
            .buckets
            .iter()
            .find(|(k, _)| k.series == TOTAL_SERIES)
            .expect("total");
        assert_eq!(total.1.0.count, 2, "the total is untouched by the cap");
    }
}
