//! The dashboard's one-call reads: the key metric cards (`GET /api/v1/metrics`) and the
//! summary of every section a role may see (`GET /api/v1/dashboard/summary`).
//!
//! Both read only metric totals ([`pulse_metrics::aggregate::TOTAL_SERIES`]), which the store
//! keeps in one partition per tenant and resolution: one Query of hourly (or daily) totals for
//! the range and the period before it, the open tail from 5-minute and 1-minute totals, and
//! one Query of the last 30 minutes: a handful of requests whatever the number of series.

use pulse_core::error::ApiError;
use pulse_core::identity::{Caller, Role};
use pulse_metrics::aggregate::{API_FAILED, Bucket, ML_COST, ML_FAILED};
use pulse_metrics::rollup::Resolution;
use pulse_metrics::sessions::{SESSION_SECONDS, SESSIONS};
use pulse_store::read::Reader;
use pulse_store::{RollupBuckets, SeriesCatalog, StoreError, Totals};
use pulse_views::{Figure, figure, ratio, rfc3339};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

type ByMetric = BTreeMap<String, Vec<(i64, Bucket)>>;
/// One figure of a section over a period.
type FigureFn<'a> = Box<dyn Fn(Period) -> Option<f64> + 'a>;

/// The cards a tenant sees by default, in order.
pub const DEFAULT_CARDS: &[&str] = &[
    "current_visitors",
    "page_views_today",
    "unique_visitors_today",
    "bounce_rate",
    "avg_session_duration",
    "api_error_rate",
];
/// Every card, with the role it needs.
const CARDS: &[(&str, Role)] = &[
    ("current_visitors", Role::Viewer),
    ("page_views_today", Role::Viewer),
    ("unique_visitors_today", Role::Viewer),
    ("bounce_rate", Role::Viewer),
    ("avg_session_duration", Role::Viewer),
    ("visits_today", Role::Viewer),
    ("api_error_rate", Role::Admin),
    ("api_p95_latency", Role::Admin),
    ("revenue_today", Role::Analyst),
    ("orders_today", Role::Analyst),
    ("ml_success_rate", Role::Admin),
];
/// Sections of the summary, with the role each needs.
pub const SECTIONS: &[(&str, Role)] = &[
    ("web", Role::Viewer),
    ("business", Role::Analyst),
    ("health", Role::Admin),
    ("ml", Role::Admin),
];

/// Refuses unknown card ids and lists longer than 12.
pub fn check_cards(ids: &[String]) -> Result<(), ApiError> {
    if ids.is_empty() || ids.len() > 12 {
        return Err(ApiError::invalid_field(&["cards"], "1 to 12 card ids"));
    }
    if let Some(id) = ids.iter().find(|id| !CARDS.iter().any(|(c, _)| c == id)) {
        let known: Vec<&str> = CARDS.iter().map(|(c, _)| *c).collect();
        return Err(ApiError::invalid_field(
            &["cards"],
            format!("unknown card {id:?}; one of {}", known.join(", ")),
        ));
    }
    Ok(())
}

const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;

/// Buckets of `metric` with start in `[from, to)` merged.
fn merged(data: &ByMetric, metric: &str, from: i64, to: i64) -> Bucket {
    let mut out = Bucket::default();
    for (s, b) in data.get(metric).into_iter().flatten() {
        if (from..to).contains(s) {
            out.merge(b);
        }
    }
    out
}

/// A range `[start, end)` of whole windows of `step` ending now, and the one before it.
#[derive(Debug, Clone, Copy)]
struct Period {
    start: i64,
    end: i64,
    step: i64,
}

impl Period {
    fn previous(self) -> Period {
        let len = self.end - self.start;
        Period {
            start: self.start - len,
            end: self.start,
            ..self
        }
    }
    /// The windows of the period (the last one open).
    fn windows(self) -> impl Iterator<Item = i64> {
        (self.start..self.end).step_by(self.step as usize)
    }
    fn json(self) -> Value {
        json!({"start": rfc3339(self.start), "end": rfc3339(self.end)})
    }
}

/// What the cards and the summary read: hourly totals of the last two days, the last 30
/// minutes by minute, and (for the summary's longer ranges) daily totals.
#[derive(Debug)]
pub struct Snapshot {
    now: i64,
    hours: ByMetric,
    minutes: ByMetric,
    days: Option<ByMetric>,
}

impl Snapshot {
    /// Reads what the cards and a summary of `range_days` (1, 7 or 30) need.
    /// Reads what the cards need: hourly totals of the last 49 hours and minute totals of
    /// the last 30 minutes.
    pub async fn for_cards<S: RollupBuckets + SeriesCatalog + Totals>(
        reader: &Reader<'_, S>,
    ) -> Result<Self, StoreError> {
        let now = reader.now;
        let hour = Resolution::Hour.window_start(now);
        let hours = reader
            .totals(Resolution::Hour, hour - 48 * HOUR, now + 1)
            .await?;
        let minute = Resolution::Minute.window_start(now);
        let minutes = reader
            .totals(Resolution::Minute, minute - 30 * 60, now + 1)
            .await?;
        Ok(Self {
            now,
            hours,
            minutes,
            days: None,
        })
    }

    /// Reads what a summary of `range_days` (1, 7 or 30) and the period before it need: the
    /// last 49 hours by hour for one day; for more, daily totals as rolled (no tail) and today
    /// (and yesterday, until its daily rollup is written) from hourly totals.
    pub async fn for_summary<S: RollupBuckets + SeriesCatalog + Totals>(
        reader: &Reader<'_, S>,
        range_days: i64,
    ) -> Result<Self, StoreError> {
        let now = reader.now;
        if range_days <= 1 {
            let hour = Resolution::Hour.window_start(now);
            let hours = reader
                .totals(Resolution::Hour, hour - 48 * HOUR, now + 1)
                .await?;
            return Ok(Self {
                now,
                hours,
                minutes: ByMetric::new(),
                days: None,
            });
        }
        let today = Resolution::Day.window_start(now);
        let mut days: ByMetric = ByMetric::new();
        for (metric, start, bucket) in reader
            .store
            .totals(
                reader.tenant,
                Resolution::Day,
                today - (2 * range_days - 1) * DAY,
                today,
                &[],
            )
            .await?
        {
            days.entry(metric).or_default().push((start, bucket));
        }
        let yesterday_rolled = days
            .values()
            .any(|b| b.iter().any(|(s, _)| *s == today - DAY));
        let from = if yesterday_rolled { today } else { today - DAY };
        let hours = reader.totals(Resolution::Hour, from, now + 1).await?;
        for (metric, buckets) in &hours {
            let into = days.entry(metric.clone()).or_default();
            for (start, b) in buckets {
                let day = Resolution::Day.window_start(*start);
                match into.iter_mut().find(|(s, _)| *s == day) {
                    Some((_, have)) if day == today || !yesterday_rolled => have.merge(b),
                    Some(_) => {}
                    None => into.push((day, b.clone())),
                }
            }
        }
        Ok(Self {
            now,
            hours: ByMetric::new(),
            minutes: ByMetric::new(),
            days: Some(days),
        })
    }

    /// The period of `range_days` ending now and its data: the last 24 hours by hour, or the
    /// last N days by day.
    fn period(&self, range_days: i64) -> (Period, &ByMetric) {
        match &self.days {
            Some(days) if range_days > 1 => {
                let today = Resolution::Day.window_start(self.now);
                (
                    Period {
                        start: today - (range_days - 1) * DAY,
                        end: self.now + 1,
                        step: DAY,
                    },
                    days,
                )
            }
            _ => {
                let hour = Resolution::Hour.window_start(self.now);
                (
                    Period {
                        start: hour - 23 * HOUR,
                        end: self.now + 1,
                        step: HOUR,
                    },
                    &self.hours,
                )
            }
        }
    }

    /// Today so far (UTC), and yesterday's whole hours before the same time.
    fn today(&self, metric: &str) -> (Bucket, Bucket) {
        let today = Resolution::Day.window_start(self.now);
        let hour = Resolution::Hour.window_start(self.now - DAY);
        (
            merged(&self.hours, metric, today, self.now + 1),
            merged(&self.hours, metric, today - DAY, hour),
        )
    }

    /// The current visitors' page views: the last five minutes, within today (UTC), so that
    /// "Current visitors" never exceeds "Unique visitors today" (just after midnight the last
    /// five minutes are partly yesterday's).
    fn current(&self) -> Bucket {
        let m = Resolution::Minute.window_start(self.now);
        let today = Resolution::Day.window_start(self.now);
        merged(&self.minutes, "page_view", (m - 4 * 60).max(today), m + 60)
    }

    fn card(&self, id: &str) -> Option<Value> {
        let hour = Resolution::Hour.window_start(self.now);
        let day = Period {
            start: hour - 23 * HOUR,
            end: self.now + 1,
            step: HOUR,
        };
        let today = Period {
            start: Resolution::Day.window_start(self.now),
            end: self.now + 1,
            step: HOUR,
        };
        let hourly =
            |metric: &str, p: Period, f: &dyn Fn(&Bucket) -> Option<f64>| -> Vec<Option<f64>> {
                p.windows()
                    .map(|w| f(&merged(&self.hours, metric, w, w + HOUR)))
                    .collect()
            };
        let (label, unit, period, fig, spark): (&str, &str, Period, Figure, Vec<Option<f64>>) =
            match id {
                "current_visitors" => {
                    let m = Resolution::Minute.window_start(self.now);
                    let now = self.current();
                    let before = merged(&self.minutes, "page_view", m - 9 * 60, m - 4 * 60);
                    let p = Period {
                        start: m - 29 * 60,
                        end: m + 60,
                        step: 60,
                    };
                    let spark = p
                        .windows()
                        .map(|w| {
                            Some(
                                merged(&self.minutes, "page_view", w, w + 60).unique_visitors()
                                    as f64,
                            )
                        })
                        .collect();
                    (
                        "Current visitors",
                        "visitors",
                        Period {
                            start: m - 4 * 60,
                            end: self.now + 1,
                            step: 60,
                        },
                        figure(
                            Some(now.unique_visitors() as f64),
                            Some(before.unique_visitors() as f64),
                        ),
                        spark,
                    )
                }
                "page_views_today"
                | "unique_visitors_today"
                | "visits_today"
                | "revenue_today"
                | "orders_today" => {
                    let (metric, label, unit) = match id {
                        "page_views_today" => ("page_view", "Pageviews today", "views"),
                        "unique_visitors_today" => {
                            ("page_view", "Unique visitors today", "visitors")
                        }
                        "visits_today" => (SESSIONS, "Visits today", "visits"),
                        "revenue_today" => ("order", "Revenue today", "currency"),
                        _ => ("order", "Orders today", "orders"),
                    };
                    let value = |b: &Bucket| match id {
                        "unique_visitors_today" => b.unique_visitors() as f64,
                        "revenue_today" => b.sum,
                        _ => b.count as f64,
                    };
                    let (mut now, full) = self.today(metric);
                    let mut floor = 0.0;
                    if id == "unique_visitors_today" {
                        // Today's visitors include the current ones: the same minute buckets
                        // merged in (a no-op for the visitor set, which holds them already,
                        // unless a live minute moved between the two reads), and a sketch's
                        // estimate of the superset kept at least the subset's.
                        let current = self.current();
                        now.merge(&current);
                        floor = current.unique_visitors() as f64;
                    }
                    let then = self.now - DAY;
                    let h = Resolution::Hour.window_start(then);
                    let partial = merged(&self.hours, metric, h, h + HOUR);
                    let fraction = (then - h) as f64 / HOUR as f64;
                    let before = if id == "unique_visitors_today" {
                        let mut all = full.clone();
                        all.merge(&partial);
                        value(&full) + (value(&all) - value(&full)) * fraction
                    } else {
                        value(&full) + value(&partial) * fraction
                    };
                    (
                        label,
                        unit,
                        today,
                        figure(Some(value(&now).max(floor)), Some(before)),
                        hourly(metric, today, &|b| Some(value(b))),
                    )
                }
                "bounce_rate" | "avg_session_duration" => {
                    let prev = day.previous();
                    let rate = |p: Period| {
                        let s = merged(&self.hours, SESSIONS, p.start, p.end);
                        if id == "bounce_rate" {
                            ratio(s.sum, s.count as f64)
                        } else {
                            let d = merged(&self.hours, SESSION_SECONDS, p.start, p.end);
                            ratio(d.sum, s.count as f64)
                        }
                    };
                    let spark = day
                        .windows()
                        .map(|w| {
                            rate(Period {
                                start: w,
                                end: w + HOUR,
                                step: HOUR,
                            })
                        })
                        .collect();
                    let (label, unit) = if id == "bounce_rate" {
                        ("Bounce rate", "ratio")
                    } else {
                        ("Average visit duration", "seconds")
                    };
                    (label, unit, day, figure(rate(day), rate(prev)), spark)
                }
                "api_error_rate" | "api_p95_latency" | "ml_success_rate" => {
                    let prev = day.previous();
                    let f = |p: Period| match id {
                        "api_error_rate" => ratio(
                            merged(&self.hours, API_FAILED, p.start, p.end).count as f64,
                            merged(&self.hours, "api_request", p.start, p.end).count as f64,
                        ),
                        "api_p95_latency" => {
                            merged(&self.hours, "api_request", p.start, p.end).quantile(0.95)
                        }
                        _ => {
                            let jobs = merged(&self.hours, "ml_job", p.start, p.end).count as f64;
                            let failed =
                                merged(&self.hours, ML_FAILED, p.start, p.end).count as f64;
                            ratio(jobs - failed, jobs)
                        }
                    };
                    let spark = day
                        .windows()
                        .map(|w| {
                            f(Period {
                                start: w,
                                end: w + HOUR,
                                step: HOUR,
                            })
                        })
                        .collect();
                    let (label, unit) = match id {
                        "api_error_rate" => ("API error rate", "ratio"),
                        "api_p95_latency" => ("API p95 latency", "ms"),
                        _ => ("ML success rate", "ratio"),
                    };
                    (label, unit, day, figure(f(day), f(prev)), spark)
                }
                _ => return None,
            };
        Some(json!({
            "id": id,
            "label": label,
            "unit": unit,
            "period": period.json(),
            "value": fig.value,
            "previous": fig.previous,
            "change": fig.change,
            "sparkline": spark,
        }))
    }

    /// The cards `ids` that `caller` may see.
    pub fn cards(&self, caller: &Caller, ids: &[String]) -> Result<Value, ApiError> {
        check_cards(ids)?;
        let out: Vec<Value> = ids
            .iter()
            .filter(|id| CARDS.iter().any(|(c, role)| c == id && caller.has(*role)))
            .filter_map(|id| self.card(id))
            .collect();
        Ok(json!({ "cards": out }))
    }

    /// The summary of `sections` over `range_days` (1, 7 or 30) for what `caller` may see.
    pub fn summary(&self, caller: &Caller, sections: &[&str], range_days: i64) -> Value {
        let (period, data) = self.period(range_days);
        let prev = period.previous();
        let m = |metric: &str, p: Period| merged(data, metric, p.start, p.end);
        let mut out = Map::new();
        for (section, role) in SECTIONS {
            if !sections.contains(section) || !caller.has(*role) {
                continue;
            }
            let figures: Vec<(&str, FigureFn<'_>)> = match *section {
                "web" => vec![
                    (
                        "visitors",
                        Box::new(|p| Some(m("page_view", p).unique_visitors() as f64)),
                    ),
                    (
                        "pageviews",
                        Box::new(|p| Some(m("page_view", p).count as f64)),
                    ),
                    ("visits", Box::new(|p| Some(m(SESSIONS, p).count as f64))),
                    (
                        "bounce_rate",
                        Box::new(|p| {
                            let s = m(SESSIONS, p);
                            ratio(s.sum, s.count as f64)
                        }),
                    ),
                    (
                        "visit_duration",
                        Box::new(|p| ratio(m(SESSION_SECONDS, p).sum, m(SESSIONS, p).count as f64)),
                    ),
                    (
                        "views_per_visit",
                        Box::new(|p| {
                            pulse_metrics::sessions::views_per_visit(
                                &m(SESSIONS, p),
                                &m(SESSION_SECONDS, p),
                            )
                        }),
                    ),
                ],
                "business" => vec![
                    ("revenue", Box::new(|p| Some(m("order", p).sum))),
                    ("orders", Box::new(|p| Some(m("order", p).count as f64))),
                    (
                        "average_order_value",
                        Box::new(|p| {
                            let o = m("order", p);
                            ratio(o.sum, o.count as f64)
                        }),
                    ),
                    (
                        "conversion_rate",
                        Box::new(|p| {
                            ratio(m("order", p).count as f64, m(SESSIONS, p).count as f64)
                        }),
                    ),
                ],
                "health" => vec![
                    (
                        "requests",
                        Box::new(|p| Some(m("api_request", p).count as f64)),
                    ),
                    (
                        "error_rate",
                        Box::new(|p| {
                            ratio(
                                m(API_FAILED, p).count as f64,
                                m("api_request", p).count as f64,
                            )
                        }),
                    ),
                    (
                        "p95_latency_ms",
                        Box::new(|p| m("api_request", p).quantile(0.95)),
                    ),
                    ("errors", Box::new(|p| Some(m("error", p).count as f64))),
                ],
                _ => vec![
                    ("jobs", Box::new(|p| Some(m("ml_job", p).count as f64))),
                    (
                        "success_rate",
                        Box::new(|p| {
                            let j = m("ml_job", p).count as f64;
                            ratio(j - m(ML_FAILED, p).count as f64, j)
                        }),
                    ),
                    (
                        "p95_duration_ms",
                        Box::new(|p| m("ml_job", p).quantile(0.95)),
                    ),
                    ("cost", Box::new(|p| Some(m(ML_COST, p).sum))),
                ],
            };
            let mut fields = Map::new();
            for (name, f) in &figures {
                fields.insert((*name).to_owned(), json!(figure(f(period), f(prev))));
            }
            let (first, f) = &figures[0];
            let spark: Vec<Option<f64>> = period
                .windows()
                .map(|w| {
                    f(Period {
                        start: w,
                        end: w + period.step,
                        step: period.step,
                    })
                })
                .collect();
            fields.insert("sparkline".into(), json!({ *first: spark }));
            out.insert((*section).to_owned(), Value::Object(fields));
        }
        json!({
            "range": period.json(),
            "interval": if period.step == DAY { "1d" } else { "1h" },
            "sections": out,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn visitors(names: impl IntoIterator<Item = String>) -> Bucket {
        let mut b = Bucket::default();
        for v in names {
            b.add(1.0, Some(&v));
        }
        b
    }

    fn card(s: &Snapshot, id: &str) -> Value {
        s.card(id).unwrap_or_else(|| panic!("no card {id}"))
    }

    /// Two minutes after midnight (UTC): 40 visitors in yesterday's last minutes, 3 today.
    fn after_midnight() -> Snapshot {
        let midnight = 1_800_057_600 / DAY * DAY;
        let yesterday = |n: usize| (0..n).map(|i| format!("y{i}"));
        let today = || (0..3).map(|i| format!("t{i}"));
        let minutes = ByMetric::from([(
            "page_view".to_owned(),
            vec![
                (midnight - 180, visitors(yesterday(20))),
                (midnight - 60, visitors(yesterday(40))),
                (midnight, visitors(today())),
                (midnight + 60, visitors(today().take(2))),
            ],
        )]);
        let hours = ByMetric::from([(
            "page_view".to_owned(),
            vec![
                (midnight - HOUR, visitors(yesterday(40))),
                (midnight, {
                    let mut b = visitors(today());
                    b.merge(&visitors(today().take(2)));
                    b
                }),
            ],
        )]);
        Snapshot {
            now: midnight + 120,
            hours,
            minutes,
            days: None,
        }
    }

    #[test]
    fn current_visitors_never_exceed_todays_unique_visitors_even_just_after_midnight() {
        // Given two minutes of today after a busy end of yesterday
        let s = after_midnight();
        // When the cards are computed
        let current = card(&s, "current_visitors")["value"].as_f64();
        let today = card(&s, "unique_visitors_today")["value"].as_f64();
        // Then the current visitors are today's three, not yesterday's forty with them
        assert_eq!(current, Some(3.0));
        assert_eq!(today, Some(3.0));
    }

    #[test]
    fn a_today_card_equals_the_sum_of_its_sparkline() {
        // Given today's page views by hour
        let s = after_midnight();
        // When the page views card is computed
        let c = card(&s, "page_views_today");
        // Then its value is the sum of the hourly points it draws
        let points: f64 = c["sparkline"]
            .as_array()
            .expect("sparkline")
            .iter()
            .filter_map(Value::as_f64)
            .sum();
        assert_eq!(c["value"].as_f64(), Some(points));
        assert_eq!(points, 5.0);
    }
}
