//! Insights from Pulse's models ([`pulse_models`]):
//! - `GET /api/v1/predictions/{metric}?days=7&aggregation=count`: the metric's daily total
//!   forecast for the next `days` (1–30) days, from today, with 80 % and 95 % intervals, the
//!   model that made it, and how accurate that model was on this metric's own past (a backtest
//!   over its last 8 weeks: MASE, 1 − MAPE, interval coverage).
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
pub const ROUTES: &[&str] = &["GET /api/v1/predictions/{metric}"];

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

/// Which daily figure of a metric is forecast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Aggregation {
    Count,
    Sum,
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
            _ => Err(ApiError::NotFound(format!("no route {path}"))),
        }
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
            aggregation: match aggregation {
                Aggregation::Count => "count",
                Aggregation::Sum => "sum",
            },
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
            "aggregation" => {
                aggregation = match v {
                    "count" => Aggregation::Count,
                    "sum" => Aggregation::Sum,
                    _ => {
                        return Err(ApiError::invalid_field(
                            &["aggregation"],
                            "must be count or sum",
                        ));
                    }
                };
            }
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
