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
use pulse_ingest::events::Event;
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
    let window = needed(hour);
    let mut seen = HashSet::new();
    let mut by_visitor: HashMap<&str, Vec<&Event>> = HashMap::new();
    for e in events {
        let Some(visitor) = e.visitor.as_deref() else {
            continue;
        };
        if !opens_visits(e) {
            continue;
        }
        if !window.contains(&e.timestamp_ms.div_euclid(1000)) || !seen.insert(e.id.as_str()) {
            continue;
        }
        by_visitor.entry(visitor).or_default().push(e);
    }
    let mut out = Aggregation::new();
    let minute = hour.div_euclid(60);
    let in_hour = |ms: i64| (hour..hour + HOUR).contains(&ms.div_euclid(1000));
    for (visitor, mut list) in by_visitor {
        list.sort_by(|a, b| (a.timestamp_ms, &a.id).cmp(&(b.timestamp_ms, &b.id)));
        let mut entry: Option<BTreeMap<String, String>> = None;
        for (i, e) in list.iter().enumerate() {
            let gap = i
                .checked_sub(1)
                .map(|p| (e.timestamp_ms - list[p].timestamp_ms).div_euclid(1000));
            let starts = gap.is_none_or(|g| g > IDLE_SECS);
            if starts {
                entry = Some(dimensions(e));
            }
            if !in_hour(e.timestamp_ms) {
                continue;
            }
            let tags = entry.clone().unwrap_or_default();
            let sample = if starts {
                let bounced = list
                    .get(i + 1)
                    .is_none_or(|n| (n.timestamp_ms - e.timestamp_ms).div_euclid(1000) > IDLE_SECS);
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
            out.add_sample(&e.tenant, minute, sample, &());
        }
    }
    out
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
