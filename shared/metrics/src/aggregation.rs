//! What a point can say about its bucket: the aggregations a query, a derived metric and a
//! live subscription name.

use crate::aggregate::Bucket;
use serde::Serialize;

/// What a point can say about its bucket.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Aggregation {
    Count,
    Sum,
    Avg,
    Min,
    Max,
    P50,
    P95,
    P99,
    /// Events per second over the point's interval.
    Rate,
    /// Distinct visitors (HyperLogLog).
    Uniques,
}

impl Aggregation {
    pub(crate) const ALL: [Aggregation; 10] = [
        Aggregation::Count,
        Aggregation::Sum,
        Aggregation::Avg,
        Aggregation::Min,
        Aggregation::Max,
        Aggregation::P50,
        Aggregation::P95,
        Aggregation::P99,
        Aggregation::Rate,
        Aggregation::Uniques,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Aggregation::Count => "count",
            Aggregation::Sum => "sum",
            Aggregation::Avg => "avg",
            Aggregation::Min => "min",
            Aggregation::Max => "max",
            Aggregation::P50 => "p50",
            Aggregation::P95 => "p95",
            Aggregation::P99 => "p99",
            Aggregation::Rate => "rate",
            Aggregation::Uniques => "uniques",
        }
    }

    pub(crate) fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }

    /// The aggregation of `bucket`, a window of `secs` seconds.
    pub fn of(self, bucket: &Bucket, secs: i64) -> Option<f64> {
        let n = bucket.count;
        match self {
            Aggregation::Count => Some(n as f64),
            Aggregation::Sum => Some(bucket.sum),
            Aggregation::Avg => (n > 0).then(|| bucket.sum / n as f64),
            Aggregation::Min => (n > 0).then_some(bucket.min),
            Aggregation::Max => (n > 0).then_some(bucket.max),
            Aggregation::P50 => bucket.quantile(0.5),
            Aggregation::P95 => bucket.quantile(0.95),
            Aggregation::P99 => bucket.quantile(0.99),
            Aggregation::Rate => Some(n as f64 / secs as f64),
            Aggregation::Uniques => Some(bucket.unique_visitors() as f64),
        }
    }
}
