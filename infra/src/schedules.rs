//! Fires template.yaml's `Schedule` / `ScheduleV2` events as EventBridge would: `rate(...)`
//! and six-field `cron(...)` expressions (UTC), each firing invoking the function with a
//! "Scheduled Event" (or the event's `Input`).
//!
//! Expressions the local cloud cannot honour exactly (`L`, `W`, `#` in cron) are refused at
//! start rather than fired at the wrong time.

use crate::functions::Invoke;
use crate::template::{ACCOUNT, REGION, Schedule};
use chrono::{DateTime, Datelike, Duration as ChronoDuration, Timelike, Utc};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// When a schedule fires.
#[derive(Debug, Clone, PartialEq)]
pub enum Expression {
    Rate(Duration),
    Cron(Box<Cron>),
}

/// A cron expression: each field the set of values it allows (`None` for any).
#[derive(Debug, Clone, PartialEq)]
pub struct Cron {
    minutes: Option<BTreeSet<u32>>,
    hours: Option<BTreeSet<u32>>,
    days: Option<BTreeSet<u32>>,
    months: Option<BTreeSet<u32>>,
    weekdays: Option<BTreeSet<u32>>,
    years: Option<BTreeSet<u32>>,
}

/// Parses an EventBridge schedule expression.
pub fn parse(expression: &str) -> Result<Expression, String> {
    let expression = expression.trim();
    if let Some(inner) = expression
        .strip_prefix("rate(")
        .and_then(|s| s.strip_suffix(')'))
    {
        let (n, unit) = inner
            .trim()
            .split_once(' ')
            .ok_or_else(|| format!("{expression}: rate(N unit)"))?;
        let n: u64 = n
            .parse()
            .map_err(|_| format!("{expression}: N must be a positive integer"))?;
        let secs = match unit.trim() {
            "minute" | "minutes" => 60,
            "hour" | "hours" => 3600,
            "day" | "days" => 86_400,
            other => return Err(format!("{expression}: unknown unit {other}")),
        };
        if n == 0 {
            return Err(format!("{expression}: N must be at least 1"));
        }
        return Ok(Expression::Rate(Duration::from_secs(n * secs)));
    }
    if let Some(inner) = expression
        .strip_prefix("cron(")
        .and_then(|s| s.strip_suffix(')'))
    {
        let fields: Vec<&str> = inner.split_whitespace().collect();
        let [min, hour, dom, month, dow, year] = fields.as_slice() else {
            return Err(format!("{expression}: cron takes six fields"));
        };
        const MONTHS: &[&str] = &[
            "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
        ];
        const DAYS: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
        return Ok(Expression::Cron(Box::new(Cron {
            minutes: field(min, 0, 59, &[])?,
            hours: field(hour, 0, 23, &[])?,
            days: field(dom, 1, 31, &[])?,
            months: field(month, 1, 12, MONTHS)?,
            weekdays: field(dow, 1, 7, DAYS)?,
            years: field(year, 1970, 2199, &[])?,
        })));
    }
    Err(format!("{expression}: not a rate() or cron() expression"))
}

/// One cron field: `*`, `?`, values, names, `a-b` ranges, `/step`, comma lists.
fn field(text: &str, lo: u32, hi: u32, names: &[&str]) -> Result<Option<BTreeSet<u32>>, String> {
    if text == "*" || text == "?" {
        return Ok(None);
    }
    let value = |s: &str| -> Result<u32, String> {
        names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(s))
            .map(|i| i as u32 + lo)
            .or_else(|| s.parse().ok())
            .filter(|v| (lo..=hi).contains(v))
            .ok_or_else(|| {
                format!("cron field {text}: {s} is not in {lo}-{hi} (L, W and # are not emulated)")
            })
    };
    let mut out = BTreeSet::new();
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .map_err(|_| format!("cron step {s}"))?
                    .max(1),
            ),
            None => (part, 1),
        };
        let (a, b) = match range {
            "*" => (lo, hi),
            r => match r.split_once('-') {
                Some((a, b)) => (value(a)?, value(b)?),
                None if step > 1 => (value(r)?, hi),
                None => (value(r)?, value(r)?),
            },
        };
        out.extend((a..=b).step_by(step as usize));
    }
    Ok(Some(out))
}

impl Cron {
    fn matches(&self, t: DateTime<Utc>) -> bool {
        let ok = |f: &Option<BTreeSet<u32>>, v: u32| f.as_ref().is_none_or(|s| s.contains(&v));
        ok(&self.minutes, t.minute())
            && ok(&self.hours, t.hour())
            && ok(&self.days, t.day())
            && ok(&self.months, t.month())
            && ok(&self.weekdays, t.weekday().number_from_sunday())
            && ok(&self.years, u32::try_from(t.year()).unwrap_or(0))
    }
}

impl Expression {
    /// The first firing strictly after `after`, for a schedule created at `created`.
    pub fn next_after(
        &self,
        created: DateTime<Utc>,
        after: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        match self {
            Expression::Rate(every) => {
                let every = ChronoDuration::from_std(*every).ok()?;
                let elapsed = after - created;
                let periods = elapsed
                    .num_milliseconds()
                    .div_euclid(every.num_milliseconds())
                    + 1;
                Some(created + every * i32::try_from(periods).ok()?)
            }
            Expression::Cron(cron) => {
                let mut t = after.with_second(0)?.with_nanosecond(0)? + ChronoDuration::minutes(1);
                // Five years of minutes bounds the search for expressions that never fire.
                for _ in 0..(5 * 366 * 24 * 60) {
                    if cron.matches(t) {
                        return Some(t);
                    }
                    t += ChronoDuration::minutes(1);
                }
                None
            }
        }
    }
}

/// The event a firing sends: the schedule's `Input`, or EventBridge's scheduled event.
pub fn event(schedule: &Schedule, at: DateTime<Utc>) -> Value {
    if let Some(input) = schedule
        .input
        .as_deref()
        .and_then(|i| serde_json::from_str(i).ok())
    {
        return input;
    }
    json!({
        "version": "0",
        "id": uuid::Uuid::new_v4().to_string(),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "region": REGION,
        "resources": [format!("arn:aws:events:{REGION}:{ACCOUNT}:rule/{}-{}", schedule.function, schedule.name)],
        "detail": {},
    })
}

/// Runs every schedule until `shutdown` turns true.
pub fn spawn(
    entries: Vec<(Schedule, Expression, Invoke)>,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        if entries.is_empty() {
            return;
        }
        let created = Utc::now();
        let mut next: Vec<Option<DateTime<Utc>>> = entries
            .iter()
            .map(|(_, e, _)| e.next_after(created, created))
            .collect();
        loop {
            let Some(due) = next.iter().flatten().min().copied() else {
                return;
            };
            let wait = (due - Utc::now()).to_std().unwrap_or(Duration::ZERO);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
            for (i, (schedule, expression, invoke)) in entries.iter().enumerate() {
                if next[i] != Some(due) {
                    continue;
                }
                let (invoke, schedule_name) = (
                    invoke.clone(),
                    format!("{}.{}", schedule.function, schedule.name),
                );
                let payload = event(schedule, due);
                tokio::spawn(async move {
                    match invoke(payload).await {
                        Ok(_) => {}
                        // EventBridge would retry later; the next tick does the same work.
                        Err(crate::functions::InvokeError::Throttled) => {
                            tracing::info!(schedule = %schedule_name, "previous run still going; tick throttled");
                        }
                        Err(e) => {
                            tracing::error!(schedule = %schedule_name, error = %e, "scheduled invocation failed");
                        }
                    }
                });
                next[i] = expression.next_after(created, due);
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .expect("valid time")
    }

    #[test]
    fn rate_fires_every_period_from_creation() {
        let e = parse("rate(5 minutes)").expect("rate");
        let created = at(2026, 11, 22, 10, 0);
        assert_eq!(
            e.next_after(created, created),
            Some(at(2026, 11, 22, 10, 5))
        );
        assert_eq!(
            e.next_after(created, at(2026, 11, 22, 10, 5)),
            Some(at(2026, 11, 22, 10, 10))
        );
        assert!(parse("rate(0 minutes)").is_err());
        assert!(parse("rate(1 fortnight)").is_err());
    }

    #[test]
    fn cron_follows_eventbridge_fields() {
        // Every 15 minutes during 9-17 on weekdays (MON-FRI = 2-6, Sunday is 1).
        let e = parse("cron(0/15 9-17 ? * MON-FRI *)").expect("cron");
        // Sunday 2026-11-22 18:00 → Monday 09:00.
        assert_eq!(
            e.next_after(at(2026, 11, 22, 18, 0), at(2026, 11, 22, 18, 0)),
            Some(at(2026, 11, 23, 9, 0))
        );
        assert_eq!(
            e.next_after(at(2026, 11, 23, 9, 0), at(2026, 11, 23, 9, 0)),
            Some(at(2026, 11, 23, 9, 15))
        );
        let summer = parse("cron(0 12 1 JUN-JUL ? *)").expect("month names in a range");
        assert_eq!(
            summer.next_after(at(2026, 11, 22, 0, 0), at(2026, 11, 22, 0, 0)),
            Some(at(2027, 6, 1, 12, 0))
        );
        let daily = parse("cron(30 2 * * ? *)").expect("daily");
        assert_eq!(
            daily.next_after(at(2026, 11, 22, 3, 0), at(2026, 11, 22, 3, 0)),
            Some(at(2026, 11, 23, 2, 30))
        );
    }

    #[test]
    fn unsupported_cron_features_are_refused() {
        assert!(parse("cron(0 0 L * ? *)").is_err());
        assert!(parse("cron(0 0 ? * 6#3 *)").is_err());
        assert!(parse("cron(0 0 * *)").is_err());
        assert!(parse("cron(61 0 * * ? *)").is_err());
    }

    #[test]
    fn the_event_is_eventbridges_scheduled_event_or_the_input() {
        let s = Schedule {
            function: "RollupFunction".into(),
            name: "EveryMinute".into(),
            expression: "rate(1 minute)".into(),
            input: None,
        };
        let e = event(&s, at(2026, 11, 22, 10, 0));
        assert_eq!(e["detail-type"], "Scheduled Event");
        assert_eq!(e["time"], "2026-11-22T10:00:00Z");
        let with_input = Schedule {
            input: Some(r#"{"job":"seal"}"#.into()),
            ..s
        };
        assert_eq!(event(&with_input, Utc::now())["job"], "seal");
    }
}
