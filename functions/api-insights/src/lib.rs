//! Insights from Pulse's models ([`pulse_models`]):
//! - `GET /api/v1/predictions/{metric}?days=7&aggregation=count`: the metric's daily total
//!   forecast for the next `days` (1–30) days, from today, with 80 % and 95 % intervals, the
//!   model that made it, and how accurate that model was on this metric's own past (a backtest
//!   over its last 8 weeks: MASE, 1 − MAPE, interval coverage).
//!
//! - `GET /api/v1/anomalies?metric=…&from=…&to=…&aggregation=count`: the metric's anomalous
//!   points in the range (hourly totals up to 7 days, daily beyond, at most 90 days), each with
//!   its score, expected value, usual band, severity and what fired, and the windows they open.
//!
//! The forecast is made on request from the metric's daily totals (one Query of the day
//! rollups): a year of history takes tens of milliseconds. The metric's role applies (business
//! metrics need analyst, system metrics admin). A metric with no data is a 404; one with under
//! [`MIN_DAYS`] days of history a 422 saying how many it has.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, RequestExt, Response};
use pulse_core::config::ClaimNames;
use pulse_core::identity::Caller;
use pulse_core::{ApiError, Config};
use pulse_http::selfmon::{RequestRecorder, serve_recorded};
use pulse_http::{FromRequest, HttpHandler, json};
use pulse_metrics::rollup::Resolution;
use pulse_models::backtest::backtest;
use pulse_models::forecast::forecast;
use pulse_store::Totals;
use pulse_store::metrics::DynamoMetrics;
use serde::Serialize;
use std::sync::Arc;

/// The routes this crate serves (template.yaml routes them to this function, and a test
/// checks the two agree).
pub const ROUTES: &[&str] = &["GET /api/v1/predictions/{metric}", "GET /api/v1/anomalies"];

/// Fewest days of history a prediction needs (four weeks: the weekly pattern seen four times).
pub const MIN_DAYS: usize = 28;
/// Days of history read (a year, and the calibration's margin).
const HISTORY_DAYS: i64 = 400;
const DAY: i64 = 86_400;

/// The insights endpoints with the metrics they read.
#[derive(Debug)]
pub struct Insights<S> {
    metrics: S,
    claims: ClaimNames,
    clock: fn() -> i64,
    recorder: Option<Arc<dyn RequestRecorder>>,
}

/// Builds the handler from the function's configuration, as `main` and the local cloud do.
/// Loads the forecaster's network now, so that its cost is the cold start's, not the first
/// request's.
pub fn wire(config: &Config, aws: &aws_config::SdkConfig) -> Insights<DynamoMetrics> {
    if pulse_models::forecast::neural::model().is_none() {
        tracing::error!("the forecaster's network did not load; forecasting without it");
    }
    Insights::new(
        DynamoMetrics::new(aws, &config.tables.metrics, config.retention),
        config.claims.clone(),
    )
    .recording(pulse_http::selfmon::recorder(config, aws))
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A prediction as the API answers it.
#[derive(Debug, Serialize, PartialEq)]
pub struct Prediction {
    pub metric: String,
    pub aggregation: &'static str,
    /// What made the forecast (an ensemble's members, or a fallback for a short history).
    pub model: String,
    /// When it was computed (ISO-8601 UTC): forecasts are made on request.
    pub trained_at: String,
    /// Days of history it learnt from.
    pub history_days: usize,
    /// The model's accuracy on this metric's own last weeks.
    pub accuracy: Accuracy,
    pub points: Vec<Point>,
}

/// Rolling-origin accuracy (`pulse_models::backtest`).
#[derive(Debug, Serialize, PartialEq)]
pub struct Accuracy {
    pub mase: Option<f64>,
    /// 1 − MAPE over the days whose actual value was not zero.
    pub accuracy: Option<f64>,
    pub coverage80: Option<f64>,
    pub coverage95: Option<f64>,
    /// Weekly origins it was measured over (up to 8).
    pub cuts: usize,
}

/// One forecast day.
#[derive(Debug, Serialize, PartialEq)]
pub struct Point {
    /// The day (ISO-8601 date, UTC).
    pub date: String,
    pub forecast: f64,
    pub lo80: f64,
    pub hi80: f64,
    pub lo95: f64,
    pub hi95: f64,
}

/// An anomalous point as the API answers it.
#[derive(Debug, Serialize, PartialEq)]
pub struct Anomaly {
    pub timestamp: String,
    pub value: f64,
    /// In [0, 1]; at or above the threshold ([`pulse_models::detect::ALARM`]).
    pub score: f64,
    /// The value expected from the recent level, and the usual band around it.
    pub expected: f64,
    pub low: f64,
    pub high: f64,
    /// `critical` from a score of 0.9, else `warning`.
    pub severity: &'static str,
    /// What fired: `new_level` (a value the series has never been at) or `new_pattern`.
    pub feature: &'static str,
}

/// An incident: from an anomalous point while the series stays outside the band it left.
#[derive(Debug)]
struct Incident {
    start: i64,
    end: i64,
    peak_score: f64,
    points: usize,
    band: (f64, f64),
}

/// The anomalies query: metric, range and what to count.
#[derive(Debug)]
struct AnomalyQuery {
    metric: String,
    aggregation: Aggregation,
    resolution: Resolution,
    from: i64,
    to: i64,
}

/// The longest range scanned for anomalies.
const MAX_ANOMALY_DAYS: i64 = 90;
/// Ranges up to this many days are scanned by hour; longer ones by day.
const HOURLY_ANOMALY_DAYS: i64 = 7;

impl AnomalyQuery {
    /// `metric` (required), `from` and `to` (ISO-8601; default the last 7 days up to now),
    /// `aggregation` (`count` or `sum`). Windows are whole: `to` is cut to the last window that
    /// has ended, so a window still filling never reads as a drop.
    fn parse(req: &Request, now: i64) -> Result<Self, ApiError> {
        let params = req.query_string_parameters_ref();
        let (mut metric, mut from, mut to, mut aggregation) =
            (None, None, None, Aggregation::Count);
        let time = |k: &str, v: &str| {
            pulse_models::series::parse_time(v).ok_or_else(|| {
                ApiError::invalid_field(
                    &[k],
                    "must be an ISO-8601 time such as 2026-11-30T00:00:00Z",
                )
            })
        };
        for (k, v) in params.into_iter().flat_map(|p| p.iter()) {
            match k {
                "metric" if !v.is_empty() => metric = Some(v.to_owned()),
                "from" => from = Some(time(k, v)?),
                "to" => to = Some(time(k, v)?),
                "aggregation" => aggregation = Aggregation::parse(v)?,
                "metric" => return Err(ApiError::invalid_field(&["metric"], "must name a metric")),
                other => {
                    return Err(ApiError::invalid_field(
                        &[other],
                        "is not a parameter of this route",
                    ));
                }
            }
        }
        let metric = metric.ok_or_else(|| ApiError::invalid_field(&["metric"], "is required"))?;
        let to = to.unwrap_or(now).min(now);
        let from = from.unwrap_or(to - HOURLY_ANOMALY_DAYS * DAY);
        if from >= to {
            return Err(ApiError::invalid_field(
                &["from"],
                "must be before to (and before now)",
            ));
        }
        if to - from > MAX_ANOMALY_DAYS * DAY {
            return Err(ApiError::invalid_field(
                &["from"],
                format!("the range is at most {MAX_ANOMALY_DAYS} days"),
            ));
        }
        let resolution = if to - from <= HOURLY_ANOMALY_DAYS * DAY {
            Resolution::Hour
        } else {
            Resolution::Day
        };
        // Whole windows: the first that starts in the range, up to the last that has ended.
        let step = resolution.secs();
        let from = resolution.window_start(from + step - 1);
        let to = resolution.window_start(to);
        if from >= to {
            return Err(ApiError::invalid_field(
                &["from"],
                "the range holds no whole window (hour or day) that has ended",
            ));
        }
        Ok(Self {
            metric,
            aggregation,
            resolution,
            from,
            to,
        })
    }
}

/// Which daily figure of a metric is forecast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Aggregation {
    Count,
    Sum,
}

impl Aggregation {
    fn parse(v: &str) -> Result<Self, ApiError> {
        match v {
            "count" => Ok(Aggregation::Count),
            "sum" => Ok(Aggregation::Sum),
            _ => Err(ApiError::invalid_field(
                &["aggregation"],
                "must be count or sum",
            )),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Aggregation::Count => "count",
            Aggregation::Sum => "sum",
        }
    }
}

impl<S: Totals> Insights<S> {
    pub fn new(metrics: S, claims: ClaimNames) -> Self {
        Self {
            metrics,
            claims,
            clock: now_secs,
            recorder: None,
        }
    }

    /// Records each request as an `api_request` event of its tenant.
    pub fn recording(self, recorder: Arc<dyn RequestRecorder>) -> Self {
        Self {
            recorder: Some(recorder),
            ..self
        }
    }

    /// The same handler with a fixed clock (tests).
    pub fn with_clock(self, clock: fn() -> i64) -> Self {
        Self { clock, ..self }
    }

    async fn respond(&self, req: Request) -> Result<Response<Body>, ApiError> {
        let path = req.uri().path().trim_end_matches('/').to_owned();
        match path.split('/').collect::<Vec<_>>().as_slice() {
            ["", "api", "v1", "predictions", metric] => {
                let metric = percent_encoding::percent_decode_str(metric)
                    .decode_utf8()
                    .map_err(|_| ApiError::invalid_field(&["metric"], "must be UTF-8"))?
                    .into_owned();
                self.predict(&req, &metric).await
            }
            ["", "api", "v1", "anomalies"] => self.anomalies(&req).await,
            _ => Err(ApiError::NotFound(format!("no route {path}"))),
        }
    }

    /// The metric's totals at `resolution` in `[from, to)` by window start, a window without
    /// a bucket zero (nothing happened), from its first bucket on.
    async fn series(
        &self,
        caller: &Caller,
        metric: &str,
        aggregation: Aggregation,
        resolution: Resolution,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, f64)>, ApiError> {
        let step = resolution.secs();
        let mut by_start: std::collections::BTreeMap<i64, f64> = std::collections::BTreeMap::new();
        for (m, start, b) in self
            .metrics
            .totals(&caller.tenant, resolution, from, to)
            .await?
        {
            if m == metric {
                *by_start.entry(start).or_default() += match aggregation {
                    Aggregation::Count => b.count as f64,
                    Aggregation::Sum => b.sum,
                };
            }
        }
        let Some(first) = by_start.keys().next().copied() else {
            return Ok(Vec::new());
        };
        Ok((first..to)
            .step_by(usize::try_from(step).unwrap_or(3_600))
            .map(|w| (w, by_start.get(&w).copied().unwrap_or(0.0)))
            .collect())
    }

    /// `GET /api/v1/anomalies`: the streaming detector run over the metric's complete windows
    /// up to the range's end, learning from the [`pulse_models::detect::WARMUP`] windows before
    /// it, so the same point scores the same in any range that holds it.
    async fn anomalies(&self, req: &Request) -> Result<Response<Body>, ApiError> {
        use pulse_models::detect::{ALARM, Detector, WARMUP};
        let caller = Caller::from_request(req, &self.claims)?;
        let q = AnomalyQuery::parse(req, (self.clock)())?;
        caller.require(pulse_metrics::query::required_role(&q.metric))?;
        let step = q.resolution.secs();
        let learn_from = q.from - i64::try_from(WARMUP).unwrap_or(150) * step;
        let points = self
            .series(
                &caller,
                &q.metric,
                q.aggregation,
                q.resolution,
                learn_from,
                q.to,
            )
            .await?;
        if points.is_empty() {
            return Err(ApiError::NotFound(format!(
                "no data for metric {} in the range or the {WARMUP} {} before it",
                q.metric,
                if q.resolution == Resolution::Hour {
                    "hours"
                } else {
                    "days"
                }
            )));
        }
        let mut detector = Detector::default();
        let mut found: Vec<Anomaly> = Vec::new();
        let mut windows: Vec<Incident> = Vec::new();
        let mut scored = 0;
        for (start, value) in &points {
            let s = detector.score(*value);
            if *start < q.from {
                continue;
            }
            scored += 1;
            if s.score >= ALARM {
                found.push(Anomaly {
                    timestamp: pulse_models::series::format_time(*start),
                    value: *value,
                    score: s.score,
                    expected: s.expected,
                    low: s.low,
                    high: s.high,
                    severity: if s.score >= 0.9 {
                        "critical"
                    } else {
                        "warning"
                    },
                    feature: s.feature.name(),
                });
                windows.push(Incident {
                    start: *start,
                    end: start + step,
                    peak_score: s.score,
                    points: 1,
                    band: (s.low, s.high),
                });
            } else if let Some(w) = windows.last_mut()
                && w.end == *start
                && (*value < w.band.0 || *value > w.band.1)
            {
                // The incident goes on while the series stays outside the band it left.
                w.end = start + step;
                w.points += 1;
            }
        }
        let windows: Vec<serde_json::Value> = windows
            .iter()
            .map(|w| {
                serde_json::json!({
                    "start": pulse_models::series::format_time(w.start),
                    "end": pulse_models::series::format_time(w.end),
                    "peak_score": w.peak_score,
                    "points": w.points,
                })
            })
            .collect();
        tracing::info!(tenant = %caller.tenant, metric = %q.metric, scored, anomalies = found.len(), "anomalies answered");
        Ok(json(
            StatusCode::OK,
            &serde_json::json!({
                "metric": q.metric,
                "aggregation": q.aggregation.name(),
                "interval": if q.resolution == Resolution::Hour { "1h" } else { "1d" },
                "range": {
                    "start": pulse_models::series::format_time(q.from),
                    "end": pulse_models::series::format_time(q.to),
                },
                "points_scored": scored,
                "threshold": ALARM,
                "anomalies": found,
                "windows": windows,
            }),
        ))
    }

    async fn predict(&self, req: &Request, metric: &str) -> Result<Response<Body>, ApiError> {
        let caller = Caller::from_request(req, &self.claims)?;
        caller.require(pulse_metrics::query::required_role(metric))?;
        let (days, aggregation) = parameters(req)?;
        let today = (self.clock)().div_euclid(DAY) * DAY;
        let totals = self
            .metrics
            .totals(
                &caller.tenant,
                Resolution::Day,
                today - HISTORY_DAYS * DAY,
                today,
            )
            .await?;
        let mut daily: Vec<(i64, f64)> = totals
            .into_iter()
            .filter(|(m, _, _)| m == metric)
            .map(|(_, start, b)| {
                let v = match aggregation {
                    Aggregation::Count => b.count as f64,
                    Aggregation::Sum => b.sum,
                };
                (start, v)
            })
            .collect();
        daily.sort_by_key(|(start, _)| *start);
        let Some(first) = daily.first().map(|(s, _)| *s) else {
            return Err(ApiError::NotFound(format!(
                "no data for metric {metric} in the last {HISTORY_DAYS} days"
            )));
        };
        // A day without a bucket had nothing: zero, not a gap.
        let n = usize::try_from((today - first) / DAY).unwrap_or(0);
        let mut values = vec![0.0; n];
        for (start, v) in &daily {
            if let Ok(i) = usize::try_from((start - first) / DAY)
                && i < n
            {
                values[i] += v;
            }
        }
        if n < MIN_DAYS {
            return Err(ApiError::Unprocessable(format!(
                "too little history for {metric}: {n} complete days, {MIN_DAYS} needed"
            )));
        }
        let f = forecast(&values, 7, days).map_err(|e| ApiError::Unprocessable(e.to_string()))?;
        let a = backtest(&values, 7, 7, 8, 7).ok();
        let finite = |v: f64| v.is_finite().then_some(v);
        let points = (0..days)
            .map(|k| Point {
                date: day(today + k as i64 * DAY),
                forecast: f.values[k],
                lo80: f.lo80[k],
                hi80: f.hi80[k],
                lo95: f.lo95[k],
                hi95: f.hi95[k],
            })
            .collect();
        let prediction = Prediction {
            metric: metric.to_owned(),
            aggregation: aggregation.name(),
            model: f.model,
            trained_at: pulse_models::series::format_time((self.clock)()),
            history_days: n,
            accuracy: Accuracy {
                mase: a.as_ref().and_then(|a| finite(a.mase)),
                accuracy: a.as_ref().and_then(|a| finite(a.accuracy)),
                coverage80: a.as_ref().map(|a| a.coverage80),
                coverage95: a.as_ref().map(|a| a.coverage95),
                cuts: a.as_ref().map_or(0, |a| a.cuts),
            },
            points,
        };
        tracing::info!(tenant = %caller.tenant, metric, days, history_days = n, model = %prediction.model, "prediction answered");
        Ok(json(StatusCode::OK, &prediction))
    }
}

/// `days` (1–30, default 7) and `aggregation` (`count`, default, or `sum`); any other
/// parameter is refused by name.
fn parameters(req: &Request) -> Result<(usize, Aggregation), ApiError> {
    let params = req.query_string_parameters_ref();
    let mut days = 7;
    let mut aggregation = Aggregation::Count;
    for (k, v) in params.into_iter().flat_map(|p| p.iter()) {
        match k {
            "days" => {
                days = v
                    .parse::<usize>()
                    .ok()
                    .filter(|d| (1..=30).contains(d))
                    .ok_or_else(|| {
                        ApiError::invalid_field(
                            &["days"],
                            "must be a whole number of days from 1 to 30",
                        )
                    })?;
            }
            "aggregation" => aggregation = Aggregation::parse(v)?,
            other => {
                return Err(ApiError::invalid_field(
                    &[other],
                    "is not a parameter of this route",
                ));
            }
        }
    }
    Ok((days, aggregation))
}

fn day(at: i64) -> String {
    pulse_models::series::format_time(at)[..10].to_owned()
}

impl<S: Totals + 'static> HttpHandler for Insights<S> {
    async fn handle(&self, req: Request) -> Result<Response<Body>, lambda_http::Error> {
        serve_recorded(req, self.recorder.as_ref(), |req| self.respond(req)).await
    }
}

#[cfg(test)]
mod tests;
