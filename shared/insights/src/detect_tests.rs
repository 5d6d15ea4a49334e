use super::*;
use crate::memory::{MemoryInsights, MemoryTotals};
use pulse_metrics::aggregate::Bucket;

const T0: i64 = 1_795_392_000; // 2026-11-23T00:00:00Z

fn count(n: u64) -> Bucket {
    Bucket {
        count: n,
        sum: n as f64,
        ..Bucket::default()
    }
}

/// 400 minutes of `metric` from T0: 20 to 24 events a minute, and 200 at minute `spike`.
fn traffic(metric: &str, spike: i64) -> Vec<(String, i64, Bucket)> {
    (0..400)
        .map(|m| {
            let n = if m == spike {
                200
            } else {
                20 + (m * 7 % 5) as u64
            };
            (metric.to_owned(), T0 + m * 60, count(n))
        })
        .collect()
}

fn tenant() -> TenantId {
    TenantId::parse("acme").expect("tenant")
}

#[tokio::test]
async fn a_burst_is_found_in_the_minute_it_happens_whether_scored_minute_by_minute_or_at_once() {
    // Given steady traffic with a burst at minute 300, and a derived metric that repeats it
    let mut minutes = traffic("page_view", 300);
    minutes.extend(traffic(pulse_metrics::aggregate::WEB_PAGES, 300));
    let totals = MemoryTotals::new(minutes, Resolution::Minute);
    // When one store hears of every sealed minute as it seals, and another of all at once
    let live = MemoryInsights::default();
    let mut scored = 0;
    for m in 1..=400 {
        scored += detect(
            &totals,
            &live,
            &tenant(),
            T0 + (m - 1) * 60,
            T0 + m * 60,
            T0 + m * 60 + 30,
        )
        .await
        .expect("detected")
        .scored;
    }
    let batch = MemoryInsights::default();
    detect(&totals, &batch, &tenant(), T0, T0 + 400 * 60, 0)
        .await
        .expect("detected");
    // Then every minute of the metric was scored once, the derived one never
    assert_eq!(scored, 400);
    // And the burst's minute is the one anomaly, found 30 s after it ended, explained
    let found: Vec<DetectedAnomaly> = live
        .anomalies
        .lock()
        .expect("lock")
        .iter()
        .map(|(_, a)| a.clone())
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    let a = &found[0];
    assert_eq!(
        (a.metric.as_str(), a.minute, a.value),
        ("page_view", T0 + 300 * 60, 200.0)
    );
    assert_eq!(a.detected_at - (a.minute + 60), 30);
    assert!(
        a.high < 200.0 && a.expected > 15.0 && a.expected < 30.0,
        "{a:?}"
    );
    assert_eq!(a.feature, "new_level");
    // And the stored state carried the detector between runs: the same finding either way
    let at_once: Vec<(i64, u64)> = batch
        .anomalies
        .lock()
        .expect("lock")
        .iter()
        .map(|(_, a)| (a.minute, (a.score * 1e9) as u64))
        .collect();
    assert_eq!(at_once, [(a.minute, (a.score * 1e9) as u64)]);
}

#[tokio::test]
async fn a_run_that_lost_the_race_for_a_detector_records_nothing_twice() {
    // Given a detector advanced through minute 200 by one run
    let totals = MemoryTotals::new(traffic("page_view", 300), Resolution::Minute);
    let store = MemoryInsights::default();
    detect(&totals, &store, &tenant(), T0, T0 + 200 * 60, 0)
        .await
        .expect("detected");
    // When another run, having read it before, and this one both go on to minute 400
    let stale = store.detectors(&tenant()).await.expect("read");
    detect(&totals, &store, &tenant(), T0 + 399 * 60, T0 + 400 * 60, 0)
        .await
        .expect("detected");
    let mut late = store.detectors(&tenant()).await.expect("read")[0].clone();
    late.last_minute = T0 + 399 * 60;
    let lost = store
        .put_detector(&tenant(), &late, Some(stale[0].last_minute))
        .await;
    // Then the late write is refused and the burst is recorded once
    assert!(matches!(lost, Err(StoreError::Conflict)));
    assert_eq!(store.anomalies.lock().expect("lock").len(), 1);
}

#[tokio::test]
async fn a_quiet_minute_is_a_zero_and_a_day_long_silence_is_not_replayed() {
    // Given a metric seen once at T0, then nothing
    let totals = MemoryTotals::new(
        vec![("signup".to_owned(), T0, count(1))],
        Resolution::Minute,
    );
    let store = MemoryInsights::default();
    let first = detect(&totals, &store, &tenant(), T0, T0 + 60, 0)
        .await
        .expect("detected");
    assert_eq!(first.scored, 1);
    // When the tenant's minutes are sealed three days later
    let later = detect(
        &totals,
        &store,
        &tenant(),
        T0 + 3 * 86_400 - 60,
        T0 + 3 * 86_400,
        0,
    )
    .await
    .expect("detected");
    // Then at most the last day is scored, as zeros, from whole days after the last minute
    // scored (the detector's days stay in phase with the clock)
    assert_eq!(later.scored, 1_439);
    let state = store.detectors(&tenant()).await.expect("read");
    assert_eq!(state[0].last_minute, T0 + 3 * 86_400 - 60);
    assert_eq!(resume(T0, T0 + 2 * 86_400), T0 + 60 + 2 * 86_400);
    assert_eq!(resume(T0, T0 + 60), T0 + 60);
    assert_eq!(resume(T0, T0 + 2 * 86_400 + 120), T0 + 60 + 3 * 86_400);
}

#[tokio::test]
async fn a_stored_detector_of_an_older_version_learns_again_following_the_days() {
    // Given a metric whose stored detector is of an older format
    let totals = MemoryTotals::new(traffic("page_view", 1_000), Resolution::Minute);
    let store = MemoryInsights::default();
    let old = DetectorState {
        metric: "page_view".into(),
        last_minute: T0 - 60,
        state: b"D4 an older detector".to_vec(),
    };
    store
        .put_detector(&tenant(), &old, None)
        .await
        .expect("stored");
    // When the next minutes are detected
    detect(&totals, &store, &tenant(), T0, T0 + 400 * 60, 0)
        .await
        .expect("detected");
    // Then its new state is that of a fresh detector of minutes, days followed, fed them
    let mut fresh = Detector::with_days(MINUTES_A_DAY);
    for (_, _, b) in traffic("page_view", 1_000) {
        fresh.score(b.count as f64);
    }
    let stored = store.detectors(&tenant()).await.expect("read");
    assert_eq!(stored.len(), 1);
    assert_eq!(Detector::from_bytes(&stored[0].state), Some(fresh));
}
