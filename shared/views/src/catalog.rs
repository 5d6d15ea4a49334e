//! The metric catalog (`GET /api/v1/metrics/catalog`): what a tenant can chart, for Explore's
//! metric picker — every metric with data in the last 30 days that the caller's role may
//! query, busiest first, with its events counted, its unit, the aggregation it reads best in,
//! and its tags with some of their values (what `group_by` and filters can name).
//!
//! Names come from the metrics' daily totals (one read for them all), tags from each metric's
//! series registry (one read each, a few at a time), units from the event kinds' own values
//! (an API request's value is its latency in ms, an order's its revenue) or the tenant's
//! definition of the metric, which wins.

use futures::StreamExt;
use pulse_core::error::ApiError;
use pulse_core::identity::Caller;
use pulse_metrics::aggregate::{API_FAILED, ML_COST, ML_FAILED, ORDER_ITEMS, OTHER_SERIES};
use pulse_metrics::definitions::Definition;
use pulse_metrics::query::required_role;
use pulse_metrics::rollup::Resolution;
use pulse_store::read::Reader;
use pulse_store::{RollupBuckets, SeriesCatalog, Totals};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// How far back a metric counts as present.
pub const CATALOG_DAYS: i64 = 30;
/// Metrics listed at most (the busiest).
const MAX_METRICS: usize = 100;
/// Values listed per tag at most (a sample for the picker; filters take any value).
const MAX_VALUES: usize = 20;
/// Registry reads in flight at once.
const CONCURRENT_READS: usize = 8;

/// The unit of a built-in metric's value (`None`: only its count means something).
pub fn builtin_unit(metric: &str) -> Option<&'static str> {
    match metric {
        "api_request" | API_FAILED | "task_execution" | "ml_job" | ML_FAILED => Some("ms"),
        "order" | ORDER_ITEMS | "checkout" | ML_COST => Some("currency"),
        "add_to_cart" => Some("items"),
        _ => None,
    }
}

/// The aggregation a built-in metric is read in first.
fn builtin_aggregation(metric: &str) -> &'static str {
    match builtin_unit(metric) {
        Some("ms") => "p95",
        Some(_) => "sum",
        None => "count",
    }
}

/// The catalog of `caller`'s tenant at `now` (epoch s), `definitions` being its own.
pub async fn catalog<S: RollupBuckets + SeriesCatalog + Totals>(
    store: &S,
    caller: &Caller,
    definitions: &[Definition],
    now: i64,
) -> Result<Value, ApiError> {
    let from = Resolution::Day.window_start(now - CATALOG_DAYS * 86_400);
    let reader = Reader {
        store,
        tenant: &caller.tenant,
        now,
    };
    let totals = reader.totals(Resolution::Day, from, now + 1).await?;
    let mut metrics: Vec<(String, u64)> = totals
        .into_iter()
        .filter(|(name, _)| caller.require(required_role(name)).is_ok())
        .map(|(name, buckets)| (name, buckets.iter().map(|(_, b)| b.count).sum::<u64>()))
        .filter(|(_, count)| *count > 0)
        .collect();
    metrics.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    metrics.truncate(MAX_METRICS);
    let reads: Vec<_> = metrics
        .iter()
        .map(|(name, _)| async move { store.series(&caller.tenant, name).await })
        .collect();
    let catalogs: Vec<_> = futures::stream::iter(reads)
        .buffered(CONCURRENT_READS)
        .collect()
        .await;
    let by_name: BTreeMap<&str, &Definition> =
        definitions.iter().map(|d| (d.name.as_str(), d)).collect();
    let mut out = Vec::with_capacity(metrics.len());
    for ((name, count), series) in metrics.iter().zip(catalogs) {
        let mut tags: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (id, series_tags) in series? {
            if id == OTHER_SERIES {
                continue;
            }
            for (k, v) in series_tags {
                tags.entry(k).or_default().insert(v);
            }
        }
        let tags: BTreeMap<String, Value> = tags
            .into_iter()
            .map(|(k, values)| {
                let more = values.len() > MAX_VALUES;
                let listed: Vec<String> = values.into_iter().take(MAX_VALUES).collect();
                (k, json!({"values": listed, "more": more}))
            })
            .collect();
        let own = by_name.get(name.as_str());
        let unit = own
            .and_then(|d| d.unit.as_deref())
            .or_else(|| builtin_unit(name));
        let aggregation = own
            .and_then(|d| d.default_aggregation)
            .map_or(builtin_aggregation(name), |a| a.as_str());
        out.push(json!({
            "name": name,
            "events": count,
            "unit": unit,
            "aggregation": aggregation,
            "description": own.and_then(|d| d.description.as_deref()),
            "tags": tags,
        }));
    }
    Ok(json!({
        "range": {
            "start": crate::rfc3339(from),
            "end": crate::rfc3339(now),
        },
        "metrics": out,
    }))
}
