//! Insights from Pulse's models ([`pulse_models`], fitted by [`pulse_insights`]):
//! - `GET /api/v1/predictions/{metric}?days=7&aggregation=count[&series=tag=value,…]`: the
//!   metric's daily total (or the series' that `series` picks by its tags:
//!   [`pulse_metrics::insights::SeriesSelector`]) forecast for the next `days` (1–30) days,
//!   from today, with 80 % and 95 % intervals, the
//!   model that made it, its version, and how accurate it was on this metric's own past (a
//!   backtest over its last 8 weeks: MASE, 1 − MAPE, interval coverage). A fit made today
//!   (by the retrain job, or by an earlier request) is served as stored; otherwise the metric
//!   is fitted now and the fit stored for the rest of the day.
//! - `GET /api/v1/predictions/accuracy`: per metric (and series asked for) the latest fit's
//!   accuracy and its daily history, so drift is visible.
//! - `POST /api/v1/predictions/retrain` (admin): queues a refit of every metric of the tenant
//!   (202 with the job); `GET /api/v1/predictions/retrain/{job}` says where it is.
//! - `GET /api/v1/anomalies?metric=…&from=…&to=…&aggregation=count`: the metric's anomalous
//!   points in the range (hourly totals up to 7 days, daily beyond, at most 90 days), each with
//!   its score, expected value, usual band, severity and what fired, and the windows they open.
//!   `interval=1m` answers the minutes the job-detect found anomalous as they sealed (up to 7
//!   days back), with how many minutes of the range its detector has scored.
//!
//! The metric's role applies (business metrics need analyst, system metrics admin). A metric
//! with no data is a 404; one with under [`MIN_DAYS`] days of history a 422 saying how many it
//! has. A tenant that asks for predictions is refitted daily for the next
//! [`pulse_store::app::FORECAST_USE_DAYS`] days.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, RequestExt, Response};
use pulse_core::config::ClaimNames;
use pulse_core::identity::Caller;
use pulse_core::{ApiError, Config};
use pulse_http::selfmon::{RequestRecorder, serve_recorded};
use pulse_http::{FromRequest, HttpHandler, json};
use pulse_insights::FitError;
use pulse_metrics::insights::{
    AccuracyRecord, Aggregation, Fit, JobStatus, RetrainJob, SeriesSelector,
};
pub use pulse_metrics::insights::{MAX_HORIZON, MIN_DAYS};
use pulse_metrics::rollup::Resolution;
use pulse_store::app::DynamoApp;
use pulse_store::metrics::DynamoMetrics;
use pulse_store::queue::{RetrainQueue, RetrainRequest, SqsQueue};
use pulse_store::{
    AnomalyLog, DetectorStates, FitStore, FitWriter, ForecastTenants, RetrainJobs, RollupBuckets,
    SeriesCatalog, Totals,
};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The routes this crate serves (template.yaml routes them to this function, and a test
/// checks the two agree).
pub const ROUTES: &[&str] = &[
    "GET /api/v1/predictions/{metric}",
    "GET /api/v1/predictions/accuracy",
    "POST /api/v1/predictions/retrain",
    "GET /api/v1/predictions/retrain/{job}",
    "GET /api/v1/anomalies",
];

const DAY: i64 = 86_400;

/// The insights endpoints with the metrics they read, the fits they keep and the queue that
/// reaches the retrain job.
#[derive(Debug)]
pub struct Insights<S, A, Q> {
    metrics: S,
    fits: A,
    queue: Q,
    claims: ClaimNames,
    clock: fn() -> i64,
    recorder: Option<Arc<dyn RequestRecorder>>,
}

/// Builds the handler from the function's configuration, as `main` and the local cloud do.
/// Loads the forecaster's network now, so that its cost is the cold start's, not the first
/// request's.
pub fn wire(
    config: &Config,
    aws: &aws_config::SdkConfig,
) -> Insights<DynamoMetrics, DynamoApp, SqsQueue> {
    if pulse_models::forecast::neural::model().is_none() {
        tracing::error!("the forecaster's network did not load; forecasting without it");
    }
    Insights::new(
        DynamoMetrics::new(aws, &config.tables.metrics, config.retention),
        DynamoApp::new(aws, &config.tables.app),
        SqsQueue::new(
            aws,
            config.retrain_queue.as_deref().unwrap_or("RetrainQueue"),
        ),
        config.claims.clone(),
    )
    .recording(pulse_http::selfmon::recorder(config, aws))
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A prediction as the API answers it: a fit, cut to the days asked for.
#[derive(Debug, Serialize, PartialEq)]
pub struct Prediction<'a> {
    pub metric: &'a str,
    /// The series forecast (its tags, in canonical form), when one was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub series: Option<&'a str>,
    pub aggregation: &'static str,
    /// What made the forecast (an ensemble's members, or a fallback for a short history).
    pub model: &'a str,
    /// When it was fitted (ISO-8601 UTC).
    pub trained_at: &'a str,
    /// Counts this metric's fits: a retrain makes the next.
    pub version: u64,
    /// Days of history it learnt from.
    pub history_days: usize,
    /// The model's accuracy on this metric's own last weeks.
    pub accuracy: &'a pulse_metrics::insights::Accuracy,
    pub points: &'a [pulse_metrics::insights::ForecastPoint],
}

impl<'a> From<&'a Fit> for Prediction<'a> {
    fn from(f: &'a Fit) -> Self {
        Prediction {
            metric: &f.metric,
            series: f.series.as_deref(),
            aggregation: f.aggregation.name(),
            model: &f.model,
            trained_at: &f.trained_at,
            version: f.version,
            history_days: f.history_days,
            accuracy: &f.accuracy,
            points: &f.points,
        }
    }
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
    /// What fired: `new_level` (a value the series has never been at), `new_pattern` or
    /// `day_shape` (a third of a day unlike the same third of the last two weeks).
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

/// The longest range of anomalies found as minutes sealed.
const MINUTE_ANOMALY_DAYS: i64 = 7;

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
        let (mut metric, mut from, mut to, mut aggregation, mut interval) =
            (None, None, None, Aggregation::Count, None);
        let time = |k: &str, v: &str| {
            pulse_models::series::parse_time(v).ok_or_else(|| {
                ApiError::invalid_field(
                    &[k],
                    "must be an ISO-8601 time such as 2026-11-30T00:00:00Z",
                )
            })
        };
        let mut seen = std::collections::BTreeSet::new();
        for (k, v) in params.into_iter().flat_map(|p| p.iter()) {
            if !seen.insert(k) {
                return Err(ApiError::invalid_field(&[k], "is given more than once"));
            }
            match k {
                "metric" if !v.is_empty() => metric = Some(v.to_owned()),
                "from" => from = Some(time(k, v)?),
                "to" => to = Some(time(k, v)?),
                "aggregation" => aggregation = self::aggregation(v)?,
                "interval" => {
                    interval = Some(
                        Resolution::parse(v)
                            .filter(|r| *r != Resolution::FiveMinutes)
                            .ok_or_else(|| {
                                ApiError::invalid_field(&["interval"], "must be 1m, 1h or 1d")
                            })?,
                    );
                }
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
        metric_name("metric", &metric)?;
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
        let resolution = interval.unwrap_or(if to - from <= HOURLY_ANOMALY_DAYS * DAY {
            Resolution::Hour
        } else {
            Resolution::Day
        });
        if resolution == Resolution::Minute
            && (to - from > MINUTE_ANOMALY_DAYS * DAY || aggregation != Aggregation::Count)
        {
            return Err(ApiError::invalid_field(
                &["interval"],
                format!(
                    "anomalies by minute are of counts, over at most {MINUTE_ANOMALY_DAYS} days"
                ),
            ));
        }
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

fn aggregation(v: &str) -> Result<Aggregation, ApiError> {
    Aggregation::parse(v)
        .ok_or_else(|| ApiError::invalid_field(&["aggregation"], "must be count or sum"))
}

impl<S, A, Q> Insights<S, A, Q>
where
    S: Totals + SeriesCatalog + RollupBuckets,
    A: FitStore + FitWriter + RetrainJobs + ForecastTenants + DetectorStates + AnomalyLog,
    Q: RetrainQueue,
{
    pub fn new(metrics: S, fits: A, queue: Q, claims: ClaimNames) -> Self {
        Self {
            metrics,
            fits,
            queue,
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
            ["", "api", "v1", "predictions", "accuracy"] if req.method() == "GET" => {
                self.accuracy(&req).await
            }
            ["", "api", "v1", "predictions", "retrain"] if req.method() == "POST" => {
                self.retrain(&req).await
            }
            ["", "api", "v1", "predictions", "retrain", job] if req.method() == "GET" => {
                self.job(&req, job).await
            }
            ["", "api", "v1", "predictions", metric] if req.method() == "GET" => {
                let metric = percent_encoding::percent_decode_str(metric)
                    .decode_utf8()
                    .map_err(|_| ApiError::invalid_field(&["metric"], "must be UTF-8"))?
                    .into_owned();
                self.predict(&req, &metric).await
            }
            ["", "api", "v1", "anomalies"] if req.method() == "GET" => self.anomalies(&req).await,
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
            .totals(&caller.tenant, resolution, from, to, &[metric])
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
        use pulse_models::detect::shape::PARTS;
        use pulse_models::detect::{ALARM, Detector, Feature, WARMUP};
        let caller = Caller::from_request(req, &self.claims)?;
        let q = AnomalyQuery::parse(req, (self.clock)())?;
        caller.require(pulse_metrics::query::required_role(&q.metric))?;
        if q.resolution == Resolution::Minute {
            return self.sealed_anomalies(&caller, &q).await;
        }
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
        // Hours follow the shape of their days; days have none to follow.
        let day_rows = usize::try_from(DAY / step).unwrap_or(0);
        let mut detector = Detector::with_days(day_rows);
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
                // A day shape is about the part of the day the point ends: its mean, and the
                // part's hours as the incident (not extended hour by hour).
                let (first, band, points) = if s.feature == Feature::DayShape {
                    let part = i64::try_from(day_rows / PARTS).unwrap_or(1).max(1);
                    let band = (f64::NEG_INFINITY, f64::INFINITY);
                    (start - (part - 1) * step, band, part as usize)
                } else {
                    (*start, (s.low, s.high), 1)
                };
                found.push(Anomaly {
                    timestamp: pulse_models::series::format_time(*start),
                    value: s.observed,
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
                    start: first,
                    end: start + step,
                    peak_score: s.score,
                    points,
                    band,
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

    /// The anomalies job-detect found in the range as its minutes sealed, and how many minutes
    /// of it the metric's detector has scored (none: it has not seen the metric yet).
    async fn sealed_anomalies(
        &self,
        caller: &Caller,
        q: &AnomalyQuery,
    ) -> Result<Response<Body>, ApiError> {
        let (found, detectors) = tokio::join!(
            self.fits.recorded(&caller.tenant, &q.metric, q.from, q.to),
            self.fits.detectors(&caller.tenant)
        );
        let scored_through = detectors?
            .into_iter()
            .find(|d| d.metric == q.metric)
            .map(|d| d.last_minute + 60);
        let scored = scored_through.map_or(0, |end| ((end.min(q.to) - q.from) / 60).max(0));
        let anomalies: Vec<Anomaly> = found?
            .into_iter()
            .map(|a| Anomaly {
                timestamp: pulse_models::series::format_time(a.minute),
                value: a.value,
                score: a.score,
                expected: a.expected,
                low: a.low,
                high: a.high,
                severity: if a.score >= 0.9 {
                    "critical"
                } else {
                    "warning"
                },
                feature: match a.feature.as_str() {
                    "new_pattern" => "new_pattern",
                    "day_shape" => "day_shape",
                    _ => "new_level",
                },
            })
            .collect();
        let windows: Vec<serde_json::Value> = anomalies
            .iter()
            .map(|a| {
                let minute = pulse_models::series::parse_time(&a.timestamp).unwrap_or(q.from);
                // A day shape's window is the part of the day its minute ends.
                let points = if a.feature == "day_shape" {
                    1_440 / pulse_models::detect::shape::PARTS as i64
                } else {
                    1
                };
                serde_json::json!({
                    "start": pulse_models::series::format_time(minute - (points - 1) * 60),
                    "end": pulse_models::series::format_time(minute + 60),
                    "peak_score": a.score,
                    "points": points,
                })
            })
            .collect();
        Ok(json(
            StatusCode::OK,
            &serde_json::json!({
                "metric": q.metric,
                "aggregation": q.aggregation.name(),
                "interval": "1m",
                "range": {
                    "start": pulse_models::series::format_time(q.from),
                    "end": pulse_models::series::format_time(q.to),
                },
                "points_scored": scored,
                "threshold": pulse_models::detect::ALARM,
                "anomalies": anomalies,
                "windows": windows,
            }),
        ))
    }

    async fn predict(&self, req: &Request, metric: &str) -> Result<Response<Body>, ApiError> {
        let caller = Caller::from_request(req, &self.claims)?;
        metric_name("metric", metric)?;
        caller.require(pulse_metrics::query::required_role(metric))?;
        let (days, aggregation, series) = parameters(req)?;
        let named = series.as_ref().map(ToString::to_string);
        let now = (self.clock)();
        let (stored, noted) = tokio::join!(
            self.fits
                .fit(&caller.tenant, metric, named.as_deref(), aggregation, days),
            self.fits.note_use(&caller.tenant)
        );
        if let Err(e) = noted {
            // The daily retrain may miss this tenant; the prediction itself is unharmed.
            tracing::warn!(tenant = %caller.tenant, error = %e, "forecast use not noted");
        }
        let fit = match stored? {
            Some(fit) if fit.is_current(now) => fit,
            _ => {
                let today = now.div_euclid(DAY) * DAY;
                let history = match &series {
                    Some(s) => {
                        pulse_insights::series_history(
                            &self.metrics,
                            &caller.tenant,
                            metric,
                            s,
                            today,
                        )
                        .await?
                    }
                    None => pulse_insights::history(&self.metrics, &caller.tenant, today).await?,
                };
                let fit =
                    pulse_insights::fit(&history, metric, series.as_ref(), aggregation, days, now)
                        .map_err(fit_error)?;
                self.fits.put_fit(&caller.tenant, &fit).await?
            }
        };
        tracing::info!(tenant = %caller.tenant, metric, series = named.as_deref().unwrap_or(""), days, version = fit.version, model = %fit.model, "prediction answered");
        Ok(json(StatusCode::OK, &Prediction::from(&fit)))
    }

    /// `GET /api/v1/predictions/accuracy`: per metric and aggregation the caller may read, the
    /// latest measured accuracy and the history of it, oldest first.
    async fn accuracy(&self, req: &Request) -> Result<Response<Body>, ApiError> {
        let caller = Caller::from_request(req, &self.claims)?;
        if let Some(k) = req
            .query_string_parameters_ref()
            .and_then(|p| p.iter().next().map(|(k, _)| k.to_owned()))
        {
            return Err(ApiError::invalid_field(
                &[k.as_str()],
                "is not a parameter of this route",
            ));
        }
        let mut by_metric: BTreeMap<(String, Option<String>, Aggregation), Vec<AccuracyRecord>> =
            BTreeMap::new();
        for r in self.fits.accuracy_history(&caller.tenant).await? {
            if caller
                .require(pulse_metrics::query::required_role(&r.metric))
                .is_ok()
            {
                by_metric
                    .entry((r.metric.clone(), r.series.clone(), r.aggregation))
                    .or_default()
                    .push(r);
            }
        }
        let metrics: Vec<serde_json::Value> = by_metric
            .into_values()
            .map(|mut history| {
                history.sort_by(|a, b| a.date.cmp(&b.date));
                let latest = history.last().cloned();
                let mut entry = serde_json::json!({
                    "metric": latest.as_ref().map(|r| r.metric.clone()),
                    "aggregation": latest.as_ref().map(|r| r.aggregation.name()),
                    "latest": latest,
                    "history": history,
                });
                if let Some(series) = latest.and_then(|r| r.series) {
                    entry["series"] = series.into();
                }
                entry
            })
            .collect();
        Ok(json(
            StatusCode::OK,
            &serde_json::json!({ "metrics": metrics }),
        ))
    }

    /// `POST /api/v1/predictions/retrain` (admin): a queued job, answered 202 with where to
    /// follow it.
    async fn retrain(&self, req: &Request) -> Result<Response<Body>, ApiError> {
        let caller = Caller::from_request(req, &self.claims)?;
        caller.require(pulse_core::identity::Role::Admin)?;
        let now = (self.clock)();
        // A retrain asked while one is still waiting or running is that one: a burst of
        // requests refits once. One stuck past RETRAIN_PENDING_SECS is asked again.
        if let Some(pending) = self.fits.latest_job(&caller.tenant).await?
            && matches!(pending.status, JobStatus::Queued | JobStatus::Running)
            && pulse_models::series::parse_time(&pending.requested_at)
                .is_some_and(|at| now - at < RETRAIN_PENDING_SECS)
        {
            return Ok(accepted(&pending));
        }
        let job = RetrainJob {
            id: job_id(now),
            tenant: caller.tenant.clone(),
            status: JobStatus::Queued,
            requested_at: pulse_models::series::format_time(now),
            finished_at: None,
            fitted: Vec::new(),
            skipped: Vec::new(),
            error: None,
        };
        self.fits.put_job(&job).await?;
        self.queue
            .request(&RetrainRequest {
                tenant: caller.tenant.clone(),
                job: job.id.clone(),
            })
            .await?;
        if let Err(e) = self.fits.note_use(&caller.tenant).await {
            tracing::warn!(tenant = %caller.tenant, error = %e, "forecast use not noted");
        }
        tracing::info!(tenant = %caller.tenant, job = %job.id, "retrain queued");
        Ok(accepted(&job))
    }

    /// `GET /api/v1/predictions/retrain/{job}`: the caller's tenant's job (another tenant's is
    /// as unknown as a made-up one).
    async fn job(&self, req: &Request, id: &str) -> Result<Response<Body>, ApiError> {
        let caller = Caller::from_request(req, &self.claims)?;
        caller.require(pulse_core::identity::Role::Admin)?;
        // Only what `job_id` makes is looked up (and echoed).
        let shaped =
            (1..=40).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
        match shaped {
            true => match self.fits.job(&caller.tenant, id).await? {
                Some(job) => Ok(json(StatusCode::OK, &job)),
                None => Err(ApiError::NotFound(format!("no retrain job {id}"))),
            },
            false => Err(ApiError::NotFound("no such retrain job".into())),
        }
    }
}

/// Refuses what cannot be a metric's name (as ingest names them) before it reaches a key.
fn metric_name(field: &str, name: &str) -> Result<(), ApiError> {
    pulse_ingest::events::check_name(name, MAX_METRIC_NAME)
        .map_err(|why| ApiError::invalid_field(&[field], format!("is not a metric name: {why}")))
}

/// The longest metric name looked up (ingest's default limit is 128; it may be raised).
const MAX_METRIC_NAME: usize = 256;

/// How long a queued or running retrain stands for the next request.
const RETRAIN_PENDING_SECS: i64 = 15 * 60;

/// 202 with `job` and where to follow it.
fn accepted(job: &RetrainJob) -> Response<Body> {
    let mut res = json(StatusCode::ACCEPTED, job);
    if let Ok(v) = format!("/api/v1/predictions/retrain/{}", job.id).parse() {
        res.headers_mut().insert("location", v);
    }
    res
}

/// A job id: when it was asked (sortable: 8 hex digits of epoch seconds until 2106) and a
/// random part.
fn job_id(now: i64) -> String {
    format!("{now:08x}-{:08x}", fastrand::u32(..))
}

/// What a client is told when a metric cannot be fitted.
fn fit_error(e: FitError) -> ApiError {
    match e {
        FitError::NoData { .. } => ApiError::NotFound(e.to_string()),
        FitError::TooShort { .. } => ApiError::Unprocessable(e.to_string()),
        FitError::Model(m) => ApiError::Unprocessable(m.to_string()),
        FitError::Store(s) => s.into(),
    }
}

/// `days` (1–30, default 7), `aggregation` (`count`, default, or `sum`) and `series` (tags
/// that pick a series, [`SeriesSelector`]), each at most once; any other parameter is refused
/// by name.
fn parameters(req: &Request) -> Result<(usize, Aggregation, Option<SeriesSelector>), ApiError> {
    let params = req.query_string_parameters_ref();
    let mut days = 7;
    let mut aggregation = Aggregation::Count;
    let mut series = None;
    let mut seen = std::collections::BTreeSet::new();
    for (k, v) in params.into_iter().flat_map(|p| p.iter()) {
        if !seen.insert(k) {
            // Which of two values was meant cannot be known; answering one would hide that.
            return Err(ApiError::invalid_field(&[k], "is given more than once"));
        }
        match k {
            "days" => {
                days = v
                    .parse::<usize>()
                    .ok()
                    .filter(|d| (1..=MAX_HORIZON).contains(d))
                    .ok_or_else(|| {
                        ApiError::invalid_field(
                            &["days"],
                            "must be a whole number of days from 1 to 30",
                        )
                    })?;
            }
            "aggregation" => aggregation = self::aggregation(v)?,
            "series" => {
                series = Some(SeriesSelector::parse(v).map_err(|why| {
                    ApiError::invalid_field(
                        &["series"],
                        format!("must be tag=value pairs joined by commas: {why}"),
                    )
                })?);
            }
            other => {
                return Err(ApiError::invalid_field(
                    &[other],
                    "is not a parameter of this route",
                ));
            }
        }
    }
    Ok((days, aggregation, series))
}

impl<S, A, Q> HttpHandler for Insights<S, A, Q>
where
    S: Totals + SeriesCatalog + RollupBuckets + 'static,
    A: FitStore + FitWriter + RetrainJobs + ForecastTenants + DetectorStates + AnomalyLog + 'static,
    Q: RetrainQueue + 'static,
{
    async fn handle(&self, req: Request) -> Result<Response<Body>, lambda_http::Error> {
        serve_recorded(req, self.recorder.as_ref(), |req| self.respond(req)).await
    }
}

#[cfg(test)]
mod tests;
