//! Forecasts with calibrated intervals: non-negative series (counts) are forecast on a log1p
//! scale, by the mean of an ensemble of classic members. The 80 % and 95 % intervals are
//! split-conformal: quantiles of the ensemble's errors over a year of daily forecast origins
//! in the series' own past, by horizon step, so their width is what the model actually missed
//! by on this series, not a textbook assumption. Each error is taken over the series' local
//! scale at its origin (the mean absolute seasonal difference of the 28 points before it) and
//! the quantiles are scaled back by the scale now (normalized conformal): intervals follow
//! the series' current volatility instead of its average over the year. On the 18 benchmark
//! series this took the 80 % / 95 % coverage from 0.69 / 0.89 to 0.81 / 0.94, and on 18 other
//! series from 0.83 / 0.96 to 0.77 / 0.94 (docs/BENCHMARKS.md).

pub mod members;
pub mod neural;
pub mod optim;

use members::{Fitted, Member};

/// Calibration origins (one a period): a year of daily origins, so that the errors include
/// every season of the year.
const ORIGINS: usize = 365;
/// Fewest periods of training before the first backtest origin.
const MIN_TRAIN_SEASONS: usize = 3;
/// At most this many recent periods are used (three years of days).
const MAX_HISTORY: usize = 1_095;

/// A forecast `horizon` periods ahead.
#[derive(Debug, Clone, PartialEq)]
pub struct Forecast {
    pub values: Vec<f64>,
    pub lo80: Vec<f64>,
    pub hi80: Vec<f64>,
    pub lo95: Vec<f64>,
    pub hi95: Vec<f64>,
    /// What produced it: `ensemble(…)`, a member's name, or a fallback for a short history.
    pub model: String,
}

/// Why no forecast can be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForecastError {
    #[error("too short a history: {rows} periods, at least {needed} needed")]
    TooShort { rows: usize, needed: usize },
}

/// The fewest periods any forecast needs (the naive fallback).
pub const MIN_ROWS: usize = 3;

/// The values' scale: log1p for non-negative data (counts, durations), else unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scale {
    Log,
    Linear,
}

impl Scale {
    fn of(y: &[f64]) -> Self {
        if y.iter().all(|v| *v >= 0.0) {
            Scale::Log
        } else {
            Scale::Linear
        }
    }
    fn to(self, v: f64) -> f64 {
        match self {
            Scale::Log => v.ln_1p(),
            Scale::Linear => v,
        }
    }
    fn from(self, v: f64) -> f64 {
        match self {
            Scale::Log => v.exp_m1().max(0.0),
            Scale::Linear => v,
        }
    }
}

/// The ensemble: every member but the naive baseline, equally weighted. Measured by
/// rolling-origin backtest over real daily series (docs/BENCHMARKS.md): the mean beat each
/// member alone; choosing per series from its own recent backtest did worse (selection noise),
/// and so did cleaning outliers before fitting (the members are robust instead).
const ENSEMBLE: [Member; 4] = [Member::Ets, Member::EtsDamped, Member::Theta, Member::Mlp];

/// Forecasts `horizon` periods after `y` (regular, no gaps), with `period` its season.
pub fn forecast(y: &[f64], period: usize, horizon: usize) -> Result<Forecast, ForecastError> {
    if y.len() < MIN_ROWS {
        return Err(ForecastError::TooShort {
            rows: y.len(),
            needed: MIN_ROWS,
        });
    }
    let y = &y[y.len().saturating_sub(MAX_HISTORY)..];
    let scale = Scale::of(y);
    let z: Vec<f64> = y.iter().map(|v| scale.to(*v)).collect();
    let n = z.len();
    let min_train = (MIN_TRAIN_SEASONS * period).max(14);
    let (members, model, first): (&[Member], String, usize) = if n >= min_train + 2 * horizon.max(7)
    {
        (
            &ENSEMBLE,
            ensemble_name(&ENSEMBLE),
            n.saturating_sub(ORIGINS).max(min_train).max(n / 2),
        )
    } else if period > 1 && n > period {
        (
            &[Member::SeasonalNaive],
            "seasonal_naive (short history)".to_owned(),
            n / 2,
        )
    } else {
        (
            &[Member::SeasonalNaive],
            "naive (short history)".to_owned(),
            n / 2,
        )
    };
    // Members fitted on the history before the first origin, then run forward over each
    // origin: every calibration error is out of sample.
    let early: Vec<Fitted> = members.iter().map(|m| m.fit(&z[..first], period)).collect();
    let floor = 0.25 * local_scale(&z, z.len(), z.len(), period, 0.0);
    let errors = backtest_errors(&z, period, horizon, first, &early, floor);
    let now_scale = local_scale(&z, n, RECENT, period, floor);
    let fitted: Vec<Fitted> = members.iter().map(|m| m.fit(&z, period)).collect();
    let point = mean_forecast(&fitted, &z, period, horizon);
    let mut f = Forecast {
        values: Vec::with_capacity(horizon),
        lo80: Vec::with_capacity(horizon),
        hi80: Vec::with_capacity(horizon),
        lo95: Vec::with_capacity(horizon),
        hi95: Vec::with_capacity(horizon),
        model,
    };
    for (k, p) in point.iter().enumerate() {
        let step = pooled(&errors, k);
        let (l80, h80) = conformal(&step, 0.80);
        let (l95, h95) = conformal(&step, 0.95);
        f.values.push(scale.from(*p));
        f.lo80.push(scale.from(p + l80 * now_scale));
        f.hi80.push(scale.from(p + h80 * now_scale));
        f.lo95.push(scale.from(p + l95 * now_scale));
        f.hi95.push(scale.from(p + h95 * now_scale));
    }
    Ok(f)
}

fn ensemble_name(members: &[Member]) -> String {
    format!(
        "ensemble({})",
        members
            .iter()
            .map(|m| m.name())
            .collect::<Vec<_>>()
            .join("+")
    )
}

/// The mean of the members' forecasts (on the transformed scale).
fn mean_forecast(fitted: &[Fitted], z: &[f64], period: usize, horizon: usize) -> Vec<f64> {
    mean_forecast_with(fitted, z, period, horizon, None)
}

/// [`mean_forecast`], with the network's forecast already made when `neural` holds it.
fn mean_forecast_with(
    fitted: &[Fitted],
    z: &[f64],
    period: usize,
    horizon: usize,
    neural: Option<&[f64]>,
) -> Vec<f64> {
    let forecasts: Vec<Vec<f64>> = fitted
        .iter()
        .map(|f| match neural {
            Some(p) if f.member == Member::Mlp => p[..horizon].to_vec(),
            _ => f.predict(z, period, horizon),
        })
        .collect();
    (0..horizon)
        .map(|k| forecasts.iter().map(|f| f[k]).sum::<f64>() / forecasts.len() as f64)
        .collect()
}

/// Points of recent history whose seasonal differences set the local scale.
const RECENT: usize = 28;

/// The series' scale just before `at` (transformed): the mean absolute seasonal difference over
/// the `span` points before it, at least `floor` (a flat stretch must not make the next errors
/// look enormous).
fn local_scale(z: &[f64], at: usize, span: usize, period: usize, floor: f64) -> f64 {
    let lag = period.max(1);
    let start = at.saturating_sub(span).max(lag);
    if at <= start {
        return floor.max(f64::MIN_POSITIVE);
    }
    let sum: f64 = (start..at).map(|t| (z[t] - z[t - lag]).abs()).sum();
    (sum / (at - start) as f64)
        .max(floor)
        .max(f64::MIN_POSITIVE)
}

/// The ensemble's errors (actual − forecast, transformed scale) by horizon step, from every
/// origin from `first` on, each over the series' local scale at its origin: intervals then
/// follow the series' current volatility rather than its average over the calibration year.
fn backtest_errors(
    z: &[f64],
    period: usize,
    horizon: usize,
    first: usize,
    fitted: &[Fitted],
    floor: f64,
) -> Vec<Vec<f64>> {
    let n = z.len();
    let mut errors = vec![Vec::new(); horizon];
    let origins = first.max(1)..n;
    // The network's forecasts at every origin its input fits, in one batch.
    let batched = origins.start.max(neural::INPUT);
    let made: Option<Vec<Vec<f64>>> = (period == neural::OUTPUT
        && fitted.iter().any(|f| f.member == Member::Mlp))
    .then(|| {
        let histories: Vec<&[f64]> = (batched..n).map(|o| &z[..o]).collect();
        neural::predict_many(&histories, horizon)
    })
    .flatten();
    for o in origins {
        let h = horizon.min(n - o);
        let made = made
            .as_ref()
            .filter(|_| o >= batched)
            .and_then(|all| all.get(o - batched));
        let p = mean_forecast_with(fitted, &z[..o], period, h, made.map(Vec::as_slice));
        let s = local_scale(z, o, RECENT, period, floor);
        for k in 0..h {
            errors[k].push((z[o + k] - p[k]) / s);
        }
    }
    errors
}

/// A step's errors pooled with its neighbours' (steps k−1..k+1), for steadier quantiles; a step
/// with none borrows the nearest step's, widened by √ of the step ratio.
fn pooled(errors: &[Vec<f64>], k: usize) -> Vec<f64> {
    let mut out: Vec<f64> = (k.saturating_sub(1)..=(k + 1).min(errors.len() - 1))
        .flat_map(|j| errors[j].iter().copied())
        .collect();
    if out.is_empty()
        && let Some(j) = (0..k).rev().find(|&j| !errors[j].is_empty())
    {
        let widen = ((k + 1) as f64 / (j + 1) as f64).sqrt();
        out = errors[j].iter().map(|e| e * widen).collect();
    }
    out
}

/// The split-conformal interval offsets for `level` from calibration errors: the
/// ⌈(n+1)(1−α/2)⌉-th order statistics at each side (infinite-sample fallback: ±∞ is replaced by
/// the extreme error, so the interval stays finite).
fn conformal(errors: &[f64], level: f64) -> (f64, f64) {
    if errors.is_empty() {
        return (0.0, 0.0);
    }
    let mut e = errors.to_vec();
    e.sort_by(f64::total_cmp);
    let n = e.len();
    let tail = (1.0 - level) / 2.0;
    let hi_rank = (((n + 1) as f64) * (1.0 - tail)).ceil() as usize;
    let lo_rank = (((n + 1) as f64) * tail).floor() as usize;
    let hi = e[hi_rank.clamp(1, n) - 1];
    let lo = e[lo_rank.clamp(1, n) - 1];
    (lo.min(0.0), hi.max(0.0))
}

#[cfg(test)]
mod tests;
