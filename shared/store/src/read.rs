//! Reading buckets for queries, views and live snapshots: a series (or a metric's total, or every total of a
//! tenant) at a resolution, with the still-open windows at the end filled from finer buckets.
//!
//! A 1h bucket exists once its hour is over and rolled, a 1d bucket once its day is, so a
//! range that ends now would miss its last window. Each read therefore takes the windows of
//! the recent tail (after the last bucket found, and no earlier than [`tail`] before now)
//! from the next finer resolution, recursively down to the live 1-minute buckets, and rolls
//! them up in memory: at most three reads per series instead of one. Several series of a
//! metric (a grouped or filtered query) are read together, one read per resolution for all.

use crate::{BreakdownReader, RollupBuckets, SeriesCatalog, StoreError, Totals};
use pulse_core::identity::TenantId;
use pulse_metrics::aggregate::{Bucket, SeriesKey, TOTAL_SERIES};
use pulse_metrics::breakdown::{Breakdown, Kind};
use pulse_metrics::definitions::Derived;
use pulse_metrics::query::{self, Answer, Filter, Query, SeriesData};
use pulse_metrics::rollup::Resolution;
use std::collections::{BTreeMap, HashMap};

/// How far back the rollup of `resolution` may lag behind now: its window, the finer
/// windows it waits for, and the job's grace.
fn tail(resolution: Resolution) -> i64 {
    match resolution {
        Resolution::Minute => 0,
        Resolution::FiveMinutes => 15 * 60,
        Resolution::Hour => 3 * 3_600,
        Resolution::Day => 2 * 86_400,
    }
}

/// Where reading finer buckets starts in `[from, …)` for series (or metrics) read together
/// at `resolution` (`series`: each one's buckets in the range): the usual lag
/// ([`tail`]), or further back when the rollup lags more, from after the newest window any of
/// them has rolled. Not from the oldest: a series quiet for weeks would make every series read
/// weeks of finer buckets. With nothing rolled in the range, a read asked for by a coarser
/// level (`nested`) fills all of it, since that level found it missing; a read the caller
/// asked for keeps the usual lag (a range a year back holds no unrolled buckets).
fn frontier<'a>(
    series: impl IntoIterator<Item = &'a Vec<(i64, Bucket)>>,
    resolution: Resolution,
    now: i64,
    from: i64,
    nested: bool,
) -> i64 {
    let usual = resolution.window_start(now - tail(resolution));
    let ends = series
        .into_iter()
        .filter_map(|b| b.last())
        .map(|(s, _)| s + resolution.secs());
    match ends.max() {
        Some(rolled) => from.max(rolled.min(usual)),
        None if nested => from,
        None => from.max(usual),
    }
}

/// Takes out of a coarser level's buckets the windows still open at `now`: an import merges
/// into the window its events fall in, open or not, and such a window holds only part of what
/// its finer windows do (today's day, without the live hours since the import). The tail fill
/// reads them from the finer levels; [`reopen`] puts back those the finer levels lack (an open
/// hour's visits, which have no minutes).
fn take_open(
    resolution: Resolution,
    now: i64,
    buckets: &mut Vec<(i64, Bucket)>,
) -> Vec<(i64, Bucket)> {
    if resolution.finer().is_none() {
        return Vec::new();
    }
    let (open, closed) = std::mem::take(buckets)
        .into_iter()
        .partition(|(s, _)| s + resolution.secs() > now);
    *buckets = closed;
    open
}

/// Puts back the open windows ([`take_open`]) the tail fill did not read from finer levels.
fn reopen(buckets: &mut Vec<(i64, Bucket)>, open: Vec<(i64, Bucket)>) {
    let filled: std::collections::HashSet<i64> = buckets.iter().map(|(s, _)| *s).collect();
    buckets.extend(open.into_iter().filter(|(s, _)| !filled.contains(s)));
    buckets.sort_by_key(|(s, _)| *s);
}

/// Buckets of `finer` rolled into windows of `resolution`, by start.
fn regroup(resolution: Resolution, finer: Vec<(i64, Bucket)>) -> Vec<(i64, Bucket)> {
    let mut out: BTreeMap<i64, Bucket> = BTreeMap::new();
    for (start, b) in finer {
        out.entry(resolution.window_start(start))
            .or_default()
            .merge(&b);
    }
    out.into_iter().collect()
}

/// Reads for one tenant at one `now`.
#[derive(Debug)]
pub struct Reader<'a, S> {
    pub store: &'a S,
    pub tenant: &'a TenantId,
    /// Epoch s.
    pub now: i64,
}

impl<S: RollupBuckets + SeriesCatalog + Totals> Reader<'_, S> {
    /// One series' buckets at `resolution` in `[from, to)`, the open tail filled.
    pub async fn buckets(
        &self,
        key: &SeriesKey,
        resolution: Resolution,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, Bucket)>, StoreError> {
        self.buckets_at(key, resolution, from, to, false).await
    }

    async fn buckets_at(
        &self,
        key: &SeriesKey,
        resolution: Resolution,
        from: i64,
        to: i64,
        nested: bool,
    ) -> Result<Vec<(i64, Bucket)>, StoreError> {
        let mut out = self.store.buckets(key, resolution, from, to).await?;
        let open = take_open(resolution, self.now, &mut out);
        let Some(finer) = resolution.finer() else {
            return Ok(out);
        };
        // From after the last window rolled, however far the rollup lags: a window not yet
        // rolled is read from the finer buckets it will be rolled from, so a total never dips
        // while the job catches up.
        // One series: from after its own last window rolled, however far back.
        let tail_from = match out.last() {
            Some((s, _)) => (s + resolution.secs()).max(from),
            None => frontier([], resolution, self.now, from, nested),
        };
        if tail_from < to && tail_from <= self.now {
            let filled = Box::pin(self.buckets_at(key, finer, tail_from, to, true)).await?;
            out.extend(regroup(resolution, filled));
        }
        reopen(&mut out, open);
        Ok(out)
    }

    /// The series of `metric` matching `filters` at `resolution` in `[from, to)`: the metric's
    /// total alone when nothing filters or groups (one read), else every matching series.
    /// `None` when the metric has no series at all for the tenant.
    pub async fn series(
        &self,
        metric: &str,
        grouped: bool,
        filters: &[Filter],
        resolution: Resolution,
        from: i64,
        to: i64,
    ) -> Result<Option<Vec<SeriesData>>, StoreError> {
        let key = |series: String| SeriesKey {
            tenant: self.tenant.clone(),
            metric: metric.to_owned(),
            series,
        };
        if !grouped && filters.is_empty() {
            let total = self
                .buckets(&key(TOTAL_SERIES.to_owned()), resolution, from, to)
                .await?;
            if !total.is_empty() {
                return Ok(Some(vec![(BTreeMap::new(), total)]));
            }
        }
        let catalog = self.store.series(self.tenant, metric).await?;
        if catalog.is_empty() {
            return Ok(None);
        }
        let matching: Vec<(String, BTreeMap<String, String>)> = catalog
            .into_iter()
            .filter(|(_, tags)| filters.iter().all(|f| f.matches(tags)))
            .collect();
        let ids: Vec<String> = matching.iter().map(|(id, _)| id.clone()).collect();
        let mut read = self.many(metric, &ids, resolution, from, to, false).await?;
        Ok(Some(
            matching
                .into_iter()
                .map(|(id, tags)| (tags, read.remove(&id).unwrap_or_default()))
                .collect(),
        ))
    }

    /// The buckets of several series of `metric` at `resolution` in `[from, to)`, each one's
    /// open tail filled as [`Reader::buckets`] does, with one read per resolution for all.
    async fn many(
        &self,
        metric: &str,
        ids: &[String],
        resolution: Resolution,
        from: i64,
        to: i64,
        nested: bool,
    ) -> Result<HashMap<String, Vec<(i64, Bucket)>>, StoreError> {
        let mut out: HashMap<String, Vec<(i64, Bucket)>> =
            ids.iter().map(|id| (id.clone(), Vec::new())).collect();
        if ids.is_empty() {
            return Ok(out);
        }
        let read = self
            .store
            .series_buckets(self.tenant, metric, ids, resolution, from, to)
            .await?;
        for (id, start, bucket) in read {
            out.entry(id).or_default().push((start, bucket));
        }
        let mut open: HashMap<String, Vec<(i64, Bucket)>> = HashMap::new();
        for (id, buckets) in out.iter_mut() {
            buckets.sort_by_key(|(s, _)| *s);
            open.insert(id.clone(), take_open(resolution, self.now, buckets));
        }
        let Some(finer) = resolution.finer() else {
            return Ok(out);
        };
        let floor = frontier(out.values(), resolution, self.now, from, nested);
        let tails: HashMap<String, i64> = out
            .iter()
            .map(|(id, buckets)| {
                let after_last = buckets.last().map_or(from, |(s, _)| s + resolution.secs());
                (id.clone(), after_last.max(floor))
            })
            .filter(|(_, t)| *t < to && *t <= self.now)
            .collect();
        if let Some(tail_from) = tails.values().min().copied() {
            let tailing: Vec<String> = tails.keys().cloned().collect();
            let filled = Box::pin(self.many(metric, &tailing, finer, tail_from, to, true)).await?;
            for (id, buckets) in filled {
                let own = tails.get(&id).copied().unwrap_or(to);
                let kept = buckets.into_iter().filter(|(s, _)| *s >= own).collect();
                out.entry(id).or_default().extend(regroup(resolution, kept));
            }
        }
        for (id, windows) in open {
            reopen(out.entry(id).or_default(), windows);
        }
        Ok(out)
    }

    /// Every metric's total at `resolution` in `[from, to)`, the open tail filled, by metric.
    pub async fn totals(
        &self,
        resolution: Resolution,
        from: i64,
        to: i64,
    ) -> Result<BTreeMap<String, Vec<(i64, Bucket)>>, StoreError> {
        self.totals_at(resolution, from, to, &[], false).await
    }

    /// [`Self::totals`] of `metrics` only (every metric when empty).
    pub async fn totals_of(
        &self,
        metrics: &[&str],
        resolution: Resolution,
        from: i64,
        to: i64,
    ) -> Result<BTreeMap<String, Vec<(i64, Bucket)>>, StoreError> {
        self.totals_at(resolution, from, to, metrics, false).await
    }

    async fn totals_at(
        &self,
        resolution: Resolution,
        from: i64,
        to: i64,
        metrics: &[&str],
        nested: bool,
    ) -> Result<BTreeMap<String, Vec<(i64, Bucket)>>, StoreError> {
        let mut out: BTreeMap<String, Vec<(i64, Bucket)>> = BTreeMap::new();
        for (metric, start, bucket) in self
            .store
            .totals(self.tenant, resolution, from, to, metrics)
            .await?
        {
            out.entry(metric).or_default().push((start, bucket));
        }
        let open: Vec<(String, Vec<(i64, Bucket)>)> = out
            .iter_mut()
            .map(|(metric, buckets)| (metric.clone(), take_open(resolution, self.now, buckets)))
            .collect();
        let Some(finer) = resolution.finer() else {
            return Ok(out);
        };
        // The tail is shared by every metric; windows a metric already has are kept.
        let tail_from = frontier(out.values(), resolution, self.now, from, nested);
        if tail_from < to && tail_from <= self.now {
            let filled = Box::pin(self.totals_at(finer, tail_from, to, metrics, true)).await?;
            for (metric, buckets) in filled {
                let have = out.entry(metric).or_default();
                let present: std::collections::HashSet<i64> =
                    have.iter().map(|(s, _)| *s).collect();
                have.extend(
                    regroup(resolution, buckets)
                        .into_iter()
                        .filter(|(s, _)| !present.contains(s)),
                );
                have.sort_by_key(|(s, _)| *s);
            }
        }
        for (metric, windows) in open {
            reopen(out.entry(metric).or_default(), windows);
        }
        Ok(out)
    }
}

/// Breakdowns by window start.
pub type Breakdowns = BTreeMap<i64, Breakdown>;

impl<S: BreakdownReader> Reader<'_, S> {
    /// The tenant's breakdowns (every series of every metric, [`Breakdown`]) at `resolution`
    /// in `[from, to)`, by window start, through the last minute sealed: the windows not
    /// rolled yet filled from finer records, kind by kind (an open hour has its sessions but
    /// not yet its sealed minutes rolled). One Query per resolution level.
    pub async fn breakdowns(
        &self,
        resolution: Resolution,
        from: i64,
        to: i64,
    ) -> Result<Breakdowns, StoreError> {
        let mut by_kind: BTreeMap<(i64, Kind), Breakdown> = BTreeMap::new();
        self.breakdown_kinds(resolution, from, to, false, &mut by_kind)
            .await?;
        let mut out = Breakdowns::new();
        for ((start, _), b) in by_kind {
            out.entry(start).or_default().merge(&b);
        }
        Ok(out)
    }

    async fn breakdown_kinds(
        &self,
        resolution: Resolution,
        from: i64,
        to: i64,
        nested: bool,
        out: &mut BTreeMap<(i64, Kind), Breakdown>,
    ) -> Result<(), StoreError> {
        let mut mine: BTreeMap<(i64, Kind), Breakdown> = BTreeMap::new();
        for (start, kind, chunk) in self
            .store
            .breakdowns(self.tenant, resolution, from, to)
            .await?
        {
            if !mine.entry((start, kind)).or_default().add_chunk(&chunk) {
                tracing::warn!(tenant = %self.tenant, start, "a breakdown chunk does not decode; left out");
            }
        }
        if let Some(finer) = resolution.finer() {
            // Sealed minutes are rolled level by level: after the last window rolled, the
            // finer levels hold the rest.
            let sealed: Vec<(i64, Bucket)> = mine
                .keys()
                .filter(|(_, k)| *k == Kind::Sealed)
                .map(|(s, _)| (*s, Bucket::default()))
                .collect();
            let tail_from = frontier([&sealed], resolution, self.now, from, nested);
            if tail_from < to && tail_from <= self.now {
                let mut finer_kinds = BTreeMap::new();
                Box::pin(self.breakdown_kinds(finer, tail_from, to, true, &mut finer_kinds))
                    .await?;
                for ((start, kind), b) in finer_kinds {
                    // A kind this level has for the window is whole already.
                    let key = (resolution.window_start(start), kind);
                    if !mine.contains_key(&key) {
                        out.entry(key).or_default().merge(&b);
                    }
                }
            }
        }
        for (key, b) in mine {
            out.entry(key).or_default().merge(&b);
        }
        Ok(())
    }
}

impl<S: RollupBuckets + SeriesCatalog + Totals> Reader<'_, S> {
    /// The answer to `q` with its comparison, reading each series once when the compared
    /// range touches the queried one. `None` when the metric has no data for the tenant.
    pub async fn answer(&self, q: &Query) -> Result<Option<Answer>, StoreError> {
        let compared = q.comparison();
        let contiguous = compared.as_ref().is_none_or(|c| c.end >= q.start);
        let from = match &compared {
            Some(c) if contiguous => c.start.min(q.start),
            _ => q.start,
        };
        let grouped = !q.group_by.is_empty();
        let Some(series) = self
            .series(&q.metric, grouped, &q.filters, q.resolution, from, q.end)
            .await?
        else {
            return Ok(None);
        };
        let mut answer = query::compute(q, &series);
        if let Some(c) = &compared {
            let earlier = if contiguous {
                query::compute(c, &series)
            } else {
                let series = self
                    .series(&q.metric, grouped, &q.filters, q.resolution, c.start, c.end)
                    .await?
                    .unwrap_or_default();
                query::compute(c, &series)
            };
            answer.comparison = Some(Box::new(earlier));
        }
        tracing::debug!(tenant = %self.tenant, metric = %q.metric, resolution = %q.resolution, series = series.len(), points = answer.points.len(), "query answered");
        Ok(Some(answer))
    }

    /// The answer of a derived metric: both of its metrics queried alike (with the derived
    /// aggregation), combined per group and point. Comparisons are not made.
    pub async fn derived_answer(&self, q: &Query, derived: &Derived) -> Result<Answer, StoreError> {
        let mut sides = Vec::with_capacity(2);
        for metric in &derived.of {
            let side = Query {
                metric: metric.clone(),
                aggregations: vec![derived.aggregation],
                limit: query::MAX_GROUPS,
                compare: None,
                ..q.clone()
            };
            let series = self
                .series(
                    metric,
                    !q.group_by.is_empty(),
                    &q.filters,
                    q.resolution,
                    q.start,
                    q.end,
                )
                .await?
                .unwrap_or_default();
            sides.push(query::compute(&side, &series));
        }
        Ok(query::combine_derived(q, derived, &sides[0], &sides[1]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RollupBuckets, SeriesCatalog, StoreError, Totals};
    use pulse_metrics::aggregate::TOTAL_SERIES;

    const NOW: i64 = 1_800_000_000 / 3_600 * 3_600 + 20 * 60;

    /// One page view in every minute of the last `HOURS` hours, rolled up as far as a job that
    /// lags by `lag` seconds at every resolution would have: windows that ended before
    /// `NOW - lag` are rolled, later ones exist only as minutes.
    struct Lagging {
        lag: i64,
        reads: std::sync::atomic::AtomicUsize,
        /// Whether every coarser level also holds its open window with one page view, as an
        /// import leaves it (a part of what the window's minutes hold).
        imported_open: bool,
        /// Whether there is one page view an hour at the hour only, the open hour included,
        /// and nothing finer: as the job keeps visits, which have no minutes.
        hours_only: bool,
    }

    const HOURS: i64 = 12;

    impl Lagging {
        fn at_lag(lag: i64) -> Self {
            Self {
                lag,
                reads: Default::default(),
                imported_open: false,
                hours_only: false,
            }
        }

        fn with_hours_only(self) -> Self {
            Self {
                hours_only: true,
                ..self
            }
        }

        fn with_imported_open(self) -> Self {
            Self {
                imported_open: true,
                ..self
            }
        }

        /// A reader of this store as of `NOW`.
        fn reader<'a>(&'a self, tenant: &'a TenantId) -> Reader<'a, Self> {
            Reader {
                store: self,
                tenant,
                now: NOW,
            }
        }

        fn at(&self, resolution: Resolution, from: i64, to: i64) -> Vec<(i64, Bucket)> {
            self.reads
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let first = Resolution::Hour.window_start(NOW) - HOURS * 3_600;
            let step = resolution.secs();
            let mut out = Vec::new();
            let mut start = resolution.window_start(first.max(from)).max(first);
            while start < to && start <= NOW {
                let rolled = resolution == Resolution::Minute || start + step <= NOW - self.lag;
                if self.hours_only {
                    if resolution == Resolution::Hour {
                        let mut b = Bucket::default();
                        b.add(1.0, None);
                        out.push((start, b));
                    }
                } else if rolled {
                    let mut b = Bucket::default();
                    for _ in 0..step / 60 {
                        b.add(1.0, Some("v"));
                    }
                    out.push((start, b));
                } else if self.imported_open && start + step > NOW {
                    let mut b = Bucket::default();
                    b.add(1.0, Some("v"));
                    out.push((start, b));
                }
                start += step;
            }
            out
        }
    }

    impl RollupBuckets for Lagging {
        async fn was_sealed(&self, _: &TenantId, _: i64) -> Result<bool, StoreError> {
            Ok(true)
        }
        async fn buckets(
            &self,
            key: &SeriesKey,
            resolution: Resolution,
            from: i64,
            to: i64,
        ) -> Result<Vec<(i64, Bucket)>, StoreError> {
            Ok(if key.metric == "page_view" {
                self.at(resolution, from, to)
            } else {
                Vec::new()
            })
        }
    }

    impl SeriesCatalog for Lagging {
        async fn series(
            &self,
            _: &TenantId,
            metric: &str,
        ) -> Result<Vec<crate::SeriesTags>, StoreError> {
            Ok(if metric == "page_view" {
                vec![(TOTAL_SERIES.to_owned(), BTreeMap::new())]
            } else {
                Vec::new()
            })
        }
    }

    impl Totals for Lagging {
        async fn totals(
            &self,
            _: &TenantId,
            resolution: Resolution,
            from: i64,
            to: i64,
            _: &[&str],
        ) -> Result<Vec<(String, i64, Bucket)>, StoreError> {
            Ok(self
                .at(resolution, from, to)
                .into_iter()
                .map(|(s, b)| ("page_view".to_owned(), s, b))
                .collect())
        }
    }

    /// Breakdowns as the job writes them at that lag: a sealed record per window rolled (one
    /// path's page views), and a sessions record for every hour, open ones included.
    impl crate::BreakdownReader for Lagging {
        async fn breakdowns(
            &self,
            _: &TenantId,
            resolution: Resolution,
            from: i64,
            to: i64,
        ) -> Result<Vec<(i64, Kind, Vec<u8>)>, StoreError> {
            let tags = BTreeMap::from([("path".to_owned(), "/".to_owned())]);
            let mut out = Vec::new();
            for (start, bucket) in self.at(resolution, from, to) {
                let mut b = Breakdown::default();
                b.add("web.pages", "p", &tags, &bucket);
                out.extend(b.encode().into_iter().map(|c| (start, Kind::Sealed, c)));
            }
            if resolution >= Resolution::Hour {
                let mut start = resolution.window_start(from);
                let first = Resolution::Hour.window_start(NOW) - HOURS * 3_600;
                while start < to && start <= NOW {
                    let closed = start + resolution.secs() <= NOW - self.lag;
                    if start >= first && (resolution == Resolution::Hour || closed) {
                        let mut visit = Bucket::default();
                        let hours = resolution.secs() / 3_600;
                        for _ in 0..hours {
                            visit.add(1.0, Some("v"));
                        }
                        let mut b = Breakdown::default();
                        b.add("sessions", "g", &BTreeMap::new(), &visit);
                        out.extend(b.encode().into_iter().map(|c| (start, Kind::Sessions, c)));
                    }
                    start += resolution.secs();
                }
            }
            Ok(out)
        }
    }

    #[tokio::test]
    async fn breakdowns_count_every_sealed_minute_and_every_hours_visits_however_far_the_rollup_lags()
     {
        let tenant = TenantId::parse("lag").expect("tenant");
        let from = Resolution::Hour.window_start(NOW) - HOURS * 3_600;
        let minutes = (NOW - from) / 60 + 1;
        for lag in [0, 20 * 60, 4 * 3_600, 7 * 3_600] {
            // Given a page view in every minute and a visit in every hour, rolled at `lag`
            let store = Lagging::at_lag(lag);
            let reader = store.reader(&tenant);
            // When the last 12 hours' breakdowns are read by hour
            let got = reader
                .breakdowns(Resolution::Hour, from, NOW + 1)
                .await
                .expect("breakdowns");
            // Then every minute's page view and every hour's visit is in exactly once, the
            // open hour's visits with its minutes not rolled yet
            let sum = |metric: &str| -> u64 {
                got.values()
                    .flat_map(|b| b.of_metric(metric).map(|(_, _, b)| b.count))
                    .sum()
            };
            assert_eq!(sum("web.pages") as i64, minutes, "lag {lag}");
            assert_eq!(sum("sessions") as i64, HOURS + 1, "lag {lag}");
            assert!(got.keys().all(|s| s % 3_600 == 0), "lag {lag}");
            // And it took one read per resolution level
            assert!(
                store.reads.load(std::sync::atomic::Ordering::Relaxed) <= 3,
                "lag {lag}"
            );
        }
    }

    fn count(buckets: &[(i64, Bucket)]) -> u64 {
        buckets.iter().map(|(_, b)| b.count).sum()
    }

    #[tokio::test]
    async fn a_total_counts_every_minute_however_far_the_rollup_lags() {
        let tenant = TenantId::parse("lag").expect("tenant");
        let from = Resolution::Hour.window_start(NOW) - HOURS * 3_600;
        // Given a page view in every minute of the last 12 hours (and 20 minutes)
        let minutes = (NOW - from) / 60 + 1;
        for (lag, imported_open) in [
            (0, false),
            (20 * 60, false),
            (4 * 3_600, false),
            (7 * 3_600, false),
            (0, true),
            (4 * 3_600, true),
        ] {
            // And a rollup job lagging by `lag` at every resolution (and open windows an import
            // merged a page view into, a part of what their minutes hold)
            let store = if imported_open {
                Lagging::at_lag(lag).with_imported_open()
            } else {
                Lagging::at_lag(lag)
            };
            let reader = store.reader(&tenant);
            // When the day is read by hour, as the summary reads totals and a view one series
            let totals = reader
                .totals(Resolution::Hour, from, NOW + 1)
                .await
                .expect("totals");
            let key = SeriesKey {
                tenant: tenant.clone(),
                metric: "page_view".into(),
                series: TOTAL_SERIES.into(),
            };
            let one = reader
                .buckets(&key, Resolution::Hour, from, NOW + 1)
                .await
                .expect("buckets");
            let many = reader
                .series("page_view", true, &[], Resolution::Hour, from, NOW + 1)
                .await
                .expect("series")
                .expect("known");
            // Then each counts every minute: what is not rolled yet is read from the minutes
            assert_eq!(
                count(&totals["page_view"]) as i64,
                minutes,
                "totals, lag {lag}, imported open {imported_open}"
            );
            assert_eq!(
                count(&one) as i64,
                minutes,
                "buckets, lag {lag} {imported_open}"
            );
            assert_eq!(
                count(&many[0].1) as i64,
                minutes,
                "series, lag {lag} {imported_open}"
            );
        }
    }

    #[tokio::test]
    async fn an_open_window_its_finer_levels_lack_is_read_as_stored() {
        // Given a visit in every hour of the last 12, the open hour's included, and no minutes
        let tenant = TenantId::parse("visits").expect("tenant");
        let store = Lagging::at_lag(0).with_hours_only();
        let reader = store.reader(&tenant);
        let first = Resolution::Hour.window_start(NOW) - HOURS * 3_600;
        // When they are read by hour and by day
        let hours = reader
            .totals(Resolution::Hour, first, NOW + 1)
            .await
            .expect("hours");
        let today = Resolution::Day.window_start(NOW);
        let days = reader
            .totals(Resolution::Day, today, NOW + 1)
            .await
            .expect("days");
        // Then the open hour's visit counts, by hour and in the day's total
        assert_eq!(count(&hours["page_view"]) as i64, HOURS + 1);
        let hours_today = (NOW - today.max(first)) / 3_600 + 1;
        assert_eq!(count(&days["page_view"]) as i64, hours_today);
    }

    #[tokio::test]
    async fn a_range_long_past_holding_nothing_is_one_read_not_one_per_resolution() {
        // Given a store whose data is all of the last hours
        let store = Lagging::at_lag(0);
        let tenant = TenantId::parse("lag").expect("tenant");
        let reader = store.reader(&tenant);
        // When a week a year back is read by day, as a view's year-on-year comparison does
        let year_ago = Resolution::Day.window_start(NOW) - 364 * 86_400;
        let got = reader
            .totals(Resolution::Day, year_ago - 7 * 86_400, year_ago)
            .await
            .expect("totals");
        // Then it is empty after one read: no finer level is asked for windows that old
        assert!(got.is_empty());
        assert_eq!(store.reads.load(std::sync::atomic::Ordering::Relaxed), 1);
    }
}
