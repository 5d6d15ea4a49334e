//! Rolling-origin evaluation of the forecaster on a series' own past: the last `cuts` origins a
//! horizon apart, each forecast from the history before it (the whole pipeline, refitted) and
//! compared with what followed.

use crate::forecast::{ForecastError, forecast};

/// Accuracy over the cuts.
#[derive(Debug, Clone, PartialEq)]
pub struct Accuracy {
    /// Mean absolute error over the seasonal naive's in-sample error (period 7, or the series'
    /// own period when asked), averaged over cuts.
    pub mase: f64,
    /// Symmetric MAPE in percent (0–200).
    pub smape: f64,
    /// 1 − MAPE over the points whose actual value is not zero.
    pub accuracy: f64,
    pub coverage80: f64,
    pub coverage95: f64,
    pub cuts: usize,
    pub points: usize,
    /// The model of the last cut.
    pub model: String,
}

/// Backtests `y` (regular, no gaps) with `cuts` origins `horizon` apart, scaling MASE by the
/// seasonal naive of period `mase_period`.
pub fn backtest(
    y: &[f64],
    period: usize,
    horizon: usize,
    cuts: usize,
    mase_period: usize,
) -> Result<Accuracy, ForecastError> {
    let n = y.len();
    let needed = crate::forecast::MIN_ROWS.max(mase_period + 1) + horizon;
    if n < needed {
        return Err(ForecastError::TooShort { rows: n, needed });
    }
    let cuts = cuts.min((n - needed) / horizon + 1).max(1);
    let (mut mase, mut smape, mut ape, mut ape_n) = (0.0, 0.0, 0.0, 0usize);
    let (mut in80, mut in95, mut points) = (0usize, 0usize, 0usize);
    let mut model = String::new();
    for c in (1..=cuts).rev() {
        let origin = n - c * horizon;
        let (train, test) = (&y[..origin], &y[origin..origin + horizon]);
        let f = forecast(train, period, horizon)?;
        let scale = naive_error(train, mase_period);
        let mae = f
            .values
            .iter()
            .zip(test)
            .map(|(p, a)| (p - a).abs())
            .sum::<f64>()
            / horizon as f64;
        // A series the seasonal naive repeats exactly has no scale: only a perfect forecast
        // (to rounding) is then finite.
        let tiny = 1e-9 * (1.0 + train.iter().map(|v| v.abs()).sum::<f64>() / train.len() as f64);
        mase += if scale > tiny {
            mae / scale
        } else if mae <= tiny {
            0.0
        } else {
            f64::INFINITY
        };
        for (k, a) in test.iter().enumerate() {
            let p = f.values[k];
            let denominator = p.abs() + a.abs();
            if denominator > 0.0 {
                smape += 200.0 * (p - a).abs() / denominator;
            }
            if *a != 0.0 {
                ape += ((p - a) / a).abs();
                ape_n += 1;
            }
            in80 += usize::from(f.lo80[k] <= *a && *a <= f.hi80[k]);
            in95 += usize::from(f.lo95[k] <= *a && *a <= f.hi95[k]);
            points += 1;
        }
        model = f.model;
    }
    Ok(Accuracy {
        mase: mase / cuts as f64,
        smape: smape / points as f64,
        accuracy: if ape_n > 0 {
            1.0 - ape / ape_n as f64
        } else {
            f64::NAN
        },
        coverage80: in80 as f64 / points as f64,
        coverage95: in95 as f64 / points as f64,
        cuts,
        points,
        model,
    })
}

/// Mean absolute error of the seasonal naive within `y`.
pub fn naive_error(y: &[f64], period: usize) -> f64 {
    let m = period.max(1);
    if y.len() <= m {
        return 0.0;
    }
    y.windows(m + 1).map(|w| (w[m] - w[0]).abs()).sum::<f64>() / (y.len() - m) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clean_weekly_series_growing_by_a_rate_is_forecast_closely() {
        // Growth by a rate, with a weekly pattern in proportion: what counts of a growing
        // site look like, and a straight line with a season on the log scale the models use.
        let y: Vec<f64> = (0..200)
            .map(|t| [10.0, 12.0, 14.0, 13.0, 11.0, 5.0, 4.0][t % 7] * (0.004 * t as f64).exp())
            .collect();
        let a = backtest(&y, 7, 7, 8, 7).expect("backtest");
        assert_eq!((a.cuts, a.points), (8, 56));
        // Theta projects half the trend (its classic form), which costs it here; the ensemble
        // still far beats the seasonal naive.
        assert!(a.mase < 0.75 && a.smape < 1.5 && a.accuracy > 0.98, "{a:?}");
    }

    #[test]
    fn a_history_too_short_for_one_cut_is_refused() {
        assert!(matches!(
            backtest(&[1.0; 10], 7, 7, 8, 7),
            Err(ForecastError::TooShort { .. })
        ));
    }
}
