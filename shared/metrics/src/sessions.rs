//! Visits (sessions) by the 30-minute idle rule, as Plausible defines them: a visitor's
//! events belong to one session while no gap between them exceeds 30 minutes.
//!
//! Sessions are computed per hour by the rollup job from the raw events of that hour and
//! the 30 minutes either side ([`needed`]): whether an event starts a session depends only on
//! the 30 minutes before it, whether a session bounced only on the 30 minutes after its
//! start, and a session's duration is the sum of the gaps between its events. So an hour's
//! figures are exact once the raw events up to 30 minutes after it are in, and they are
//! additive: a day's (or a month's) visits, bounces and total duration are sums of hours.
//!
//! Two metrics come out, hourly and daily:
//! - [`SESSIONS`]: one sample per session started in the hour, valued 1 if it bounced (it
//!   holds one event) and 0 if not: count = visits, sum = bounces, avg = bounce rate, and
//!   uniques = visitors who started a visit.
//! - [`SESSION_SECONDS`]: one sample per gap inside a session, in seconds, at the later
//!   event: sum = total visit duration, so average visit duration = sum / visits.
//!
//! Both carry the session's entry dimensions ([`DIMENSIONS`] of its first event), so visits
//! group by source, device or country. For a session that began more than 30 minutes before
//! the hour, the earliest event in view stands in for its first.

use crate::aggregate::{Aggregation, Sample};
use pulse_core::identity::TenantId;
use pulse_ingest::events::Event;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::Range;

/// Idle time that ends a session, in seconds.
pub const IDLE_SECS: i64 = 30 * 60;
/// Visits started: value 1 for a bounce, else 0.
pub const SESSIONS: &str = "web.sessions";
/// Seconds between consecutive events of a visit.
pub const SESSION_SECONDS: &str = "web.session_seconds";
/// The dimensions a session keeps from its entry event.
pub const DIMENSIONS: &[&str] = &["site", "source", "device", "country", "browser", "os"];
const HOUR: i64 = 3_600;

/// Whether `metric` is computed hourly from sessions (so it has no 1m or 5m buckets).
pub fn is_session_metric(metric: &str) -> bool {
    metric == SESSIONS || metric == SESSION_SECONDS
}

/// The epoch seconds whose raw events the sessions of the hour starting at `hour` need.
pub fn needed(hour: i64) -> Range<i64> {
    hour - IDLE_SECS..hour + HOUR + IDLE_SECS
}

/// The hours (their starts, epoch s) whose sessions an event in the minute starting at
/// `minute_start` (epoch s) can change.
pub fn hours_touched(minute_start: i64) -> BTreeSet<i64> {
    let first = (minute_start - HOUR - IDLE_SECS).div_euclid(HOUR) * HOUR;
    (0..4)
        .map(|i| first + i * HOUR)
        .filter(|h| {
            let n = needed(*h);
            n.start < minute_start + 60 && minute_start < n.end
        })
        .collect()
}

/// The sessions of the hour starting at `hour` (epoch s) from the raw events of
/// [`needed`]`(hour)`: [`SESSIONS`] and [`SESSION_SECONDS`] samples in one-hour buckets
/// (keyed by the hour's first minute). Events without a visitor, and events that are not page
/// views or custom events ([`opens_visits`]), take no part; an event id seen twice counts once.
pub fn sessionize<'a>(hour: i64, events: impl IntoIterator<Item = &'a Event>) -> Aggregation<()> {
    // The window first: an import sessionizes each of its hours over all its events.
    let window = needed(hour);
    let kept: Vec<(&Event, BTreeMap<String, String>)> = events
        .into_iter()
        .filter(|e| {
            e.visitor.is_some()
                && opens_visits(e)
                && window.contains(&e.timestamp_ms.div_euclid(1000))
        })
        .map(|e| (e, dimensions(e)))
        .collect();
    let Some(tenant) = kept.first().map(|(e, _)| e.tenant.clone()) else {
        return Aggregation::new();
    };
    let points = kept.iter().map(|(e, dims)| Point {
        visitor: e.visitor.as_deref().unwrap_or_default(),
        at_ms: e.timestamp_ms,
        id: id_hash(&e.id),
        dims,
    });
    sessionize_points(&tenant, hour, points)
}

/// The sessions of the hour starting at `hour` as far as the sealed `minutes` tell: the same
/// figures as [`sessionize`] over the same events. Used for hours still open, where a visit
/// with one event so far counts as a bounce until its next event arrives (as Plausible shows
/// visits live); the rollup job replaces them with [`sessionize`]'s once the hour is final.
pub fn sessionize_minutes(
    tenant: &TenantId,
    hour: i64,
    minutes: &[VisitMinute],
) -> Aggregation<()> {
    let points = minutes.iter().flat_map(|m| {
        m.visits.iter().filter_map(move |v| {
            Some(Point {
                visitor: &v.visitor,
                at_ms: v.at_ms,
                id: v.id,
                dims: m.dims.get(v.dims as usize)?,
            })
        })
    });
    sessionize_points(tenant, hour, points)
}

/// The buckets of `all` (the hour's [`sessionize_minutes`] over `minutes`, which the caller
/// has computed already) that the visitors of the `fresh` minutes (their starts) take part
/// in: a bucket no such visitor contributes to is what the last run wrote, so a run rewrites
/// only the series its new minutes changed (and the total).
pub fn sessionize_changed(
    tenant: &TenantId,
    hour: i64,
    minutes: &[VisitMinute],
    fresh: &BTreeSet<i64>,
    all: &Aggregation<()>,
) -> Aggregation<()> {
    let visitors: HashSet<&str> = minutes
        .iter()
        .filter(|m| fresh.contains(&m.minute))
        .flat_map(|m| m.visits.iter().map(|v| v.visitor.as_str()))
        .collect();
    let theirs: Vec<VisitMinute> = minutes
        .iter()
        .map(|m| VisitMinute {
            minute: m.minute,
            dims: m.dims.clone(),
            visits: m
                .visits
                .iter()
                .filter(|v| visitors.contains(v.visitor.as_str()))
                .cloned()
                .collect(),
        })
        .collect();
    let changed = sessionize_minutes(tenant, hour, &theirs);
    let mut out = Aggregation::new();
    out.buckets = those_of(&all.buckets, &changed.buckets);
    out.series = those_of(&all.series, &changed.series);
    out
}

/// The entries of `all` whose keys `keys` has.
fn those_of<K: Eq + std::hash::Hash + Clone, V: Clone, W>(
    all: &std::collections::HashMap<K, V>,
    keys: &std::collections::HashMap<K, W>,
) -> std::collections::HashMap<K, V> {
    all.iter()
        .filter(|(k, _)| keys.contains_key(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// What sessions need of one event.
struct Point<'a> {
    visitor: &'a str,
    at_ms: i64,
    id: u64,
    dims: &'a BTreeMap<String, String>,
}

fn sessionize_points<'a>(
    tenant: &TenantId,
    hour: i64,
    points: impl Iterator<Item = Point<'a>>,
) -> Aggregation<()> {
    let window = needed(hour);
    let mut seen = HashSet::new();
    let mut by_visitor: HashMap<&str, Vec<Point<'a>>> = HashMap::new();
    for p in points {
        if !window.contains(&p.at_ms.div_euclid(1000)) || !seen.insert((p.visitor, p.id)) {
            continue;
        }
        by_visitor.entry(p.visitor).or_default().push(p);
    }
    let mut out = Aggregation::new();
    let minute = hour.div_euclid(60);
    let in_hour = |ms: i64| (hour..hour + HOUR).contains(&ms.div_euclid(1000));
    for (visitor, mut list) in by_visitor {
        list.sort_by_key(|p| (p.at_ms, p.id));
        let mut entry: Option<&BTreeMap<String, String>> = None;
        for (i, e) in list.iter().enumerate() {
            let gap = i
                .checked_sub(1)
                .map(|p| (e.at_ms - list[p].at_ms).div_euclid(1000));
            let starts = gap.is_none_or(|g| g > IDLE_SECS);
            if starts {
                entry = Some(e.dims);
            }
            if !in_hour(e.at_ms) {
                continue;
            }
            let tags = entry.cloned().unwrap_or_default();
            let sample = if starts {
                let bounced = list
                    .get(i + 1)
                    .is_none_or(|n| (n.at_ms - e.at_ms).div_euclid(1000) > IDLE_SECS);
                Sample {
                    metric: SESSIONS,
                    value: if bounced { 1.0 } else { 0.0 },
                    tags,
                    visitor: Some(visitor),
                }
            } else {
                Sample {
                    metric: SESSION_SECONDS,
                    value: gap.unwrap_or(0) as f64,
                    tags,
                    visitor: Some(visitor),
                }
            };
            out.add_sample(tenant, minute, sample, &());
        }
    }
    out
}

/// A stable 64-bit hash of an event id: a record stored today must match one computed after
/// an upgrade, so not the standard library's hasher.
fn id_hash(id: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(id.as_bytes())
}

/// One event that opens visits, as much of it as sessions need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Visit {
    pub visitor: String,
    pub at_ms: i64,
    /// A stable hash of the event's id: an event delivered twice counts once.
    pub id: u64,
    /// Its entry dimensions, an index into its minute's [`VisitMinute::dims`].
    pub dims: u32,
}

/// The events of one sealed minute that take part in visits, as the rollup job keeps them for
/// a few hours so that the open hours' sessions are recomputed each run from one read of
/// small records rather than from the raw events (postcard, in chunks that decode alone).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisitMinute {
    /// Its start (epoch s).
    pub minute: i64,
    /// The distinct entry-dimension sets of its events.
    pub dims: Vec<BTreeMap<String, String>>,
    pub visits: Vec<Visit>,
}

impl VisitMinute {
    /// The events of `events` in the minute starting at `minute` (epoch s) that open visits.
    pub fn of(minute: i64, events: &[Event]) -> VisitMinute {
        let mut out = VisitMinute {
            minute,
            ..VisitMinute::default()
        };
        for e in events {
            let Some(visitor) = e.visitor.as_deref() else {
                continue;
            };
            if !opens_visits(e) || e.timestamp_ms.div_euclid(60_000) * 60 != minute {
                continue;
            }
            let dims = dimensions(e);
            let index = match out.dims.iter().position(|d| *d == dims) {
                Some(i) => i,
                None => {
                    out.dims.push(dims);
                    out.dims.len() - 1
                }
            };
            out.visits.push(Visit {
                visitor: visitor.to_owned(),
                at_ms: e.timestamp_ms,
                id: id_hash(&e.id),
                dims: index as u32,
            });
        }
        out
    }

    /// Encoded in chunks of at most about [`crate::funnels::CHUNK_BYTES`], each a
    /// [`VisitMinute`] of its own (with the dimension sets it uses).
    pub fn encode(&self) -> Vec<Vec<u8>> {
        crate::funnels::encode_chunked(
            &self.visits,
            |v| v.visitor.len() + 24,
            |visits| VisitMinute {
                minute: self.minute,
                dims: self.dims.clone(),
                visits,
            },
        )
    }

    pub fn decode(bytes: &[u8]) -> Option<VisitMinute> {
        postcard::from_bytes(bytes).ok()
    }
}

/// Where visits are counted up to at `now`: the start of the last minute the rollup job has
/// sealed (a minute is sealed about half a minute after it ends, by the next run).
pub fn counted_through(now: i64) -> i64 {
    (now - 90).div_euclid(60) * 60
}

/// Views per visit from the visits themselves: each visit's first event ([`SESSIONS`]) and
/// each later one ([`SESSION_SECONDS`]), over the visits. Page views counted live run ahead of
/// visits counted as minutes seal, so pageviews over visits would inflate the ratio while the
/// job catches up; this one compares like with like (a visit's custom events count as views).
pub fn views_per_visit(
    visits: &crate::aggregate::Bucket,
    gaps: &crate::aggregate::Bucket,
) -> Option<f64> {
    (visits.count > 0).then(|| (visits.count + gaps.count) as f64 / visits.count as f64)
}

/// Whether `e` takes part in visits: page views and the site's own custom events, as Plausible
/// counts them. A server-side event (an order, a product view sent by the shop's backend, an
/// API request) with a visitor id neither opens a visit nor keeps one going, so views per visit
/// cannot fall under one because a backend reports what visitors buy.
pub fn opens_visits(e: &Event) -> bool {
    matches!(
        e.body,
        pulse_ingest::events::Body::PageView { .. } | pulse_ingest::events::Body::Event { .. }
    )
}

fn dimensions(e: &Event) -> BTreeMap<String, String> {
    DIMENSIONS
        .iter()
        .filter_map(|d| Some(((*d).to_owned(), e.tags.get(*d)?.clone())))
        .collect()
}

#[cfg(test)]
mod tests;
