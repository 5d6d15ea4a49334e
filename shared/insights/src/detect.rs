//! Streaming detection as minutes seal: each metric's minute totals (event counts, a minute
//! without a bucket zero) are fed in order to its own detector ([`Detector`]), whose state is
//! stored between runs ([`DetectorStates`]); a minute scoring at or above [`ALARM`] is recorded
//! ([`AnomalyLog`]) with its expected value, band and what fired, within two minutes of its
//! end (sealing runs every minute and tells the detectors at once). Failures
//! (`api_request.failed`, `ml_job.failed`) are scored as metrics of their own: an error burst
//! is an anomaly of them.
//!
//! A detector scores every minute once, oldest first, and only minutes before the tenant's
//! first unsealed one, so it never sees a minute that will still change. A metric is picked
//! up from the first minute it has events in (among those the notice says were just sealed); a tenant quiet for more than [`MAX_GAP_SECS`]
//! is resumed at most that far back (a long silence is learnt as zeros, not replayed), a whole
//! number of days after its last minute, so the detector's days stay in phase with the clock. Metrics
//! that count their source's events again by other dimensions ([`REPEATS`]) are not scored.

use pulse_core::identity::TenantId;
use pulse_metrics::insights::{DetectedAnomaly, DetectorState};
use pulse_metrics::rollup::Resolution;
use pulse_models::detect::{ALARM, Detector};
use pulse_store::{AnomalyLog, DetectorStates, StoreError, Totals};
use std::collections::BTreeMap;

/// Derived metrics whose minute counts repeat their source metric's (page views by path,
/// orders' line items, ML jobs' cost).
pub const REPEATS: &[&str] = &[
    pulse_metrics::aggregate::WEB_PAGES,
    pulse_metrics::aggregate::ORDER_ITEMS,
    pulse_metrics::aggregate::ML_COST,
];
/// The longest silence replayed as zero minutes (a day).
pub const MAX_GAP_SECS: i64 = 86_400;
const MINUTE: i64 = 60;
/// Minutes a day: sealed minutes follow the shape of their days.
const MINUTES_A_DAY: usize = 1_440;

/// Where a detector that last scored the minute `last` resumes: the next minute, or after a
/// silence reaching past `oldest`, the first minute from `oldest` on that is a whole number of
/// days after it (its day shape counts minutes: skipping whole days keeps it in phase).
fn resume(last: i64, oldest: i64) -> i64 {
    let next = last + MINUTE;
    if next >= oldest {
        return next;
    }
    let day = i64::try_from(MINUTES_A_DAY).unwrap_or(1_440) * MINUTE;
    next + (oldest - next + day - 1).div_euclid(day) * day
}

/// What one detection pass did for a tenant.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Detected {
    /// Minutes scored, over every metric.
    pub scored: usize,
    pub anomalies: Vec<DetectedAnomaly>,
    /// Metrics another run advanced first (their work here was dropped).
    pub raced: usize,
}

/// Scores `tenant`'s metrics' minutes up to `through` (exclusive, a minute start) at `now`;
/// a metric without a detector yet starts at its first minute from `since` (the oldest minute
/// just sealed).
pub async fn detect<S: Totals, D: DetectorStates + AnomalyLog>(
    totals: &S,
    store: &D,
    tenant: &TenantId,
    since: i64,
    through: i64,
    now: i64,
) -> Result<Detected, StoreError> {
    let through = through.div_euclid(MINUTE) * MINUTE;
    let since = since.div_euclid(MINUTE) * MINUTE;
    let oldest = through - MAX_GAP_SECS;
    let known: BTreeMap<String, DetectorState> = store
        .detectors(tenant)
        .await?
        .into_iter()
        .map(|d| (d.metric.clone(), d))
        .collect();
    // From the first minute a known detector has not scored, or the first just sealed.
    let from = known
        .values()
        .map(|d| d.last_minute + MINUTE)
        .min()
        .map_or(since, |f| f.min(since))
        .max(oldest);
    if from >= through {
        return Ok(Detected::default());
    }
    let mut minutes: BTreeMap<&str, BTreeMap<i64, f64>> = BTreeMap::new();
    let read = totals
        .totals(tenant, Resolution::Minute, from, through, &[])
        .await?;
    for (metric, start, bucket) in &read {
        if !REPEATS.contains(&metric.as_str()) {
            *minutes
                .entry(metric.as_str())
                .or_default()
                .entry(*start)
                .or_default() += bucket.count as f64;
        }
    }
    let mut names: Vec<&str> = known.keys().map(String::as_str).collect();
    names.extend(minutes.keys().copied());
    names.sort_unstable();
    names.dedup();
    let mut out = Detected::default();
    for metric in names {
        let stored = known.get(metric);
        let values = minutes.get(metric);
        let (mut detector, start) = match stored {
            Some(d) => (
                // A state of an older version starts learning again, following the days too.
                Detector::from_bytes(&d.state)
                    .unwrap_or_else(|| Detector::with_days(MINUTES_A_DAY)),
                resume(d.last_minute, oldest),
            ),
            None => match values.and_then(|v| v.keys().next()) {
                Some(first) => (Detector::with_days(MINUTES_A_DAY), *first),
                None => continue,
            },
        };
        if start >= through {
            continue;
        }
        let mut found = Vec::new();
        for minute in (start..through).step_by(MINUTE as usize) {
            let value = values.and_then(|v| v.get(&minute)).copied().unwrap_or(0.0);
            let s = detector.score(value);
            out.scored += 1;
            if s.score >= ALARM {
                found.push(DetectedAnomaly {
                    metric: metric.to_owned(),
                    minute,
                    value: s.observed,
                    score: s.score,
                    expected: s.expected,
                    low: s.low,
                    high: s.high,
                    feature: s.feature.name().to_owned(),
                    detected_at: now,
                });
            }
        }
        let state = DetectorState {
            metric: metric.to_owned(),
            last_minute: through - MINUTE,
            state: detector.to_bytes(),
        };
        match store
            .put_detector(tenant, &state, stored.map(|d| d.last_minute))
            .await
        {
            Ok(()) => {
                if !found.is_empty() {
                    store.record(tenant, &found).await?;
                    tracing::info!(%tenant, metric, anomalies = found.len(), "anomalies found as minutes sealed");
                }
                out.anomalies.extend(found);
            }
            Err(StoreError::Conflict) => out.raced += 1,
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "detect_tests.rs"]
mod tests;
