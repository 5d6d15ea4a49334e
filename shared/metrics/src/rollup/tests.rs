use super::*;
use pulse_core::identity::TenantId;
use pulse_ingest::events::Body;
use std::collections::BTreeMap;

fn metric(id: &str, value: f64, ts_ms: i64) -> Event {
    Event {
        id: id.to_owned(),
        tenant: TenantId::parse("acme").expect("tenant"),
        timestamp_ms: ts_ms,
        name: "latency".into(),
        tags: BTreeMap::from([("route".into(), "/cart".into())]),
        visitor: Some(format!("v{}", id.len() % 3)),
        correlation_id: None,
        supplied_id: false,
        imported: false,
        body: Body::Metric { value, unit: None },
    }
}

#[test]
fn windows_align_to_their_resolution_and_roll_into_their_parent() {
    // 2026-11-22T10:37:42Z
    let t = 1_795_343_862;
    let minute = Window::at(Resolution::Minute, t);
    assert_eq!(minute.start % 60, 0);
    assert!(minute.start <= t && t < minute.end());
    let five = minute.parent().expect("5m");
    assert_eq!(
        (five.resolution, five.start % 300),
        (Resolution::FiveMinutes, 0)
    );
    let hour = five.parent().expect("1h");
    let day = hour.parent().expect("1d");
    assert_eq!(day.start % 86_400, 0, "UTC days");
    assert!(day.start <= minute.start && minute.end() <= day.end());
    assert_eq!(day.parent(), None);
    assert!(!minute.is_closed(minute.end() + 10, 30));
    assert!(minute.is_closed(minute.end() + 30, 30));
    for r in Resolution::ALL {
        assert_eq!(Resolution::parse(r.as_str()), Some(r));
        assert_eq!(
            r.coarser().and_then(Resolution::finer),
            Some(r).filter(|_| r != Resolution::Day)
        );
    }
}

#[test]
fn ttl_is_window_end_plus_retention_and_imported_history_outlives_its_rollup() {
    let retention = Retention::default();
    let start = 1_795_343_820;
    let now = start + 120;
    // Given buckets written just after their window
    for (r, days) in [
        (Resolution::Minute, 7),
        (Resolution::FiveMinutes, 30),
        (Resolution::Hour, 365),
        (Resolution::Day, 1825),
    ] {
        let w = Window::at(r, start);
        assert_eq!(
            retention.expires_at(r, w.start, now.max(w.end())),
            w.end() + days * 86_400,
            "{r}"
        );
    }
    // A minute imported 90 days late stays a day after its write
    let old = start - 90 * 86_400;
    assert_eq!(
        retention.expires_at(Resolution::Minute, old, now),
        now + IMPORT_GRACE_SECS
    );
}

#[test]
fn sealing_counts_each_event_once_and_only_in_its_minute() {
    // Given a minute's events, one delivered twice, and one of the next minute
    let start = 1_795_343_820;
    let ms = start * 1000;
    let events = [
        metric("a", 3.0, ms + 1_000),
        metric("b", 1.0, ms + 2_000),
        metric("b", 1.0, ms + 2_000),
        metric("c", 2.0, ms + 59_999),
        metric("d", 50.0, ms + 60_000),
    ];
    // When the minute is sealed
    let sealed = seal(start, &events);
    // Then its one bucket (and the metric's total) holds exactly a, b and c
    assert_eq!(sealed.buckets.len(), 2);
    let (key, (bucket, _)) = sealed
        .buckets
        .iter()
        .find(|(k, _)| k.series != crate::aggregate::TOTAL_SERIES)
        .expect("bucket");
    assert_eq!(key.minute * 60, start);
    assert_eq!(
        (bucket.count, bucket.sum, bucket.min, bucket.max),
        (3, 6.0, 1.0, 3.0)
    );
    assert_eq!(sealed.series.len(), 1);
    // And sealing again gives the same buckets
    let again = seal(start, &events);
    let figures = |a: &Aggregation<()>| -> Vec<Bucket> {
        a.buckets.values().map(|(b, _)| b.clone()).collect()
    };
    assert_eq!(figures(&again), figures(&sealed));
}

/// A lognormal sample from two uniforms (Box-Muller).
fn lognormal(rng: &mut fastrand::Rng, mu: f64, sigma: f64) -> f64 {
    let (u1, u2) = (rng.f64().max(f64::MIN_POSITIVE), rng.f64());
    let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
    (mu + sigma * z).exp()
}

fn exact_quantile(sorted: &[f64], q: f64) -> f64 {
    // The same rank DDSketch targets: floor(q * (n - 1)).
    sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
}

#[test]
fn percentiles_from_thirty_days_of_merged_rollups_are_within_one_percent() {
    // Given 30 days of minute buckets (10 lognormal latencies a minute)
    let mut rng = fastrand::Rng::with_seed(7);
    let mut all = Vec::new();
    let mut minutes = Vec::new();
    for _ in 0..30 * 24 * 60 {
        let mut b = Bucket::default();
        for _ in 0..10 {
            let v = lognormal(&mut rng, 4.0, 0.8);
            b.add(v, None);
            all.push(v);
        }
        minutes.push(b);
    }
    // When they roll up 1m → 5m → 1h → 1d and the days merge into one range
    let five: Vec<Bucket> = minutes.chunks(5).filter_map(roll).collect();
    let hours: Vec<Bucket> = five.chunks(12).filter_map(roll).collect();
    let days: Vec<Bucket> = hours.chunks(24).filter_map(roll).collect();
    assert_eq!(days.len(), 30);
    let range = roll(&days).expect("30 days");
    // Then count, sum, min and max are exact, and p50/p95/p99 are within 1 %
    all.sort_by(f64::total_cmp);
    assert_eq!(range.count, all.len() as u64);
    assert_eq!(range.min, all[0]);
    assert_eq!(range.max, all[all.len() - 1]);
    let sum: f64 = all.iter().sum();
    assert!((range.sum - sum).abs() / sum < 1e-9);
    for q in [0.5, 0.95, 0.99] {
        let exact = exact_quantile(&all, q);
        let got = range.quantile(q).expect("quantile");
        let err = (got - exact).abs() / exact;
        assert!(
            err <= 0.01,
            "p{}: {got} vs {exact} ({:.3} %)",
            q * 100.0,
            err * 100.0
        );
    }
}

#[test]
fn an_empty_window_rolls_into_nothing() {
    assert!(roll(&[] as &[Bucket]).is_none());
}
