//! Rollups: the resolutions Pulse keeps (1m → 5m → 1h → 1d), their windows and retention, and
//! the two pure steps the rollup job is made of.
//!
//! - **Sealing** a closed minute recomputes its buckets from the raw events of that minute
//!   ([`seal`]). Raw events are keyed by event id, so a duplicated stream delivery (which can
//!   double-count a live bucket) cannot change a sealed one: sealed counts are exact.
//! - **Rolling** a coarser window merges the finer buckets inside it ([`roll`]): count, sum,
//!   min and max exactly, DDSketches and HyperLogLogs by their merge (both are mergeable
//!   without loss beyond their own error bounds).
//!
//! Both are recomputations, never increments, so running a window twice writes the same
//! buckets: the job is idempotent and can simply re-run whatever it is unsure of.

use crate::aggregate::{Aggregation, Bucket, SeriesKey};
pub use pulse_core::time::{IMPORT_GRACE_SECS, Resolution, Retention, Window};
use pulse_ingest::events::Event;

/// A window waiting for the rollup job: a minute of a tenant to seal, or a coarser window of
/// one metric to roll from the series its finer windows touched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub tenant: pulse_core::identity::TenantId,
    pub window: Window,
    /// The metric, for 5m and coarser windows.
    pub metric: Option<String>,
    /// The series ids touched (5m and coarser).
    pub series: std::collections::BTreeSet<String>,
    /// The Events shards written in this minute (1m marks): sealing reads only these, so a
    /// sparse minute (imported history, a quiet tenant) costs a Query or two, not sixteen.
    /// Empty: read every shard.
    pub shards: std::collections::BTreeSet<u32>,
    /// How many times the window was marked when it was read: clearing it succeeds only if
    /// no one marked it since, so a late event's mark is never lost.
    pub marks: i64,
}

impl Pending {
    /// A minute of `tenant` to seal, written in `shards`.
    pub fn minute(
        tenant: pulse_core::identity::TenantId,
        minute: i64,
        shards: impl IntoIterator<Item = u32>,
    ) -> Self {
        Self {
            tenant,
            window: Window::at(Resolution::Minute, minute * 60),
            metric: None,
            series: Default::default(),
            shards: shards.into_iter().collect(),
            marks: 0,
        }
    }
}

/// One bucket's place: a series, a resolution and the window start (epoch s).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BucketAt {
    pub series: SeriesKey,
    pub resolution: Resolution,
    pub start: i64,
}

/// Recomputes the 1-minute buckets of the minute starting at `start` (epoch s) from its raw
/// events, with the tag sets of their series (for the registry and its cap). Events outside
/// the minute are ignored, and an event id seen twice counts once.
pub fn seal<'a>(start: i64, events: impl IntoIterator<Item = &'a Event>) -> Aggregation<()> {
    let minute = start.div_euclid(60);
    let mut seen = std::collections::HashSet::new();
    let mut aggregation = Aggregation::new();
    for event in events {
        if event.timestamp_ms.div_euclid(60_000) != minute || !seen.insert(event.id.as_str()) {
            continue;
        }
        aggregation.add(event, ());
    }
    aggregation
}

/// Merges the finer buckets of one series inside a window into that window's bucket; `None`
/// when there are none (an empty window writes nothing).
pub fn roll<'a>(finer: impl IntoIterator<Item = &'a Bucket>) -> Option<Bucket> {
    let mut out: Option<Bucket> = None;
    for b in finer {
        out.get_or_insert_with(Bucket::default).merge(b);
    }
    out
}

#[cfg(test)]
mod tests;
