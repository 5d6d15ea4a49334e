//! `pulse-insights`: fitting Pulse's forecasters ([`pulse_models`]) to a tenant's metrics,
//! shared by the insights API (a fit on request when none is current) and the retrain job
//! (every metric of a tenant with enough history, daily and on request).
//!
//! A fit reads the metric's daily totals ([`pulse_store::Totals`], one Query of the day
//! rollups for every metric at once), forecasts `horizon` days from today with calibrated
//! intervals, backtests the forecaster on the metric's own last 8 weeks, and is stored with a
//! version ([`pulse_store::FitWriter`]) so it is served until the next retrain or the next day.

pub mod detect;
pub mod memory;

use pulse_core::identity::TenantId;
use pulse_metrics::aggregate::Bucket;
use pulse_metrics::insights::{
    Accuracy, Aggregation, DEFAULT_HORIZON, Fit, ForecastPoint, HISTORY_DAYS, MIN_DAYS,
    SeriesSelector, aggregations_of, daily_values,
};
use pulse_metrics::rollup::Resolution;
use pulse_store::{FitWriter, RollupBuckets, SeriesCatalog, StoreError, Totals};
use thiserror::Error;

const DAY: i64 = 86_400;

/// Why a metric was not fitted.
#[derive(Debug, Error)]
pub enum FitError {
    /// `subject` names the metric, and the series when one was asked for.
    #[error("no data for {subject} in the last {HISTORY_DAYS} days")]
    NoData { subject: String },
    #[error("too little history for {subject}: {days} complete days, {MIN_DAYS} needed")]
    TooShort { subject: String, days: usize },
    #[error("the forecaster refused the series")]
    Model(#[source] pulse_models::forecast::ForecastError),
    #[error("the metric's totals cannot be read or the fit stored")]
    Store(#[from] StoreError),
}

/// A tenant's daily totals of every metric over the history a fit reads, before `today`.
pub async fn history<S: Totals>(
    totals: &S,
    tenant: &TenantId,
    today: i64,
) -> Result<Vec<(String, i64, Bucket)>, StoreError> {
    totals
        .totals(
            tenant,
            Resolution::Day,
            today - HISTORY_DAYS * DAY,
            today,
            &[],
        )
        .await
}

/// The daily buckets of the series of `metric` that `selector` picks, over the history a fit
/// reads, before `today`, as `(metric, start, bucket)` like [`history`]: the registry's series
/// (one Query), then the picked series' day buckets (one Query each). Buckets of several
/// series on one day add up when fitted.
pub async fn series_history<S: SeriesCatalog + RollupBuckets>(
    store: &S,
    tenant: &TenantId,
    metric: &str,
    selector: &SeriesSelector,
    today: i64,
) -> Result<Vec<(String, i64, Bucket)>, StoreError> {
    let picked: Vec<String> = store
        .series(tenant, metric)
        .await?
        .into_iter()
        .filter(|(_, tags)| selector.matches(tags))
        .map(|(id, _)| id)
        .collect();
    if picked.is_empty() {
        return Ok(Vec::new());
    }
    Ok(store
        .series_buckets(
            tenant,
            metric,
            &picked,
            Resolution::Day,
            today - HISTORY_DAYS * DAY,
            today,
        )
        .await?
        .into_iter()
        .map(|(_, start, bucket)| (metric.to_owned(), start, bucket))
        .collect())
}

/// Fits `metric`'s daily `aggregation` (of the series `series` picks, when given; `history`
/// then holds that series' buckets: [`series_history`], else [`history`]) at `now` (epoch
/// s), forecasting `horizon` days from today.
pub fn fit(
    history: &[(String, i64, Bucket)],
    metric: &str,
    series: Option<&SeriesSelector>,
    aggregation: Aggregation,
    horizon: usize,
    now: i64,
) -> Result<Fit, FitError> {
    let today = now.div_euclid(DAY) * DAY;
    let values = daily_values(history, metric, aggregation, today);
    let subject = || match series {
        Some(s) => format!("metric {metric}'s series {s}"),
        None => format!("metric {metric}"),
    };
    if values.is_empty() {
        return Err(FitError::NoData { subject: subject() });
    }
    if values.len() < MIN_DAYS {
        return Err(FitError::TooShort {
            subject: subject(),
            days: values.len(),
        });
    }
    let f = pulse_models::forecast::forecast(&values, 7, horizon).map_err(FitError::Model)?;
    let a = pulse_models::backtest::backtest(&values, 7, 7, 8, 7).ok();
    let finite = |v: f64| v.is_finite().then_some(v);
    let points = (0..horizon)
        .map(|k| ForecastPoint {
            date: pulse_models::series::format_time(today + k as i64 * DAY)[..10].to_owned(),
            forecast: f.values[k],
            lo80: f.lo80[k],
            hi80: f.hi80[k],
            lo95: f.lo95[k],
            hi95: f.hi95[k],
        })
        .collect();
    Ok(Fit {
        metric: metric.to_owned(),
        series: series.map(ToString::to_string),
        aggregation,
        model: f.model,
        trained_at: pulse_models::series::format_time(now),
        from_day: today,
        history_days: values.len(),
        accuracy: Accuracy {
            mase: a.as_ref().and_then(|a| finite(a.mase)),
            accuracy: a.as_ref().and_then(|a| finite(a.accuracy)),
            coverage80: a.as_ref().map(|a| a.coverage80),
            coverage95: a.as_ref().map(|a| a.coverage95),
            cuts: a.as_ref().map_or(0, |a| a.cuts),
        },
        points,
        version: 0,
    })
}

/// What a tenant's retrain did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Retrained {
    /// `metric/aggregation` of each fit stored.
    pub fitted: Vec<String>,
    /// Metrics passed over, with why.
    pub skipped: Vec<String>,
}

/// Refits every metric of `tenant` with at least [`MIN_DAYS`] days of history, by count (and
/// by sum where values are not all one), for [`DEFAULT_HORIZON`] days, and stores each fit.
/// A metric that cannot be fitted is skipped and said why; a store failure stops the run.
pub async fn retrain<S: Totals, W: FitWriter>(
    totals: &S,
    writer: &W,
    tenant: &TenantId,
    now: i64,
) -> Result<Retrained, StoreError> {
    let today = now.div_euclid(DAY) * DAY;
    let history = history(totals, tenant, today).await?;
    let mut metrics: Vec<&str> = history.iter().map(|(m, _, _)| m.as_str()).collect();
    metrics.sort_unstable();
    metrics.dedup();
    let mut out = Retrained::default();
    for metric in metrics {
        for aggregation in aggregations_of(&history, metric) {
            let name = format!("{metric}/{}", aggregation.name());
            match fit(&history, metric, None, aggregation, DEFAULT_HORIZON, now) {
                Ok(fit) => {
                    let stored = writer.put_fit(tenant, &fit).await?;
                    tracing::info!(%tenant, metric, aggregation = aggregation.name(), version = stored.version, model = %stored.model, "fitted");
                    out.fitted.push(name);
                }
                Err(FitError::Store(e)) => return Err(e),
                Err(e) => out.skipped.push(format!("{name}: {e}")),
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
