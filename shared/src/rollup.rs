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
use crate::events::Event;
use std::fmt;

/// A bucket resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resolution {
    Minute,
    FiveMinutes,
    Hour,
    Day,
}

impl Resolution {
    /// Finest first.
    pub const ALL: [Resolution; 4] = [
        Resolution::Minute,
        Resolution::FiveMinutes,
        Resolution::Hour,
        Resolution::Day,
    ];

    /// The window length in seconds.
    pub fn secs(self) -> i64 {
        match self {
            Resolution::Minute => 60,
            Resolution::FiveMinutes => 300,
            Resolution::Hour => 3_600,
            Resolution::Day => 86_400,
        }
    }

    /// The name used in keys and in the API: `1m`, `5m`, `1h`, `1d`.
    pub fn as_str(self) -> &'static str {
        match self {
            Resolution::Minute => "1m",
            Resolution::FiveMinutes => "5m",
            Resolution::Hour => "1h",
            Resolution::Day => "1d",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// The resolution this one rolls up into.
    pub fn coarser(self) -> Option<Self> {
        match self {
            Resolution::Minute => Some(Resolution::FiveMinutes),
            Resolution::FiveMinutes => Some(Resolution::Hour),
            Resolution::Hour => Some(Resolution::Day),
            Resolution::Day => None,
        }
    }

    /// The resolution this one is rolled up from.
    pub fn finer(self) -> Option<Self> {
        match self {
            Resolution::Minute => None,
            Resolution::FiveMinutes => Some(Resolution::Minute),
            Resolution::Hour => Some(Resolution::FiveMinutes),
            Resolution::Day => Some(Resolution::Hour),
        }
    }

    /// The start (epoch s) of the window holding `epoch_secs`. Days are UTC days.
    pub fn window_start(self, epoch_secs: i64) -> i64 {
        epoch_secs - epoch_secs.rem_euclid(self.secs())
    }
}

impl fmt::Display for Resolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How long each resolution is kept, in days (template parameters `MinuteRetentionDays`,
/// `FiveMinuteRetentionDays`, `HourRetentionDays`, `DayRetentionDays`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub minute_days: i64,
    pub five_minute_days: i64,
    pub hour_days: i64,
    pub day_days: i64,
}

impl Default for Retention {
    /// 1m 7 d, 5m 30 d, 1h 1 y, 1d 5 y.
    fn default() -> Self {
        Self {
            minute_days: 7,
            five_minute_days: 30,
            hour_days: 365,
            day_days: 5 * 365,
        }
    }
}

impl Retention {
    pub fn days(&self, resolution: Resolution) -> i64 {
        match resolution {
            Resolution::Minute => self.minute_days,
            Resolution::FiveMinutes => self.five_minute_days,
            Resolution::Hour => self.hour_days,
            Resolution::Day => self.day_days,
        }
    }

    /// The TTL (epoch s) of a `resolution` bucket starting at `start`, written at `now`
    /// (epoch s): its window's end plus the retention. History imported past that is kept a
    /// day from the write ([`IMPORT_GRACE_SECS`]), so the rollup that reads it finds it before
    /// DynamoDB's TTL deletes it.
    pub fn expires_at(&self, resolution: Resolution, start: i64, now: i64) -> i64 {
        let keep = self.days(resolution).saturating_mul(86_400);
        (start + resolution.secs() + keep).max(now + IMPORT_GRACE_SECS)
    }
}

/// How long a bucket of imported history outlives its write at least.
pub const IMPORT_GRACE_SECS: i64 = 86_400;

/// One window of one tenant at one resolution.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    pub resolution: Resolution,
    /// Epoch s, aligned to the resolution.
    pub start: i64,
}

impl Window {
    /// The window of `resolution` holding `epoch_secs`.
    pub fn at(resolution: Resolution, epoch_secs: i64) -> Self {
        Self {
            resolution,
            start: resolution.window_start(epoch_secs),
        }
    }

    pub fn end(&self) -> i64 {
        self.start + self.resolution.secs()
    }

    /// Whether the window is over at `now` (epoch s), allowing `grace_secs` for events in
    /// flight (the stream's batching window, clock skew).
    pub fn is_closed(&self, now: i64, grace_secs: i64) -> bool {
        self.end() + grace_secs <= now
    }

    /// The coarser window this one rolls into.
    pub fn parent(&self) -> Option<Window> {
        self.resolution.coarser().map(|r| Window::at(r, self.start))
    }
}

/// A window waiting for the rollup job: a minute of a tenant to seal, or a coarser window of
/// one metric to roll from the series its finer windows touched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub tenant: crate::identity::TenantId,
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
        tenant: crate::identity::TenantId,
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
