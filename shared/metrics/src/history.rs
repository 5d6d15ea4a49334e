//! Imported history as sealed rollups: an import's events aggregated in one pass into the
//! buckets the rollup job would have written for them at every resolution still kept (1m, 5m,
//! 1h, 1d), with their hours' sessions and funnel trails.
//!
//! The job seals a minute from its raw events and rolls each coarser window from the finer
//! ones, one window per request; for 90 days of history that is thousands of minutes and tens
//! of thousands of windows before a 30-day chart has a point. An import already holds every
//! event of its windows, and rolling is merging, so each event's buckets at every resolution
//! are its minute's buckets merged upward here, and the store merges them into what is there.

use crate::aggregate::{Aggregation, Bucket, SeriesKey};
use crate::breakdown::Breakdown;
use crate::funnels::Trail;
use crate::rollup::{BucketAt, Resolution, Retention, Window};
use crate::sessions;
use pulse_ingest::events::Event;
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// An import aggregated: minute buckets, hourly sessions and hourly trails.
#[derive(Debug)]
pub struct History {
    minutes: Aggregation<()>,
    sessions: Aggregation<()>,
    trails: Vec<Trail>,
}

impl History {
    /// Aggregates `events` (an event id seen twice counts once, as in sealing).
    pub fn of(events: &[Event]) -> Self {
        let mut seen = HashSet::new();
        let unique: Vec<&Event> = events
            .iter()
            .filter(|e| seen.insert(e.id.as_str()))
            .collect();
        let mut minutes = Aggregation::new();
        for e in &unique {
            minutes.add(e, ());
        }
        let hours: BTreeSet<i64> = unique
            .iter()
            .filter(|e| e.visitor.is_some())
            .flat_map(|e| {
                let minute_start = e.timestamp_ms.div_euclid(60_000) * 60;
                sessions::hours_touched(minute_start)
            })
            .collect();
        let mut by_hour = Aggregation::new();
        let mut trails = Vec::new();
        for hour in hours {
            let computed = sessions::sessionize(hour, unique.iter().copied());
            for (key, (bucket, _)) in computed.buckets {
                by_hour
                    .buckets
                    .entry(key)
                    .or_insert_with(|| (Bucket::default(), Vec::new()))
                    .0
                    .merge(&bucket);
            }
            by_hour.series.extend(computed.series);
            let trail = Trail::build(hour, unique.iter().copied());
            if !trail.visitors.is_empty() {
                trails.push(trail);
            }
        }
        Self {
            minutes,
            sessions: by_hour,
            trails,
        }
    }

    /// Every series the import writes, with its tags (for the registry and its cap).
    pub fn series(&self) -> Vec<(SeriesKey, BTreeMap<String, String>)> {
        let mut all: BTreeMap<SeriesKey, BTreeMap<String, String>> = BTreeMap::new();
        for (k, t) in self.minutes.series.iter().chain(&self.sessions.series) {
            all.insert(k.clone(), t.clone());
        }
        all.into_iter().collect()
    }

    /// Folds the series the registry refused into their metric's `__other__`.
    pub fn fold_into_other(&mut self, refused: &[SeriesKey]) {
        self.minutes.fold_into_other(refused);
        self.sessions.fold_into_other(refused);
    }

    /// The hours' funnel trails.
    pub fn trails(&self) -> &[Trail] {
        &self.trails
    }

    /// Calls `f` with each bucket's series, tags and every (resolution, window start) its
    /// retention still keeps at `now` (epoch s): minute buckets go to their minute, 5-minute,
    /// hour and day windows; sessions (hourly) to their hour and day.
    fn each_window(
        &self,
        retention: &Retention,
        now: i64,
        mut f: impl FnMut(&SeriesKey, &BTreeMap<String, String>, Resolution, i64, &Bucket),
    ) {
        let parts = [
            (&self.minutes, &Resolution::ALL[..]),
            (&self.sessions, &[Resolution::Hour, Resolution::Day][..]),
        ];
        let none = BTreeMap::new();
        for (aggregation, resolutions) in parts {
            for (key, (bucket, _)) in &aggregation.buckets {
                let series = SeriesKey {
                    tenant: key.tenant.clone(),
                    metric: key.metric.clone(),
                    series: key.series.clone(),
                };
                let tags = aggregation.series.get(&series).unwrap_or(&none);
                for &resolution in resolutions {
                    let start = Window::at(resolution, key.minute * 60).start;
                    if retention.keeps(resolution, start, now) {
                        f(&series, tags, resolution, start, bucket);
                    }
                }
            }
        }
    }

    /// The buckets to merge, at every resolution whose retention still keeps the window at
    /// `now` (epoch s): minute buckets merged into their 5-minute, hour and day windows;
    /// sessions (hourly) into their day.
    pub fn rollups(&self, retention: &Retention, now: i64) -> Vec<(BucketAt, Bucket)> {
        let mut out: BTreeMap<BucketAt, Bucket> = BTreeMap::new();
        self.each_window(retention, now, |series, _, resolution, start, bucket| {
            let at = BucketAt {
                series: series.clone(),
                resolution,
                start,
            };
            out.entry(at).or_default().merge(bucket);
        });
        out.into_iter().collect()
    }

    /// The import's breakdowns ([`Breakdown`]) at every resolution still kept at `now`, by
    /// resolution and window start: the same buckets as [`History::rollups`], each window's
    /// series together with their tags.
    pub fn breakdowns(&self, retention: &Retention, now: i64) -> Vec<(Resolution, i64, Breakdown)> {
        let mut out: BTreeMap<(Resolution, i64), Breakdown> = BTreeMap::new();
        self.each_window(retention, now, |series, tags, resolution, start, bucket| {
            out.entry((resolution, start)).or_default().add(
                &series.metric,
                &series.series,
                tags,
                bucket,
            );
        });
        out.into_iter().map(|((r, s), b)| (r, s, b)).collect()
    }
}

#[cfg(test)]
mod tests;
