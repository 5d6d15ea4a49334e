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
    aggregations_of, daily_values,
};
use pulse_metrics::rollup::Resolution;
use pulse_store::{FitWriter, StoreError, Totals};
use thiserror::Error;

const DAY: i64 = 86_400;

/// Why a metric was not fitted.
#[derive(Debug, Error)]
pub enum FitError {
    #[error("no data for metric {metric} in the last {HISTORY_DAYS} days")]
    NoData { metric: String },
    #[error("too little history for {metric}: {days} complete days, {MIN_DAYS} needed")]
    TooShort { metric: String, days: usize },
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

/// Fits `metric`'s daily `aggregation` from `history` ([`history`]) at `now` (epoch s),
/// forecasting `horizon` days from today.
pub fn fit(
    history: &[(String, i64, Bucket)],
    metric: &str,
    aggregation: Aggregation,
    horizon: usize,
    now: i64,
) -> Result<Fit, FitError> {
    let today = now.div_euclid(DAY) * DAY;
    let values = daily_values(history, metric, aggregation, today);
    if values.is_empty() {
        return Err(FitError::NoData {
            metric: metric.to_owned(),
        });
    }
    if values.len() < MIN_DAYS {
        return Err(FitError::TooShort {
            metric: metric.to_owned(),
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
            match fit(&history, metric, aggregation, DEFAULT_HORIZON, now) {
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
