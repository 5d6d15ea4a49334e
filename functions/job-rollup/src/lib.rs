//! The rollup job, every minute on an EventBridge schedule: seals closed minutes exactly from
//! the raw events, then rolls 1m → 5m → 1h → 1d. Sealing also keeps each minute's visit
//! events, from which the hours whose visits may still go on are recomputed every run; an
//! hour's final sessions and funnel trail are computed once it is 30 minutes past.
//!
//! Work comes from marks (`PendingWindows`): the stream aggregator marks each minute it
//! touched, sealing a minute marks its 5-minute window (per metric, with the series touched),
//! and so on up. Each run takes the oldest marks first, a bounded number per resolution, so a
//! run after an outage catches up over a few runs. A coarser window is rolled only when it is
//! closed and no finer window before its end is still marked, so it always reads finished
//! finer buckets. Windows of one resolution are done 8 at a time. Sealing and rolling recompute and replace, so a window run twice (a mark
//! that outlived a crash, a late event's re-mark) ends with the same buckets.

use futures::StreamExt;
use lambda_runtime::Diagnostic;
use pulse_core::Config;
use pulse_core::identity::TenantId;
use pulse_metrics::aggregate::{Bucket, SeriesKey};
use pulse_metrics::breakdown::{Breakdown, Kind};
use pulse_metrics::insights::SealedThrough;
use pulse_metrics::rollup::{BucketAt, Pending, Resolution, Window, roll, seal};
use pulse_metrics::sessions::{self, IDLE_SECS, VisitMinute};
use pulse_store::events::DynamoEvents;
use pulse_store::events::shard_of;
use pulse_store::metrics::DynamoMetrics;
use pulse_store::queue::{SealedNotices, SqsQueue};
use pulse_store::{
    BreakdownReader, BreakdownWriter, BucketStore, BucketWriter, EventReader, PendingWindows,
    RollupBuckets, StoreError, TrailWriter, VisitReader, VisitWriter,
};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use thiserror::Error;

/// Seconds after a window's end before it is sealed: the stream's batching window and a
/// margin for clock skew between senders and Lambda.
pub const GRACE_SECS: i64 = 30;
/// Minutes sealed per run at most.
pub const MINUTES_PER_RUN: usize = 500;
/// Coarser windows rolled per resolution per run at most. A window is per metric, so a
/// sealed minute of five metrics makes five 5-minute windows: this is higher than
/// [`MINUTES_PER_RUN`] so that rolling keeps pace with sealing during a catch-up.
pub const WINDOWS_PER_RUN: usize = 2_500;
/// The pseudo-metric of an hour whose sessions need computing. Its marks list the raw
/// minutes and shards holding visitor events as `{minute}:{shard}`. `#` is in no metric name.
pub const SESSIONS_MARK: &str = "#sessions";
/// The pseudo-metric of a window whose breakdown is rolled from its finer windows'.
pub const BREAKDOWN_MARK: &str = "#breakdown";
/// Windows sealed or rolled at once: they touch different buckets (marks are atomic adds).
const CONCURRENCY: usize = 8;

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Minutes sealed.
    pub sealed: usize,
    /// Windows rolled, by resolution.
    pub rolled: BTreeMap<String, usize>,
    /// Windows that failed and stay marked for the next run.
    pub failed: usize,
    /// Open hours whose sessions were recomputed from their sealed minutes.
    pub open_hours: usize,
}

/// Why a run could not start.
#[derive(Debug, Error)]
pub enum JobError {
    #[error("the rollup marks cannot be read")]
    Marks(#[source] StoreError),
}

impl From<JobError> for Diagnostic {
    fn from(e: JobError) -> Self {
        Self {
            error_type: "RollupUnavailable".to_owned(),
            error_message: e.to_string(),
        }
    }
}

/// The job with its stores, and whom it tells what it sealed.
#[derive(Debug)]
pub struct Rollup<E, S, N = ()> {
    events: E,
    store: S,
    series_cap: usize,
    notices: N,
}

/// Builds the job from the function's configuration, as `main` and the local cloud do.
pub fn wire(
    config: &Config,
    aws: &aws_config::SdkConfig,
) -> Rollup<DynamoEvents, DynamoMetrics, SqsQueue> {
    Rollup::new(
        DynamoEvents::new(aws, &config.tables.events, config.raw_retention_days),
        DynamoMetrics::new(aws, &config.tables.metrics, config.retention),
        config.series_cap,
    )
    .notifying(SqsQueue::new(
        aws,
        config.detect_queue.as_deref().unwrap_or("DetectQueue"),
    ))
}

/// Every store the job uses: its marks, the buckets it reads and replaces, the registry, the
/// funnel trails, the open hours' visit minutes and the breakdowns.
pub trait RollupStore:
    PendingWindows
    + RollupBuckets
    + BucketWriter
    + BucketStore
    + TrailWriter
    + VisitReader
    + VisitWriter
    + BreakdownReader
    + BreakdownWriter
{
}

impl<T> RollupStore for T where
    T: PendingWindows
        + RollupBuckets
        + BucketWriter
        + BucketStore
        + TrailWriter
        + VisitReader
        + VisitWriter
        + BreakdownReader
        + BreakdownWriter
{
}

impl<E, S> Rollup<E, S>
where
    E: EventReader,
    S: RollupStore,
{
    pub fn new(events: E, store: S, series_cap: usize) -> Self {
        Self {
            events,
            store,
            series_cap,
            notices: (),
        }
    }

    /// The same job, telling `notices` which minutes of each tenant it sealed.
    pub fn notifying<N: SealedNotices>(self, notices: N) -> Rollup<E, S, N> {
        Rollup {
            events: self.events,
            store: self.store,
            series_cap: self.series_cap,
            notices,
        }
    }
}

impl<E, S, N> Rollup<E, S, N>
where
    E: EventReader,
    S: RollupStore,
    N: SealedNotices,
{
    /// Lambda's entry point: one run at the current time.
    pub async fn handle(&self) -> Result<Report, JobError> {
        let report = self.run(chrono::Utc::now().timestamp()).await?;
        tracing::info!(sealed = report.sealed, rolled = ?report.rolled, failed = report.failed, "rollup run");
        Ok(report)
    }

    /// One run as of `now` (epoch s).
    pub async fn run(&self, now: i64) -> Result<Report, JobError> {
        let mut report = Report::default();
        let minutes = self
            .store
            .pending(
                Resolution::Minute,
                closed_before(Resolution::Minute, now),
                MINUTES_PER_RUN,
            )
            .await
            .map_err(JobError::Marks)?;
        let full = minutes.len() == MINUTES_PER_RUN;
        let results: Vec<(Pending, Option<BTreeSet<i64>>)> = futures::stream::iter(minutes)
            .map(|minute| async move {
                match self.seal(&minute, now).await {
                    Ok(hours) => (minute, Some(hours)),
                    Err(e) => {
                        tracing::error!(tenant = %minute.tenant, start = minute.window.start, error = %e, source = ?std::error::Error::source(&e), "sealing failed; the minute stays marked");
                        (minute, None)
                    }
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        // Hours whose sessions are not final yet (a visit may still go on into them) are
        // recomputed from their sealed minutes, so visits count within a run of their minute.
        let mut open_hours: BTreeMap<TenantId, (BTreeSet<i64>, BTreeSet<i64>)> = BTreeMap::new();
        for (minute, hours) in &results {
            if let Some(hours) = hours.as_ref().filter(|h| !h.is_empty()) {
                let (all, fresh) = open_hours.entry(minute.tenant.clone()).or_default();
                all.extend(hours);
                fresh.insert(minute.window.start);
            }
        }
        let sealed: Vec<(Pending, bool)> = results
            .into_iter()
            .map(|(minute, hours)| (minute, hours.is_some()))
            .collect();
        report.sealed = sealed.iter().filter(|(_, ok)| *ok).count();
        report.failed += sealed.len() - report.sealed;
        // `closed_before` bounds window starts: the first minute not closed is the next start.
        let closed = closed_before(Resolution::Minute, now);
        let open = closed + (60 - closed.rem_euclid(60)) % 60;
        let notices = sealed_through(&sealed, full, open);
        if let Err(e) = self.notices.sealed(&notices).await {
            // The detectors catch up on the next notice of the tenant.
            tracing::warn!(tenants = notices.len(), error = %e, "sealed minutes not told to the detectors");
        }
        for (tenant, (hours, fresh)) in &open_hours {
            match self.open_sessions(tenant, hours, fresh, now).await {
                Ok(()) => report.open_hours += hours.len(),
                // The next sealed minute of the hour recomputes it; the final step replaces it.
                Err(e) => {
                    tracing::warn!(tenant = %tenant, hours = hours.len(), error = %e, "open hours' sessions not recomputed");
                }
            }
        }
        // An hour's sessions are final once the raw events up to 30 minutes after it are in
        // and sealed (so every minute of them has marked it).
        let oldest_minute = self
            .store
            .pending(Resolution::Minute, i64::MAX, 1)
            .await
            .map_err(JobError::Marks)?
            .first()
            .map_or(i64::MAX, |p| p.window.start);
        let sessions_before = closed_before(Resolution::Hour, now - IDLE_SECS)
            .min(oldest_minute.saturating_sub(3_600 + IDLE_SECS - 1));
        for resolution in [Resolution::FiveMinutes, Resolution::Hour, Resolution::Day] {
            let mut before = closed_before(resolution, now);
            // Only windows whose every finer window is done.
            for finer in Resolution::ALL.into_iter().filter(|r| *r < resolution) {
                let oldest = self
                    .store
                    .pending(finer, i64::MAX, 1)
                    .await
                    .map_err(JobError::Marks)?;
                if let Some(p) = oldest.first() {
                    before = before.min(p.window.start - resolution.secs() + 1);
                }
            }
            let windows = self
                .store
                .pending(resolution, before, WINDOWS_PER_RUN)
                .await
                .map_err(JobError::Marks)?;
            let done: Vec<bool> = futures::stream::iter(windows)
                .filter(|w| {
                    let waiting = w.metric.as_deref() == Some(SESSIONS_MARK)
                        && w.window.start >= sessions_before;
                    std::future::ready(!waiting)
                })
                .map(|window| async move {
                    let done = if window.metric.as_deref() == Some(SESSIONS_MARK) {
                        self.sessions(&window).await
                    } else {
                        self.roll(&window).await
                    };
                    match done {
                        Ok(()) => true,
                        Err(e) => {
                            tracing::error!(tenant = %window.tenant, resolution = %resolution, start = window.window.start, error = %e, "rollup failed; the window stays marked");
                            false
                        }
                    }
                })
                .buffer_unordered(CONCURRENCY)
                .collect()
                .await;
            let rolled = done.iter().filter(|ok| **ok).count();
            report.failed += done.len() - rolled;
            report.rolled.insert(resolution.to_string(), rolled);
        }
        Ok(report)
    }

    /// Seals one minute and marks its 5-minute window for every metric it holds. Returns the
    /// open hours whose sessions its visit events change.
    async fn seal(&self, minute: &Pending, now: i64) -> Result<BTreeSet<i64>, StoreError> {
        // Only the shards the mark names for an old minute (an import: sparse, sealed once).
        // Every shard for a recent minute, whose other shards' records may still be on their
        // way through the stream (they find the minute sealed and leave it to this seal), and
        // for a minute sealed before, whose new mark names only the shards written since.
        let all = BTreeSet::new();
        let recent = minute.window.end() + pulse_metrics::live::LIVE_SECS > now;
        let shards = if !minute.shards.is_empty()
            && (recent
                || self
                    .store
                    .was_sealed(&minute.tenant, minute.window.start)
                    .await?)
        {
            &all
        } else {
            &minute.shards
        };
        let events = self
            .events
            .minute_events(&minute.tenant, minute.window.start.div_euclid(60), shards)
            .await?;
        let mut sealed = seal(minute.window.start, &events);
        if !sealed.buckets.is_empty() {
            let series: Vec<_> = sealed
                .series
                .iter()
                .map(|(k, t)| (k.clone(), t.clone()))
                .collect();
            let refused = self.store.register_series(&series, self.series_cap).await?;
            sealed.fold_into_other(&refused);
        }
        let mut parents: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        if !sealed.buckets.is_empty() {
            let breakdown = Breakdown::of(&sealed).encode();
            let record = (
                Resolution::Minute,
                minute.window.start,
                Kind::Sealed,
                breakdown,
            );
            self.store.put_breakdowns(&minute.tenant, &[record]).await?;
            parents.insert(BREAKDOWN_MARK.to_owned(), BTreeSet::from(["*".to_owned()]));
        }
        // A minute of imported events only was merged into every resolution by its import:
        // sealing writes what only sealing writes (breakdown, visit minutes, sessions marks)
        // and leaves the coarser buckets, which would be recomputed to the same figures.
        let imported_only = events.iter().all(|e| e.imported);
        let mut written = Vec::with_capacity(sealed.buckets.len());
        for (key, (bucket, _)) in sealed.buckets {
            if !imported_only {
                parents
                    .entry(key.metric.clone())
                    .or_default()
                    .insert(key.series.clone());
            }
            let at = BucketAt {
                series: SeriesKey {
                    tenant: key.tenant,
                    metric: key.metric,
                    series: key.series,
                },
                resolution: Resolution::Minute,
                start: minute.window.start,
            };
            written.push((at, bucket));
        }
        self.put_all(&written).await?;
        self.mark_parents(minute, parents).await?;
        let visits: BTreeSet<String> = events
            .iter()
            .filter(|e| {
                e.visitor.is_some() && e.timestamp_ms.div_euclid(60_000) * 60 == minute.window.start
            })
            .map(|e| format!("{}:{}", minute.window.start.div_euclid(60), shard_of(&e.id)))
            .collect();
        let mut touched = BTreeSet::new();
        if !visits.is_empty() {
            // Every seal reads the whole minute (a first seal's mark names every shard written),
            // so its visit events are kept whole for the hours still open.
            let open_from = closed_before(Resolution::Hour, now - IDLE_SECS);
            touched = sessions::hours_touched(minute.window.start);
            touched.retain(|h| *h >= open_from);
            let kept = VisitMinute::of(minute.window.start, &events);
            if kept.visits.is_empty() {
                touched.clear();
            }
            if !touched.is_empty() {
                self.store
                    .put_visit_minute(&minute.tenant, minute.window.start, &kept.encode())
                    .await?;
            }
            let marks: Vec<Pending> = sessions::hours_touched(minute.window.start)
                .into_iter()
                .map(|hour| Pending {
                    tenant: minute.tenant.clone(),
                    window: Window::at(Resolution::Hour, hour),
                    metric: Some(SESSIONS_MARK.to_owned()),
                    series: visits.clone(),
                    shards: BTreeSet::new(),
                    marks: 0,
                })
                .collect();
            self.store.mark(&marks).await?;
        }
        self.store.clear(minute).await?;
        Ok(touched)
    }

    /// Recomputes the sessions of `tenant`'s open `hours` from the kept visit minutes (one
    /// read) and writes the hourly buckets that the `fresh` minutes changed, which the final
    /// step replaces. Their days are not marked: a day is rolled from final hours only.
    async fn open_sessions(
        &self,
        tenant: &TenantId,
        hours: &BTreeSet<i64>,
        fresh: &BTreeSet<i64>,
        now: i64,
    ) -> Result<(), StoreError> {
        let (Some(first), Some(last)) = (hours.first(), hours.last()) else {
            return Ok(());
        };
        let from = sessions::needed(*first).start;
        let to = sessions::needed(*last).end.min(now + 60);
        let minutes: Vec<VisitMinute> = self
            .store
            .visit_minutes(tenant, from, to)
            .await?
            .iter()
            .filter_map(|chunk| VisitMinute::decode(chunk))
            .collect();
        for hour in hours {
            // One sessionizing of the hour for both: its breakdown takes every series, its
            // buckets only those the fresh minutes changed (taken before the fold).
            let mut all = sessions::sessionize_minutes(tenant, *hour, &minutes);
            let computed = sessions::sessionize_changed(tenant, *hour, &minutes, fresh, &all);
            self.fold(&mut all).await?;
            self.put_sessions_breakdown(tenant, *hour, &all).await?;
            self.write_hour(computed, *hour).await?;
        }
        Ok(())
    }

    /// Registers an aggregation's series and folds those over the cap into `__other__`.
    async fn fold(
        &self,
        computed: &mut pulse_metrics::aggregate::Aggregation<()>,
    ) -> Result<(), StoreError> {
        if !computed.buckets.is_empty() {
            let series: Vec<_> = computed
                .series
                .iter()
                .map(|(k, t)| (k.clone(), t.clone()))
                .collect();
            let refused = self.store.register_series(&series, self.series_cap).await?;
            computed.fold_into_other(&refused);
        }
        Ok(())
    }

    /// Replaces an hour's sessions breakdown with every series of `all` (folded).
    async fn put_sessions_breakdown(
        &self,
        tenant: &TenantId,
        hour: i64,
        all: &pulse_metrics::aggregate::Aggregation<()>,
    ) -> Result<(), StoreError> {
        let record = (
            Resolution::Hour,
            hour,
            Kind::Sessions,
            Breakdown::of(all).encode(),
        );
        self.store.put_breakdowns(tenant, &[record]).await
    }

    /// Writes an hour's computed sessions as its hourly buckets (new series registered under
    /// the cap) and returns the series written by metric.
    async fn write_hour(
        &self,
        mut computed: pulse_metrics::aggregate::Aggregation<()>,
        hour: i64,
    ) -> Result<BTreeMap<String, BTreeSet<String>>, StoreError> {
        self.fold(&mut computed).await?;
        let mut parents: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for key in computed.buckets.keys() {
            parents
                .entry(key.metric.clone())
                .or_default()
                .insert(key.series.clone());
        }
        let written: Vec<(BucketAt, Bucket)> = computed
            .buckets
            .into_iter()
            .map(|(key, (bucket, _))| {
                let at = BucketAt {
                    series: SeriesKey {
                        tenant: key.tenant,
                        metric: key.metric,
                        series: key.series,
                    },
                    resolution: Resolution::Hour,
                    start: hour,
                };
                (at, bucket)
            })
            .collect();
        self.put_all(&written).await?;
        Ok(parents)
    }

    /// Computes the sessions of one hour from the raw minutes its mark lists, writes them as
    /// hourly buckets and marks their day; writes the hour's funnel trail.
    async fn sessions(&self, hour: &Pending) -> Result<(), StoreError> {
        let mut minutes: BTreeMap<i64, BTreeSet<u32>> = BTreeMap::new();
        for entry in &hour.series {
            if let Some((m, shard)) = entry.split_once(':')
                && let (Ok(m), Ok(shard)) = (m.parse::<i64>(), shard.parse::<u32>())
            {
                minutes.entry(m).or_default().insert(shard);
            }
        }
        let tenant = &hour.tenant;
        let read: Vec<Result<Vec<pulse_ingest::events::Event>, StoreError>> =
            futures::stream::iter(minutes)
                .map(|(m, shards)| async move {
                    self.events
                        .minute_events(tenant, m, &shards)
                        .await
                })
                .buffer_unordered(CONCURRENCY)
                .collect()
                .await;
        let mut events = Vec::new();
        for r in read {
            events.extend(r?);
        }
        let trail = pulse_metrics::funnels::Trail::build(hour.window.start, &events);
        if !trail.visitors.is_empty() {
            self.store
                .put_trail(&hour.tenant, hour.window.start, &trail.encode())
                .await?;
        }
        let mut computed = sessions::sessionize(hour.window.start, &events);
        self.fold(&mut computed).await?;
        self.put_sessions_breakdown(tenant, hour.window.start, &computed)
            .await?;
        let mut parents = self.write_hour(computed, hour.window.start).await?;
        parents.insert(BREAKDOWN_MARK.to_owned(), BTreeSet::from(["*".to_owned()]));
        self.mark_parents(hour, parents).await?;
        self.store.clear(hour).await
    }

    /// Writes whole buckets (each put replaces its item, so the adapter may batch them).
    async fn put_all(&self, buckets: &[(BucketAt, Bucket)]) -> Result<(), StoreError> {
        self.store.put_buckets(buckets).await
    }

    /// Rolls one coarser window of one metric from its finer buckets, and marks the next.
    async fn roll(&self, window: &Pending) -> Result<(), StoreError> {
        let (Some(metric), Some(finer)) = (&window.metric, window.window.resolution.finer()) else {
            return self.store.clear(window).await;
        };
        if metric == BREAKDOWN_MARK {
            return self.roll_breakdown(window, finer).await;
        }
        let series: Vec<String> = window.series.iter().cloned().collect();
        let finer_buckets = self
            .store
            .series_buckets(
                &window.tenant,
                metric,
                &series,
                finer,
                window.window.start,
                window.window.end(),
            )
            .await?;
        let mut by_series: BTreeMap<String, Vec<Bucket>> = BTreeMap::new();
        for (id, _, bucket) in finer_buckets {
            by_series.entry(id).or_default().push(bucket);
        }
        let rolled: Vec<(BucketAt, Bucket)> = by_series
            .into_iter()
            .filter_map(|(id, buckets)| {
                let at = BucketAt {
                    series: SeriesKey {
                        tenant: window.tenant.clone(),
                        metric: metric.clone(),
                        series: id,
                    },
                    resolution: window.window.resolution,
                    start: window.window.start,
                };
                Some((at, roll(buckets.iter())?))
            })
            .collect();
        self.put_all(&rolled).await?;
        let parents = BTreeMap::from([(metric.clone(), window.series.clone())]);
        self.mark_parents(window, parents).await?;
        self.store.clear(window).await
    }

    /// Rolls one window's breakdown records from its finer windows' records of the same kind
    /// (an import writes its own at every resolution), and marks the next.
    async fn roll_breakdown(&self, window: &Pending, finer: Resolution) -> Result<(), StoreError> {
        let mut by_kind: BTreeMap<Kind, Breakdown> = BTreeMap::new();
        for (_, kind, chunk) in self
            .store
            .breakdowns(
                &window.tenant,
                finer,
                window.window.start,
                window.window.end(),
            )
            .await?
        {
            if matches!(kind, Kind::Imported(_)) {
                continue;
            }
            if !by_kind.entry(kind).or_default().add_chunk(&chunk) {
                tracing::warn!(tenant = %window.tenant, start = window.window.start, "a breakdown chunk does not decode; left out");
            }
        }
        let records: Vec<pulse_store::BreakdownRecord> = by_kind
            .into_iter()
            .map(|(kind, b)| {
                (
                    window.window.resolution,
                    window.window.start,
                    kind,
                    b.encode(),
                )
            })
            .collect();
        self.store.put_breakdowns(&window.tenant, &records).await?;
        let parents = BTreeMap::from([(BREAKDOWN_MARK.to_owned(), window.series.clone())]);
        self.mark_parents(window, parents).await?;
        self.store.clear(window).await
    }

    async fn mark_parents(
        &self,
        child: &Pending,
        series_by_metric: BTreeMap<String, BTreeSet<String>>,
    ) -> Result<(), StoreError> {
        let Some(parent) = child.window.parent() else {
            return Ok(());
        };
        let marks: Vec<Pending> = series_by_metric
            .into_iter()
            .filter(|(_, series)| !series.is_empty())
            .map(|(metric, series)| Pending {
                tenant: child.tenant.clone(),
                window: parent.clone(),
                metric: Some(metric),
                series,
                shards: BTreeSet::new(),
                marks: 0,
            })
            .collect();
        if marks.is_empty() {
            Ok(())
        } else {
            self.store.mark(&marks).await
        }
    }
}

/// Windows of `resolution` starting before this (epoch s) are closed at `now`.
fn closed_before(resolution: Resolution, now: i64) -> i64 {
    let latest = Window::at(resolution, now - resolution.secs() - GRACE_SECS);
    if latest.is_closed(now, GRACE_SECS) {
        latest.start + 1
    } else {
        latest.start
    }
}

/// For each tenant with a minute sealed in this run, the oldest of them and the minute before
/// which all of its minutes are sealed: the oldest of its minutes that failed, else the end of the newest one
/// read when the run read as many as it may (newer ones may wait), else `closed` (the start
/// of the first minute not yet closed).
fn sealed_through(sealed: &[(Pending, bool)], full: bool, closed: i64) -> Vec<SealedThrough> {
    let newest_read = sealed.iter().map(|(m, _)| m.window.end()).max();
    // (oldest minute sealed, first minute not sealed) by tenant
    let mut by_tenant: BTreeMap<&TenantId, (Option<i64>, i64)> = BTreeMap::new();
    for (minute, ok) in sealed {
        let limit = match newest_read {
            Some(end) if full => end.min(closed),
            _ => closed,
        };
        let entry = by_tenant.entry(&minute.tenant).or_insert((None, limit));
        if *ok {
            entry.0 = Some(
                entry
                    .0
                    .map_or(minute.window.start, |f| f.min(minute.window.start)),
            );
        } else {
            entry.1 = entry.1.min(minute.window.start);
        }
    }
    by_tenant
        .into_iter()
        .filter_map(|(tenant, (from, through))| {
            Some(SealedThrough {
                tenant: tenant.clone(),
                from: from?,
                through,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
