use super::*;
use crate::memory::{MemoryInsights, MemoryTotals};
use pulse_store::FitStore;

const NOW: i64 = 1_795_435_200; // 2026-11-23T12:00:00Z

fn bucket(values: &[f64]) -> Bucket {
    let mut b = Bucket::default();
    for v in values {
        b.add(*v, None);
    }
    b
}

/// `days` days up to yesterday of `metric`, busier on some weekdays, each event worth `value`.
fn daily(metric: &str, days: i64, value: f64) -> Vec<(String, i64, Bucket)> {
    let today = NOW.div_euclid(DAY) * DAY;
    (1..=days)
        .map(|d| {
            let start = today - d * DAY;
            let n = 20 + 6 * ((start / DAY) % 7) as usize + (d % 3) as usize;
            (metric.to_owned(), start, bucket(&vec![value; n]))
        })
        .collect()
}

fn tenant() -> TenantId {
    TenantId::parse("acme").expect("ok")
}

#[test]
fn a_fit_forecasts_the_horizon_from_today_with_ordered_intervals_and_its_accuracy() {
    // Given 10 weeks of a weekly-patterned metric
    let history = daily("page_view", 70, 1.0);
    // When it is fitted for 7 days at NOW
    let f = fit(&history, "page_view", None, Aggregation::Count, 7, NOW).expect("ok");
    // Then 7 days from today, each forecast inside its 80 % band inside its 95 % band
    assert_eq!(f.points.len(), 7);
    assert_eq!(f.points[0].date, "2026-11-23");
    assert_eq!(f.from_day, NOW.div_euclid(DAY) * DAY);
    assert_eq!(f.history_days, 70);
    for p in &f.points {
        assert!(
            p.lo95 <= p.lo80 && p.lo80 <= p.forecast && p.forecast <= p.hi80 && p.hi80 <= p.hi95,
            "{p:?}"
        );
    }
    // And its accuracy was measured over 8 weekly origins
    assert_eq!(f.accuracy.cuts, 8);
    assert!(f.accuracy.mase.is_some_and(|m| m < 1.5), "{:?}", f.accuracy);
}

#[test]
fn a_metric_with_too_little_history_or_none_is_not_fitted_and_says_why() {
    let history = daily("new", 20, 1.0);
    assert!(matches!(
        fit(&history, "new", None, Aggregation::Count, 7, NOW),
        Err(FitError::TooShort { days: 20, .. })
    ));
    assert!(matches!(
        fit(&history, "absent", None, Aggregation::Count, 7, NOW),
        Err(FitError::NoData { .. })
    ));
}

#[tokio::test]
async fn a_retrain_fits_every_metric_with_enough_history_by_count_and_valued_ones_by_sum() {
    // Given a tenant with two long metrics (one valued) and a short one
    let totals = MemoryTotals::new(
        [
            daily("page_view", 60, 1.0),
            daily("order", 60, 25.0),
            daily("signup", 10, 1.0),
        ]
        .concat(),
        Resolution::Day,
    );
    let store = MemoryInsights::default();
    // When it is retrained twice
    let first = retrain(&totals, &store, &tenant(), NOW).await.expect("ok");
    let second = retrain(&totals, &store, &tenant(), NOW + 60)
        .await
        .expect("ok");
    // Then the long metrics are fitted (order by count and by sum), the short one skipped
    assert_eq!(
        first.fitted,
        ["order/count", "order/sum", "page_view/count"]
    );
    assert_eq!(first.skipped.len(), 1);
    assert!(
        first.skipped[0].starts_with("signup/count: too little history"),
        "{:?}",
        first.skipped
    );
    assert_eq!(second, first);
    // And each stored fit counts its versions, and the sum is the valued figure
    let sum = store
        .fit(&tenant(), "order", None, Aggregation::Sum, 7)
        .await
        .expect("ok")
        .expect("ok");
    assert_eq!(sum.version, 2);
    let count = store
        .fit(&tenant(), "order", None, Aggregation::Count, 7)
        .await
        .expect("ok")
        .expect("ok");
    assert!(
        sum.points[0].forecast > 10.0 * count.points[0].forecast,
        "{sum:?} {count:?}"
    );
    // And one accuracy record per fit and day
    assert_eq!(
        store.accuracy_history(&tenant()).await.expect("ok").len(),
        3
    );
}
