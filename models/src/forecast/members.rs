//! The ensemble's members, each a classic that wins somewhere (the M-competitions' lesson):
//! seasonal naive, exponential smoothing with additive seasonality (without trend, and with a
//! damped trend) and the Theta method. They work on the transformed series (log1p for counts),
//! so additive seasonality there is multiplicative in the data.
//!
//! Each member is fitted once (its parameters) and then run over any prefix of a series with
//! those parameters, which is how the backtest gets many honest forecast origins cheaply.

use super::optim::{logistic, minimize};

/// A forecasting method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Member {
    /// The value one season back (the last value when there is no season).
    SeasonalNaive,
    /// Exponential smoothing: level and seasons (ETS(A,N,A)).
    Ets,
    /// Exponential smoothing with a damped trend (ETS(A,Ad,A)).
    EtsDamped,
    /// The Theta method: simple exponential smoothing plus half the linear trend, on the
    /// seasonally adjusted series.
    Theta,
    /// A network trained across many daily series ([`super::neural`]); seasonal naive where it
    /// cannot run (not daily, under eight weeks, no weights).
    Mlp,
}

impl Member {
    pub const ALL: [Member; 5] = [
        Member::SeasonalNaive,
        Member::Ets,
        Member::EtsDamped,
        Member::Theta,
        Member::Mlp,
    ];

    /// The name the CLI prints.
    pub fn name(self) -> &'static str {
        match self {
            Member::SeasonalNaive => "seasonal_naive",
            Member::Ets => "ets",
            Member::EtsDamped => "ets_damped",
            Member::Theta => "theta",
            Member::Mlp => "mlp",
        }
    }

    /// Fits the member's parameters to `z`.
    pub fn fit(self, z: &[f64], period: usize) -> Fitted {
        let params = match self {
            Member::SeasonalNaive | Member::Mlp => Vec::new(),
            Member::Ets | Member::EtsDamped => {
                let damped = self == Member::EtsDamped;
                let x0: &[f64] = if damped {
                    &[-1.0, -1.5, -2.0, 1.0]
                } else {
                    &[-1.0, -2.0]
                };
                let u = minimize(
                    |u| ets_run(z, period, &ets_params(u, damped), 0).0,
                    x0,
                    1.0,
                    if damped { 250 } else { 150 },
                );
                ets_params(&u, damped).to_vec()
            }
            Member::Theta => {
                let d = deseasonalized(z, period);
                let u = minimize(|u| ses(&d, logistic(u[0])).1, &[0.0], 1.0, 60);
                vec![logistic(u[0]).clamp(0.001, 0.999)]
            }
        };
        Fitted {
            member: self,
            params,
        }
    }
}

/// A member with its parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Fitted {
    pub member: Member,
    pub params: Vec<f64>,
}

impl Fitted {
    /// Forecasts `horizon` steps after `z`.
    pub fn predict(&self, z: &[f64], period: usize, horizon: usize) -> Vec<f64> {
        let n = z.len();
        match self.member {
            Member::Mlp => match (period == super::neural::OUTPUT)
                .then(|| super::neural::predict(z, horizon))
                .flatten()
            {
                Some(p) => p,
                None => Member::SeasonalNaive
                    .fit(z, period)
                    .predict(z, period, horizon),
            },
            Member::SeasonalNaive => {
                let m = if n > period { period } else { 1 };
                (0..horizon).map(|k| z[n - m + (k % m)]).collect()
            }
            Member::Ets | Member::EtsDamped => {
                let p = [
                    self.params[0],
                    self.params[1],
                    self.params[2],
                    self.params[3],
                ];
                ets_run(z, period, &p, horizon).1
            }
            Member::Theta => {
                let alpha = self.params[0];
                let (d, seasons) = decompose(z, period);
                let (level, _) = ses(&d, alpha);
                let slope = ols_slope(&d);
                let decay = (1.0 - alpha).powi(i32::try_from(n).unwrap_or(i32::MAX)) / alpha;
                (1..=horizon)
                    .map(|k| {
                        let drift = 0.5 * slope * ((k - 1) as f64 + 1.0 / alpha - decay);
                        level
                            + drift
                            + seasons
                                .get((n + k - 1) % period.max(1))
                                .copied()
                                .unwrap_or(0.0)
                    })
                    .collect()
            }
        }
    }
}

/// α, β, γ, φ from unbounded parameters: β ≤ α and γ ≤ 1 − α keep the model forecastable; φ in
/// [0.8, 0.98] damps the trend. Without a trend β = 0.
fn ets_params(u: &[f64], damped: bool) -> [f64; 4] {
    let alpha = 0.001 + 0.998 * logistic(u[0]);
    if damped {
        let beta = alpha * logistic(u[1]);
        let gamma = (1.0 - alpha) * logistic(u[2]);
        let phi = 0.8 + 0.18 * logistic(u[3]);
        [alpha, beta, gamma, phi]
    } else {
        [alpha, 0.0, (1.0 - alpha) * logistic(u[1]), 0.0]
    }
}

/// Runs additive exponential smoothing over `z`: the sum of squared one-step errors, and the
/// forecast `horizon` steps on.
fn ets_run(z: &[f64], period: usize, p: &[f64; 4], horizon: usize) -> (f64, Vec<f64>) {
    let [alpha, beta, gamma, phi] = *p;
    let n = z.len();
    let m = if period > 1 && n >= 2 * period {
        period
    } else {
        1
    };
    let (mut level, mut trend, mut seasons) = if m > 1 {
        let first = z[..m].iter().sum::<f64>() / m as f64;
        let second = z[m..2 * m].iter().sum::<f64>() / m as f64;
        let trend = if beta > 0.0 {
            (second - first) / m as f64
        } else {
            0.0
        };
        (
            first,
            trend,
            z[..m].iter().map(|v| v - first).collect::<Vec<_>>(),
        )
    } else {
        let trend = if beta > 0.0 && n > 1 {
            z[1] - z[0]
        } else {
            0.0
        };
        (z[0], trend, vec![0.0])
    };
    let mut sse = 0.0;
    let mut spread = Spread::default();
    for (t, &y) in z.iter().enumerate() {
        let s = t % m;
        let e = spread.clip(y - (level + phi * trend + seasons[s]));
        if t >= m {
            sse += e * e;
        }
        let next = level + phi * trend + alpha * e;
        trend = phi * trend + beta * e;
        seasons[s] += gamma * e;
        level = next;
    }
    let mut damp = 0.0;
    let mut phik = 1.0;
    let forecast = (1..=horizon)
        .map(|k| {
            phik *= phi;
            damp += phik;
            level + damp * trend + seasons[(n + k - 1) % m]
        })
        .collect();
    (if sse.is_finite() { sse } else { f64::MAX }, forecast)
}

/// A running scale of one-step errors that clips an error beyond [`CLIP`] times it before the
/// error updates a model's state: a one-off spike moves a smoothing model's level and season
/// by a bounded amount (robust exponential smoothing, after Gelper, Fried and Croux 2010).
#[derive(Debug, Default)]
struct Spread {
    scale: f64,
    seen: usize,
}

/// Errors beyond this many mean absolute errors are clipped.
const CLIP: f64 = 4.0;

impl Spread {
    fn clip(&mut self, e: f64) -> f64 {
        self.seen += 1;
        let limit = CLIP * self.scale;
        let clipped = if self.seen > 10 && e.abs() > limit {
            limit.copysign(e)
        } else {
            e
        };
        let alpha = (1.0 / self.seen as f64).max(0.02);
        self.scale += alpha * (clipped.abs() - self.scale);
        clipped
    }
}

/// Simple exponential smoothing: the final level and the sum of squared one-step errors.
fn ses(d: &[f64], alpha: f64) -> (f64, f64) {
    let mut level = d[0];
    let mut sse = 0.0;
    let mut spread = Spread::default();
    for &y in &d[1..] {
        let e = spread.clip(y - level);
        sse += e * e;
        level += alpha * e;
    }
    (level, sse)
}

fn ols_slope(d: &[f64]) -> f64 {
    let n = d.len() as f64;
    if d.len() < 2 {
        return 0.0;
    }
    let mean_t = (n - 1.0) / 2.0;
    let mean_y = d.iter().sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for (t, y) in d.iter().enumerate() {
        let dt = t as f64 - mean_t;
        num += dt * (y - mean_y);
        den += dt * dt;
    }
    if den > 0.0 { num / den } else { 0.0 }
}

fn deseasonalized(z: &[f64], period: usize) -> Vec<f64> {
    decompose(z, period).0
}

/// The series without its seasons, and the seasons by phase (index 0 is the first value's
/// phase); no seasons when the series is too short or its autocorrelation at the period is not
/// significant (the 90 % test the Theta method uses).
pub fn decompose(z: &[f64], period: usize) -> (Vec<f64>, Vec<f64>) {
    let n = z.len();
    let m = period;
    if m <= 1 || n < 2 * m + 1 || !seasonal(z, m) {
        return (z.to_vec(), Vec::new());
    }
    // Centred moving average of order m (2×m when m is even); each phase's index is the median
    // of its deviations from it, so that one spike does not become part of every week.
    let half = m / 2;
    let mut deviations: Vec<Vec<f64>> = vec![Vec::new(); m];
    for t in half..n - half {
        let ma = if m.is_multiple_of(2) {
            if t + half >= n {
                continue;
            }
            (0.5 * z[t - half] + z[t + 1 - half..t + half].iter().sum::<f64>() + 0.5 * z[t + half])
                / m as f64
        } else {
            z[t - half..=t + half].iter().sum::<f64>() / m as f64
        };
        deviations[t % m].push(z[t] - ma);
    }
    let mut seasons: Vec<f64> = deviations.iter_mut().map(|d| median(d)).collect();
    let mean = seasons.iter().sum::<f64>() / m as f64;
    for s in &mut seasons {
        *s -= mean;
    }
    let d = z
        .iter()
        .enumerate()
        .map(|(t, v)| v - seasons[t % m])
        .collect();
    (d, seasons)
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

fn seasonal(z: &[f64], m: usize) -> bool {
    let n = z.len();
    let mean = z.iter().sum::<f64>() / n as f64;
    let var: f64 = z.iter().map(|v| (v - mean).powi(2)).sum();
    if var <= 0.0 {
        return false;
    }
    let acf = |k: usize| -> f64 {
        (k..n)
            .map(|t| (z[t] - mean) * (z[t - k] - mean))
            .sum::<f64>()
            / var
    };
    let r: Vec<f64> = (1..=m).map(acf).collect();
    let limit =
        1.645 * ((1.0 + 2.0 * r[..m - 1].iter().map(|x| x * x).sum::<f64>()) / n as f64).sqrt();
    r[m - 1].abs() > limit
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weekly(n: usize) -> Vec<f64> {
        (0..n)
            .map(|t| 5.0 + 0.01 * t as f64 + [0.0, 0.2, 0.3, 0.2, 0.1, -0.4, -0.4][t % 7])
            .collect()
    }

    #[test]
    fn each_member_continues_a_noiseless_weekly_pattern() {
        let z = weekly(200);
        let truth = &weekly(207)[200..];
        for member in Member::ALL {
            let f = member.fit(&z, 7).predict(&z, 7, 7);
            let err = f
                .iter()
                .zip(truth)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(err < 0.1, "{}: {f:?} vs {truth:?}", member.name());
        }
    }

    #[test]
    fn a_weekly_pattern_is_found_and_a_flat_one_is_not() {
        assert!(seasonal(&weekly(100), 7));
        let noise: Vec<f64> = (0..100).map(|t| ((t * 7919) % 13) as f64).collect();
        assert_eq!(
            decompose(&noise, 7).1.len(),
            if seasonal(&noise, 7) { 7 } else { 0 }
        );
        assert!(decompose(&[1.0; 40], 7).1.is_empty());
    }
}
