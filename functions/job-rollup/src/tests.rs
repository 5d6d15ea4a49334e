//! The job against in-memory stores that keep DynamoDB's semantics where the job relies on
//! them: marks cleared only if unchanged, buckets replaced whole, range reads by start.

use super::*;
use pulse_core::identity::TenantId;
use pulse_ingest::events::{Body, Event};
use pulse_metrics::aggregate::{Bucket, BucketKey};
use std::sync::Mutex;

type MarkKey = (Resolution, i64, String, Option<String>);
/// Encoded chunks (trails, visit minutes) by (tenant, start).
type Chunks = BTreeMap<(String, i64), Vec<Vec<u8>>>;

/// Breakdown records' chunks by (tenant, resolution, start, kind).
type BreakdownChunks = BTreeMap<(String, Resolution, i64, Kind), Vec<Vec<u8>>>;

#[derive(Default)]
struct Memory {
    events: Mutex<Vec<Event>>,
    marks: Mutex<BTreeMap<MarkKey, Pending>>,
    buckets: Mutex<BTreeMap<BucketAt, Bucket>>,
    trails: Mutex<Chunks>,
    visits: Mutex<Chunks>,
    breakdowns: Mutex<BreakdownChunks>,
}

impl BreakdownWriter for Memory {
    async fn put_breakdowns(
        &self,
        tenant: &TenantId,
        records: &[pulse_store::BreakdownRecord],
    ) -> Result<(), StoreError> {
        let mut all = self.breakdowns.lock().expect("lock");
        for (resolution, start, kind, chunks) in records {
            all.insert(
                (tenant.to_string(), *resolution, *start, kind.clone()),
                chunks.clone(),
            );
        }
        Ok(())
    }
}

impl BreakdownReader for Memory {
    async fn breakdowns(
        &self,
        tenant: &TenantId,
        resolution: Resolution,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, Kind, Vec<u8>)>, StoreError> {
        Ok(self
            .breakdowns
            .lock()
            .expect("lock")
            .iter()
            .filter(|((t, r, s, _), _)| {
                t == tenant.as_str() && *r == resolution && (from..to).contains(s)
            })
            .flat_map(|((_, _, s, k), chunks)| chunks.iter().map(|c| (*s, k.clone(), c.clone())))
            .collect())
    }
}

impl EventReader for Memory {
    async fn minute_events(
        &self,
        tenant: &TenantId,
        minute: i64,
        shards: &BTreeSet<u32>,
    ) -> Result<Vec<Event>, StoreError> {
        // Only the named shards, as the Events table would answer.
        Ok(self
            .events
            .lock()
            .expect("lock")
            .iter()
            .filter(|e| &e.tenant == tenant && e.timestamp_ms.div_euclid(60_000) == minute)
            .filter(|e| shards.is_empty() || shards.contains(&pulse_store::events::shard_of(&e.id)))
            .cloned()
            .collect())
    }
}

fn mark_key(p: &Pending) -> MarkKey {
    (
        p.window.resolution,
        p.window.start,
        p.tenant.to_string(),
        p.metric.clone(),
    )
}

impl PendingWindows for Memory {
    async fn mark(&self, windows: &[Pending]) -> Result<(), StoreError> {
        let mut marks = self.marks.lock().expect("lock");
        for w in windows {
            let entry = marks.entry(mark_key(w)).or_insert_with(|| Pending {
                marks: 0,
                series: BTreeSet::new(),
                ..w.clone()
            });
            entry.marks += 1;
            entry.series.extend(w.series.iter().cloned());
            entry.shards.extend(w.shards.iter().copied());
        }
        Ok(())
    }
    async fn pending(
        &self,
        resolution: Resolution,
        before: i64,
        limit: usize,
    ) -> Result<Vec<Pending>, StoreError> {
        Ok(self
            .marks
            .lock()
            .expect("lock")
            .values()
            .filter(|p| p.window.resolution == resolution && p.window.start < before)
            .take(limit)
            .cloned()
            .collect())
    }
    async fn clear(&self, window: &Pending) -> Result<(), StoreError> {
        let mut marks = self.marks.lock().expect("lock");
        if marks.get(&mark_key(window)).map(|p| p.marks) == Some(window.marks) {
            marks.remove(&mark_key(window));
        }
        Ok(())
    }
}

impl RollupBuckets for Memory {
    async fn was_sealed(&self, tenant: &TenantId, start: i64) -> Result<bool, StoreError> {
        Ok(self.buckets.lock().expect("lock").keys().any(|at| {
            &at.series.tenant == tenant && at.resolution == Resolution::Minute && at.start == start
        }))
    }
    async fn buckets(
        &self,
        series: &SeriesKey,
        resolution: Resolution,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, Bucket)>, StoreError> {
        Ok(self
            .buckets
            .lock()
            .expect("lock")
            .iter()
            .filter(|(at, _)| {
                &at.series == series
                    && at.resolution == resolution
                    && (from..to).contains(&at.start)
            })
            .map(|(at, b)| (at.start, b.clone()))
            .collect())
    }
}

impl BucketWriter for Memory {
    async fn put_bucket(&self, at: &BucketAt, bucket: &Bucket) -> Result<(), StoreError> {
        self.buckets
            .lock()
            .expect("lock")
            .insert(at.clone(), bucket.clone());
        Ok(())
    }
}

impl pulse_store::SeriesRegistry for Memory {
    async fn register_series(
        &self,
        _series: &[(SeriesKey, BTreeMap<String, String>)],
        _cap: usize,
    ) -> Result<Vec<SeriesKey>, StoreError> {
        Ok(Vec::new())
    }
}

impl BucketStore for Memory {
    async fn merge_bucket(
        &self,
        _key: &BucketKey,
        _bucket: &Bucket,
        _span: &pulse_core::watermark::Span,
    ) -> Result<pulse_store::Merged, StoreError> {
        Ok(pulse_store::Merged::Written)
    }
}

/// 2026-11-20T00:00:00Z, a day boundary.
const DAY: i64 = 1_795_132_800;

fn tenant() -> TenantId {
    TenantId::parse("acme").expect("tenant")
}

fn latency(id: usize, at_secs: i64, value: f64) -> Event {
    Event {
        id: format!("e{id}"),
        tenant: tenant(),
        timestamp_ms: at_secs * 1000,
        name: "latency".into(),
        tags: BTreeMap::from([("route".into(), "/cart".into())]),
        visitor: None,
        correlation_id: None,
        supplied_id: false,
        imported: false,
        body: Body::Metric { value, unit: None },
    }
}

/// A job over `events`, each minute marked as the stream aggregator would.
async fn job(events: Vec<Event>) -> Rollup<Memory, Memory> {
    let minutes: BTreeSet<i64> = events
        .iter()
        .map(|e| e.timestamp_ms.div_euclid(60_000))
        .collect();
    let raw = Memory {
        events: Mutex::new(events),
        ..Memory::default()
    };
    let store = Memory::default();
    let marks: Vec<Pending> = minutes
        .into_iter()
        .map(|m| Pending::minute(tenant(), m, []))
        .collect();
    store.mark(&marks).await.expect("marked");
    Rollup::new(raw, store, 1000)
}

/// The breakdown of a window, every kind merged, as views read it.
async fn breakdown_at(
    job: &Rollup<Memory, Memory>,
    resolution: Resolution,
    start: i64,
) -> Breakdown {
    let mut out = Breakdown::default();
    for (_, _, chunk) in job
        .store
        .breakdowns(&tenant(), resolution, start, start + 1)
        .await
        .expect("read")
    {
        assert!(out.add_chunk(&chunk));
    }
    out
}

fn bucket_at(job: &Rollup<Memory, Memory>, resolution: Resolution, start: i64) -> Option<Bucket> {
    job.store
        .buckets
        .lock()
        .expect("lock")
        .iter()
        .find(|(at, _)| at.resolution == resolution && at.start == start)
        .map(|(_, b)| b.clone())
}

#[tokio::test]
async fn a_closed_day_is_sealed_and_rolled_up_to_its_daily_bucket() {
    // Given one event a minute over a whole day
    let events: Vec<Event> = (0..1440)
        .map(|i| latency(i as usize, DAY + i * 60 + 5, (i % 100) as f64))
        .collect();
    let job = job(events).await;
    // When the job runs the next day, as many times as it takes
    let mut sealed = 0;
    for _ in 0..4 {
        sealed += job.run(DAY + 86_400 + 3_600).await.expect("run").sealed;
    }
    // Then every minute is sealed and the day's bucket holds every event exactly
    assert_eq!(sealed, 1440);
    let day = bucket_at(&job, Resolution::Day, DAY).expect("daily bucket");
    assert_eq!(day.count, 1440);
    assert_eq!(day.min, 0.0);
    assert_eq!(day.max, 99.0);
    let hour = bucket_at(&job, Resolution::Hour, DAY + 3_600).expect("hourly bucket");
    assert_eq!(hour.count, 60);
    assert!(
        job.store.marks.lock().expect("lock").is_empty(),
        "nothing left marked"
    );
}

#[tokio::test]
async fn sealed_counts_are_exact_whatever_the_stream_delivered() {
    // Given three events, one of them stored twice (a redelivered stream record merged it
    // into the live bucket twice; the raw item is keyed by id)
    let mut events = vec![
        latency(1, DAY + 10, 1.0),
        latency(2, DAY + 20, 2.0),
        latency(3, DAY + 30, 3.0),
    ];
    events.push(events[1].clone());
    let job = job(events).await;
    // When the minute is sealed
    job.run(DAY + 600).await.expect("run");
    // Then it counts each event once
    let minute = bucket_at(&job, Resolution::Minute, DAY).expect("sealed");
    assert_eq!((minute.count, minute.sum), (3, 6.0));
}

#[tokio::test]
async fn re_running_a_window_changes_nothing() {
    let events: Vec<Event> = (0..30)
        .map(|i| latency(i, DAY + i as i64 * 20, i as f64))
        .collect();
    let job = job(events).await;
    job.run(DAY + 7_200).await.expect("run");
    let before: Vec<(BucketAt, u64, f64)> = job
        .store
        .buckets
        .lock()
        .expect("lock")
        .iter()
        .map(|(at, b)| (at.clone(), b.count, b.sum))
        .collect();
    // When every minute is marked again (a late duplicate, a crashed run) and the job re-runs
    let again: Vec<Pending> = (0..10)
        .map(|m| Pending::minute(tenant(), DAY / 60 + m, []))
        .collect();
    job.store.mark(&again).await.expect("marked");
    job.run(DAY + 7_300).await.expect("run");
    // Then the buckets are the same
    let after: Vec<(BucketAt, u64, f64)> = job
        .store
        .buckets
        .lock()
        .expect("lock")
        .iter()
        .map(|(at, b)| (at.clone(), b.count, b.sum))
        .collect();
    assert_eq!(before, after);
}

#[tokio::test]
async fn a_two_hour_outage_is_caught_up_oldest_first() {
    // Given two hours of events that nobody sealed
    let events: Vec<Event> = (0..120)
        .map(|i| latency(i, DAY + i as i64 * 60, 1.0))
        .collect();
    let job = job(events).await;
    // When the job runs again after the outage
    let report = job.run(DAY + 7_200 + 60).await.expect("run");
    // Then every minute is sealed, and the 5-minute and hourly windows are rolled, each
    // window's buckets and its breakdown
    assert_eq!(report.sealed, 120);
    assert_eq!(report.rolled["5m"], 2 * 24);
    assert_eq!(report.rolled["1h"], 2 * 2);
    assert_eq!(
        bucket_at(&job, Resolution::Hour, DAY + 3_600)
            .expect("2nd hour")
            .count,
        60
    );
    let hour = breakdown_at(&job, Resolution::Hour, DAY + 3_600).await;
    let counts: Vec<u64> = hour.of_metric("latency").map(|(_, _, b)| b.count).collect();
    assert_eq!(counts, vec![60]);
    // And the day stays marked until it is over
    assert_eq!(report.rolled["1d"], 0);
}

#[tokio::test]
async fn a_minute_of_imported_events_only_is_sealed_into_its_breakdown_without_rolling_its_buckets_again()
 {
    // Given a minute holding only events an import stored raw (and merged itself)
    let events: Vec<Event> = (0..3)
        .map(|i| Event {
            imported: true,
            ..latency(i, DAY + 10 + i as i64, 2.0)
        })
        .collect();
    let job = job(events).await;
    // When the job seals it and rolls what it marked
    let report = job.run(DAY + 3_600 + 60).await.expect("run");
    // Then its breakdown is written and rolled up, and no metric's window is rolled again
    assert_eq!(report.sealed, 1);
    assert_eq!(report.rolled["5m"], 1);
    assert_eq!(report.rolled["1h"], 1);
    let hour = breakdown_at(&job, Resolution::Hour, DAY).await;
    let counts: Vec<u64> = hour.of_metric("latency").map(|(_, _, b)| b.count).collect();
    assert_eq!(counts, vec![3]);
    assert!(bucket_at(&job, Resolution::FiveMinutes, DAY).is_none());
}

#[tokio::test]
async fn a_coarser_window_waits_for_its_open_minutes() {
    // Given events in a 5-minute window that is still open
    let events = vec![latency(1, DAY + 10, 1.0), latency(2, DAY + 250, 2.0)];
    let job = job(events).await;
    // When the job runs at minute 4:40 of the window
    let report = job.run(DAY + 280).await.expect("run");
    // Then the closed minute is sealed but the 5-minute window is not rolled
    assert_eq!(report.sealed, 1);
    assert_eq!(report.rolled["5m"], 0);
    assert!(bucket_at(&job, Resolution::FiveMinutes, DAY).is_none());
}

fn visit(id: &str, visitor: &str, at_secs: i64) -> Event {
    Event {
        id: id.into(),
        tenant: tenant(),
        timestamp_ms: at_secs * 1000,
        name: "page_view".into(),
        tags: BTreeMap::from([("source".into(), "Direct".into())]),
        visitor: Some(visitor.into()),
        correlation_id: None,
        supplied_id: false,
        imported: false,
        body: Body::PageView {
            path: "/".into(),
            referrer: None,
            title: None,
        },
    }
}

fn total_at(
    job: &Rollup<Memory, Memory>,
    metric: &str,
    resolution: Resolution,
    start: i64,
) -> Option<Bucket> {
    job.store
        .buckets
        .lock()
        .expect("lock")
        .iter()
        .find(|(at, _)| {
            at.series.metric == metric
                && at.series.series == pulse_metrics::aggregate::TOTAL_SERIES
                && at.resolution == resolution
                && at.start == start
        })
        .map(|(_, b)| b.clone())
}

#[tokio::test]
async fn an_hours_sessions_are_computed_once_thirty_minutes_have_passed() {
    // Given a visit of three views (0:50, 0:58, 1:10) and a one-view visit at 0:55
    let events = vec![
        visit("a1", "A", DAY + 50 * 60),
        visit("a2", "A", DAY + 58 * 60),
        visit("a3", "A", DAY + 70 * 60),
        visit("b1", "B", DAY + 55 * 60),
    ];
    let job = job(events).await;
    // When the job runs 20 minutes after the hour: not yet final, but counted so far
    job.run(DAY + 80 * 60).await.expect("run");
    let open = total_at(&job, sessions::SESSIONS, Resolution::Hour, DAY).expect("open hour");
    assert_eq!((open.count, open.sum), (2, 1.0));
    // When it runs after 1:30
    job.run(DAY + 92 * 60).await.expect("run");
    // Then the first hour holds two visits, one bounce, and A's first 480 s
    let visits = total_at(&job, sessions::SESSIONS, Resolution::Hour, DAY).expect("visits");
    assert_eq!((visits.count, visits.sum), (2, 1.0));
    let secs = total_at(&job, sessions::SESSION_SECONDS, Resolution::Hour, DAY).expect("secs");
    assert_eq!(secs.sum, 480.0);
    // And after the day, its daily buckets add the second hour's 720 s
    for _ in 0..3 {
        job.run(DAY + 86_400 + 3_600).await.expect("run");
    }
    let day = total_at(&job, sessions::SESSION_SECONDS, Resolution::Day, DAY).expect("day");
    assert_eq!((day.count, day.sum), (2, 1200.0));
    let day_visits = total_at(&job, sessions::SESSIONS, Resolution::Day, DAY).expect("day");
    assert_eq!(day_visits.count, 2);
    assert!(
        job.store.marks.lock().expect("lock").is_empty(),
        "nothing left marked"
    );
}

impl TrailWriter for Memory {
    async fn put_trail(
        &self,
        tenant: &TenantId,
        hour: i64,
        chunks: &[Vec<u8>],
    ) -> Result<(), StoreError> {
        self.trails
            .lock()
            .expect("lock")
            .insert((tenant.to_string(), hour), chunks.to_vec());
        Ok(())
    }
}

impl VisitWriter for Memory {
    async fn put_visit_minute(
        &self,
        tenant: &TenantId,
        minute: i64,
        chunks: &[Vec<u8>],
    ) -> Result<(), StoreError> {
        self.visits
            .lock()
            .expect("lock")
            .insert((tenant.to_string(), minute), chunks.to_vec());
        Ok(())
    }
}

impl VisitReader for Memory {
    async fn visit_minutes(
        &self,
        tenant: &TenantId,
        from: i64,
        to: i64,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        Ok(self
            .visits
            .lock()
            .expect("lock")
            .iter()
            .filter(|((t, m), _)| t == tenant.as_str() && (from..to).contains(m))
            .flat_map(|(_, chunks)| chunks.clone())
            .collect())
    }
}

#[tokio::test]
async fn an_open_hours_visits_count_from_the_run_that_seals_their_minute() {
    // Given one view of visitor A at 0:50 and one of B at 0:55
    let job = job(vec![
        visit("a1", "A", DAY + 50 * 60),
        visit("b1", "B", DAY + 55 * 60),
    ])
    .await;
    // When the job runs at 0:57, long before the hour is final
    let report = job.run(DAY + 57 * 60).await.expect("run");
    // Then the hour already counts both visits, each a bounce so far (the next hour, whose
    // visits these views may go on into, is recomputed too)
    assert_eq!(report.open_hours, 2);
    let visits = total_at(&job, sessions::SESSIONS, Resolution::Hour, DAY).expect("visits");
    assert_eq!((visits.count, visits.sum), (2, 2.0));
    // When A views another page at 0:58 and the next run seals it
    job.events
        .events
        .lock()
        .expect("lock")
        .push(visit("a2", "A", DAY + 58 * 60));
    job.store
        .mark(&[Pending::minute(tenant(), (DAY + 58 * 60) / 60, [])])
        .await
        .expect("marked");
    job.run(DAY + 60 * 60).await.expect("run");
    // Then A's visit is no bounce any more and has lasted 480 s
    let visits = total_at(&job, sessions::SESSIONS, Resolution::Hour, DAY).expect("visits");
    assert_eq!((visits.count, visits.sum), (2, 1.0));
    let secs = total_at(&job, sessions::SESSION_SECONDS, Resolution::Hour, DAY).expect("secs");
    assert_eq!(secs.sum, 480.0);
    // And the hour's breakdown splits the same visits by their series
    let hour = breakdown_at(&job, Resolution::Hour, DAY).await;
    let (count, bounces) = hour
        .of_metric(sessions::SESSIONS)
        .fold((0, 0.0), |(c, b), (_, _, bucket)| {
            (c + bucket.count, b + bucket.sum)
        });
    assert_eq!((count, bounces), (2, 1.0));
    // And the day is not marked before the hour's final step
    assert!(total_at(&job, sessions::SESSIONS, Resolution::Day, DAY).is_none());
}

#[tokio::test]
async fn a_minute_marked_again_after_sealing_is_sealed_again_from_every_shard() {
    // Given a minute of 40 events sealed from the shards its mark named
    let events: Vec<Event> = (0..40).map(|i| latency(i, DAY + i as i64, 1.0)).collect();
    let shards: BTreeSet<u32> = events
        .iter()
        .map(|e| pulse_store::events::shard_of(&e.id))
        .collect();
    let raw = Memory {
        events: Mutex::new(events.clone()),
        ..Memory::default()
    };
    let store = Memory::default();
    store
        .mark(&[Pending::minute(tenant(), DAY / 60, shards)])
        .await
        .expect("marked");
    let job = Rollup::new(raw, store, 1000);
    job.run(DAY + 600).await.expect("run");
    assert_eq!(
        bucket_at(&job, Resolution::Minute, DAY)
            .expect("sealed")
            .count,
        40
    );
    // When a late event arrives and its minute is marked again with its own shard only
    let late = latency(99, DAY + 59, 1.0);
    let shard = pulse_store::events::shard_of(&late.id);
    job.events.events.lock().expect("lock").push(late);
    job.store
        .mark(&[Pending::minute(tenant(), DAY / 60, [shard])])
        .await
        .expect("marked");
    job.run(DAY + 3_660).await.expect("run");
    // Then the minute counts all 41, not only the late shard's events
    assert_eq!(
        bucket_at(&job, Resolution::Minute, DAY)
            .expect("sealed")
            .count,
        41
    );
}

#[test]
fn the_detectors_hear_of_each_tenant_up_to_its_first_minute_not_sealed() {
    let t = |name: &str| TenantId::parse(name).expect("tenant");
    let at = |tenant: &str, minute: i64| Pending::minute(t(tenant), minute, []);
    // Given a run that sealed two minutes of a, failed b's minute 2 but sealed its minute 3,
    // and failed c's only minute
    let sealed = vec![
        (at("a", 1), true),
        (at("a", 2), true),
        (at("b", 2), false),
        (at("b", 3), true),
        (at("c", 1), false),
    ];
    // When the notices are made with minute 10 the first not closed
    let notices = sealed_through(&sealed, false, 600);
    // Then a is sealed through minute 10, b through its failed minute, c not at all
    let told: Vec<(String, i64, i64)> = notices
        .iter()
        .map(|n| (n.tenant.to_string(), n.from, n.through))
        .collect();
    assert_eq!(
        told,
        [("a".to_owned(), 60, 600), ("b".to_owned(), 180, 120)]
    );
    // And a run that read as many minutes as it may vouches only up to the newest it read
    let notices = sealed_through(&sealed, true, 600);
    assert_eq!(notices[0].through, 240);
}

/// The notices a run sends the detectors.
#[derive(Default)]
struct Told(Mutex<Vec<SealedThrough>>);

impl SealedNotices for Told {
    async fn sealed(&self, notices: &[SealedThrough]) -> Result<(), StoreError> {
        self.0.lock().expect("lock").extend_from_slice(notices);
        Ok(())
    }
}

#[tokio::test]
async fn a_run_tells_the_detectors_which_minutes_it_sealed_as_soon_as_they_close() {
    // Given events in two minutes of a tenant
    let events = vec![latency(1, DAY + 5, 1.0), latency(2, DAY + 65, 1.0)];
    let job = job(events).await.notifying(Told::default());
    // When the job runs 31 s after the second minute ends (its grace is 30 s)
    let report = job.run(DAY + 120 + 31).await.expect("run");
    // Then both minutes are sealed and the detectors hear of both, up to the next minute
    assert_eq!(report.sealed, 2);
    let told = job.notices.0.lock().expect("lock").clone();
    assert_eq!(
        told,
        [SealedThrough {
            tenant: tenant(),
            from: DAY,
            through: DAY + 120
        }]
    );
}
