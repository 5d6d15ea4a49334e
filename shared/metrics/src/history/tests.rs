use super::*;
use crate::rollup::{roll, seal};
use pulse_core::identity::TenantId;
use pulse_ingest::events::Body;

/// 2026-11-22T10:00:00Z.
const HOUR: i64 = 1_795_341_600;

fn view(id: &str, visitor: &str, at_secs: i64) -> Event {
    Event {
        id: id.to_owned(),
        tenant: TenantId::parse("acme").expect("tenant"),
        timestamp_ms: at_secs * 1000 + 250,
        name: "page_view".into(),
        tags: BTreeMap::from([("source".into(), "google".into())]),
        visitor: Some(visitor.to_owned()),
        correlation_id: None,
        supplied_id: false,
        imported: false,
        body: Body::PageView {
            path: "/pricing".into(),
            referrer: None,
            title: None,
        },
    }
}

fn events() -> Vec<Event> {
    vec![
        view("a", "v1", HOUR + 10),
        view("b", "v1", HOUR + 70),
        view("c", "v2", HOUR + 3_590),
        view("d", "v3", HOUR + 3_700),
        view("e", "v3", HOUR + 86_400 * 2),
    ]
}

/// What the rollup job writes for `events`: each minute sealed, each coarser window rolled
/// from the finer one.
fn as_the_job_would(events: &[Event]) -> BTreeMap<BucketAt, Bucket> {
    let minutes: BTreeSet<i64> = events
        .iter()
        .map(|e| e.timestamp_ms.div_euclid(60_000) * 60)
        .collect();
    let mut level: BTreeMap<BucketAt, Bucket> = BTreeMap::new();
    for m in minutes {
        for (key, (bucket, _)) in seal(m, events).buckets {
            let series = SeriesKey {
                tenant: key.tenant,
                metric: key.metric,
                series: key.series,
            };
            level.insert(
                BucketAt {
                    series,
                    resolution: Resolution::Minute,
                    start: m,
                },
                bucket,
            );
        }
    }
    let mut all = level.clone();
    for resolution in [Resolution::FiveMinutes, Resolution::Hour, Resolution::Day] {
        let mut windows: BTreeMap<BucketAt, Vec<Bucket>> = BTreeMap::new();
        for (at, bucket) in &level {
            let parent = BucketAt {
                series: at.series.clone(),
                resolution,
                start: Window::at(resolution, at.start).start,
            };
            windows.entry(parent).or_default().push(bucket.clone());
        }
        level = windows
            .into_iter()
            .filter_map(|(at, buckets)| Some((at, roll(buckets.iter())?)))
            .collect();
        all.extend(level.clone());
    }
    all
}

#[test]
fn an_import_rolls_up_to_exactly_the_buckets_the_job_would_seal_and_roll() {
    // Given page views over three days, kept at every resolution
    let events = events();
    let now = HOUR + 86_400 * 3;
    // When the import is aggregated
    let rolled: BTreeMap<BucketAt, Bucket> = History::of(&events)
        .rollups(&Retention::default(), now)
        .into_iter()
        .filter(|(at, _)| !sessions::is_session_metric(&at.series.metric))
        .collect();
    // Then every bucket at every resolution is the job's, figure for figure
    let expected = as_the_job_would(&events);
    assert_eq!(
        rolled.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (at, bucket) in &expected {
        let got = &rolled[at];
        assert_eq!(
            (got.count, got.sum, got.unique_visitors()),
            (bucket.count, bucket.sum, bucket.unique_visitors()),
            "{at:?}"
        );
    }
    assert!(rolled.keys().any(|at| at.resolution == Resolution::Day));
}

#[test]
fn buckets_past_their_resolutions_retention_are_not_written() {
    // Given an import 40 days old (minutes are kept 7 days, 5-minute windows 30)
    let events = events();
    let now = HOUR + 86_400 * 40;
    // When it is rolled up
    let resolutions: BTreeSet<Resolution> = History::of(&events)
        .rollups(&Retention::default(), now)
        .into_iter()
        .map(|(at, _)| at.resolution)
        .collect();
    // Then only hours and days are written
    assert_eq!(
        resolutions,
        BTreeSet::from([Resolution::Hour, Resolution::Day])
    );
}

#[test]
fn an_import_brings_its_hours_sessions_and_trails_and_counts_a_repeated_id_once() {
    // Given the events, one of them twice
    let mut events = events();
    events.push(events[0].clone());
    // When the import is aggregated
    let history = History::of(&events);
    let rolled = history.rollups(&Retention::default(), HOUR + 86_400 * 3);
    // Then its sessions are counted per hour and per day: v1's two views one session, v2's
    // last-minute view another, v3's two (an hour and two days apart) two more
    let sessions = |resolution| -> u64 {
        rolled
            .iter()
            .filter(|(at, _)| {
                at.series.metric == sessions::SESSIONS
                    && at.resolution == resolution
                    && at.series.series == crate::aggregate::TOTAL_SERIES
            })
            .map(|(_, b)| b.count)
            .sum()
    };
    assert_eq!(sessions(Resolution::Hour), 4);
    assert_eq!(sessions(Resolution::Day), 4);
    // And the repeated id counts once
    let views: u64 = rolled
        .iter()
        .filter(|(at, _)| {
            at.resolution == Resolution::Day
                && at.series.metric == "page_view"
                && at.series.series == crate::aggregate::TOTAL_SERIES
        })
        .map(|(_, b)| b.count)
        .sum();
    assert_eq!(views, 5);
    // And each hour with visitors has its trail
    let hours: Vec<i64> = history.trails().iter().map(|t| t.hour).collect();
    assert_eq!(hours, vec![HOUR, HOUR + 3_600, HOUR + 86_400 * 2]);
}
