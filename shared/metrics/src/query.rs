//! Metric queries (`POST /api/v1/metrics/query`): parsing a request into a [`Query`], choosing
//! the resolution, and computing points from rollup buckets.
//!
//! The request keeps seed spec 001's contract (`metric_name`, `time_range {start, end}`,
//! `aggregation`, `group_by`, `filters`; answer `{"data": [{timestamp, value, tags}]}`) and
//! extends it: relative ranges (`"24h"`, `"7d"`), several `aggregations` at once (adding
//! `p50`, `rate` and `uniques`), an `interval` (`1m`, `5m`, `1h`, `1d` or `auto`), filters
//! `eq`/`neq`/`in`/`prefix`, `limit` (top-k groups by their total), and `compare_to`
//! (`previous_period`: the range of the same length just before; `previous_year`: the same
//! range 52 weeks earlier, so weekdays line up).
//!
//! `auto` picks the finest resolution that covers the range in at most [`MAX_POINTS`] points
//! and is still kept for the range's start; an explicit interval finer than that is refused.

use crate::aggregate::Bucket;
use crate::rollup::{Resolution, Retention};
use pulse_core::error::ApiError;
use pulse_core::problem::FieldError;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Points per series at most.
pub const MAX_POINTS: i64 = 1_500;
/// Groups a query may ask for.
pub const MAX_GROUPS: usize = 100;
/// Groups when `limit` is not given.
pub const DEFAULT_GROUPS: usize = 10;

pub use crate::aggregation::Aggregation;

/// A tag filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    Eq(String, String),
    Neq(String, String),
    In(String, BTreeSet<String>),
    Prefix(String, String),
}

/// The value of tag `k` in a series' `tags`. The series that tag sets past a metric's cap fold
/// into ([`crate::aggregate::OTHER_SERIES`], listed with the tag [`FOLDED`]) reads
/// `__other__` for every tag: a `group_by` labels it as the folded series, and a filter
/// selects it with `__other__` (an equality on a real value never matches it, a `neq` does).
pub fn tag<'a>(tags: &'a BTreeMap<String, String>, k: &str) -> &'a str {
    if tags.contains_key(FOLDED) {
        crate::aggregate::OTHER_SERIES
    } else {
        tags.get(k).map(String::as_str).unwrap_or("")
    }
}

/// The tag the store lists the folded series with (no real tag key starts with `__`).
pub const FOLDED: &str = "__folded__";

impl Filter {
    /// The tag it filters on.
    pub fn tag(&self) -> &str {
        match self {
            Filter::Eq(k, _) | Filter::Neq(k, _) | Filter::In(k, _) | Filter::Prefix(k, _) => k,
        }
    }

    pub fn matches(&self, tags: &BTreeMap<String, String>) -> bool {
        let get = |k: &str| tag(tags, k);
        match self {
            Filter::Eq(k, v) => get(k) == v,
            Filter::Neq(k, v) => get(k) != v,
            Filter::In(k, vs) => vs.contains(get(k)),
            Filter::Prefix(k, p) => get(k).starts_with(p.as_str()),
        }
    }
}

/// What a query's answer is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    PreviousPeriod,
    PreviousYear,
}

/// 52 weeks: a year earlier on the same weekday.
const YEAR_SECS: i64 = 364 * 86_400;

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub metric: String,
    /// Epoch s, aligned down to the resolution.
    pub start: i64,
    /// Epoch s, exclusive.
    pub end: i64,
    pub aggregations: Vec<Aggregation>,
    pub resolution: Resolution,
    pub group_by: Vec<String>,
    pub filters: Vec<Filter>,
    pub limit: usize,
    pub compare: Option<Compare>,
    /// Points are ISO weeks (Monday 00:00 UTC) merged from daily buckets (`interval: 1w`).
    pub weekly: bool,
}

/// The Monday 00:00 UTC (epoch s) of the week holding `epoch_secs`.
pub fn week_start(epoch_secs: i64) -> i64 {
    let day = epoch_secs.div_euclid(86_400);
    // 1970-01-01 was a Thursday: three days after a Monday.
    (day - (day + 3).rem_euclid(7)) * 86_400
}

impl Query {
    /// The same query over the range it is compared with.
    pub fn comparison(&self) -> Option<Query> {
        let shift = match self.compare? {
            Compare::PreviousPeriod => self.end - self.start,
            Compare::PreviousYear => YEAR_SECS,
        };
        let start = self.resolution.window_start(self.start - shift);
        Some(Query {
            start: if self.weekly {
                week_start(start)
            } else {
                start
            },
            end: self.end - shift,
            compare: None,
            ..self.clone()
        })
    }
}

pub use pulse_core::time::relative;

fn timestamp(v: &Value) -> Option<i64> {
    match v {
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.timestamp()),
        Value::Number(n) => n.as_i64().map(|ms| ms.div_euclid(1000)),
        _ => None,
    }
}

/// Parses a query body at `now` (epoch s); every problem is listed by pointer.
pub fn parse(body: &Value, now: i64, retention: &Retention) -> Result<Query, ApiError> {
    let mut errors = Vec::new();
    let Some(obj) = body.as_object() else {
        return Err(ApiError::invalid_field::<&str>(
            &[],
            "a query is a JSON object",
        ));
    };
    const FIELDS: &[&str] = &[
        "metric_name",
        "time_range",
        "aggregation",
        "aggregations",
        "interval",
        "group_by",
        "filters",
        "limit",
        "compare_to",
    ];
    for k in obj.keys().filter(|k| !FIELDS.contains(&k.as_str())) {
        errors.push(FieldError::at(&[k.as_str()], "unknown field"));
    }
    let metric = match obj.get("metric_name").and_then(Value::as_str) {
        Some(m) if !m.is_empty() && m.len() <= 128 => m.to_owned(),
        _ => {
            errors.push(FieldError::at(&["metric_name"], "required: a metric name"));
            String::new()
        }
    };
    let (start, end) = match obj.get("time_range") {
        Some(Value::String(r)) => match relative(r) {
            Some(len) => (Some(now - len), Some(now)),
            None => {
                errors.push(FieldError::at(
                    &["time_range"],
                    "a relative range such as \"1h\", \"24h\", \"7d\", or {start, end}",
                ));
                (None, None)
            }
        },
        Some(Value::Object(r)) => {
            let start = r.get("start").and_then(timestamp);
            let end = r.get("end").map_or(Some(now), timestamp);
            if start.is_none() {
                errors.push(FieldError::at(
                    &["time_range", "start"],
                    "required: RFC 3339 or epoch milliseconds",
                ));
            }
            if end.is_none() {
                errors.push(FieldError::at(
                    &["time_range", "end"],
                    "RFC 3339 or epoch milliseconds",
                ));
            }
            (start, end)
        }
        _ => {
            errors.push(FieldError::at(
                &["time_range"],
                "required: {\"start\", \"end\"} or a relative range such as \"24h\"",
            ));
            (None, None)
        }
    };
    if let (Some(s), Some(e)) = (start, end) {
        if e <= s {
            errors.push(FieldError::at(
                &["time_range", "end"],
                "the end is not after the start",
            ));
        } else if s < now - retention.days(Resolution::Day) * 86_400 {
            errors.push(FieldError::at(
                &["time_range", "start"],
                format!(
                    "beyond retention: data is kept {} days",
                    retention.days(Resolution::Day)
                ),
            ));
        }
    }
    let mut aggregations = Vec::new();
    let named: Vec<(Vec<String>, &Value)> = match (obj.get("aggregations"), obj.get("aggregation"))
    {
        (Some(Value::Array(list)), _) => list
            .iter()
            .enumerate()
            .map(|(i, v)| (vec!["aggregations".to_owned(), i.to_string()], v))
            .collect(),
        (Some(_), _) => {
            errors.push(FieldError::at(
                &["aggregations"],
                "an array of aggregation names",
            ));
            Vec::new()
        }
        (None, Some(v)) => vec![(vec!["aggregation".to_owned()], v)],
        (None, None) => Vec::new(),
    };
    for (path, v) in named {
        match v.as_str().and_then(Aggregation::parse) {
            Some(a) if !aggregations.contains(&a) => aggregations.push(a),
            Some(_) => {}
            None => errors.push(FieldError::at(
                &path,
                format!(
                    "one of {}",
                    Aggregation::ALL.map(Aggregation::as_str).join(", ")
                ),
            )),
        }
    }
    if aggregations.is_empty()
        && !errors
            .iter()
            .any(|e| e.pointer.starts_with("#/aggregation"))
    {
        aggregations.push(Aggregation::Avg);
    }
    let group_by: Vec<String> = match obj.get("group_by") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(list)) if list.iter().all(Value::is_string) && list.len() <= 5 => list
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Some(_) => {
            errors.push(FieldError::at(
                &["group_by"],
                "a tag name or up to 5 tag names",
            ));
            Vec::new()
        }
    };
    let filters = parse_filters(obj.get("filters"), &mut errors);
    let limit = match obj.get("limit") {
        None | Some(Value::Null) => DEFAULT_GROUPS,
        Some(v) => match v.as_u64() {
            Some(n) if (1..=MAX_GROUPS as u64).contains(&n) => n as usize,
            _ => {
                errors.push(FieldError::at(
                    &["limit"],
                    format!("too many series: 1 to {MAX_GROUPS}"),
                ));
                DEFAULT_GROUPS
            }
        },
    };
    let compare = match obj.get("compare_to") {
        None | Some(Value::Null) => None,
        Some(Value::String(c)) if c == "previous_period" => Some(Compare::PreviousPeriod),
        Some(Value::String(c)) if c == "previous_year" => Some(Compare::PreviousYear),
        Some(_) => {
            errors.push(FieldError::at(
                &["compare_to"],
                "one of previous_period, previous_year",
            ));
            None
        }
    };
    if let (Some(c), Some(s), Some(e)) = (compare, start, end) {
        let earliest = match c {
            Compare::PreviousPeriod => s - (e - s),
            Compare::PreviousYear => s - YEAR_SECS,
        };
        if earliest < now - retention.days(Resolution::Day) * 86_400 {
            errors.push(FieldError::at(
                &["compare_to"],
                "the compared range is beyond retention",
            ));
        }
    }
    let weekly = obj.get("interval").and_then(Value::as_str) == Some("1w");
    let daily = Value::String("1d".into());
    let interval = if weekly {
        Some(&daily)
    } else {
        obj.get("interval")
    };
    let resolution = match (start, end) {
        (Some(s), Some(e)) if e > s => {
            let finest = finest(&metric);
            choose(interval, s, e, now, retention, finest, &mut errors)
        }
        _ => None,
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation {
            detail: format!("{} problems with the query", errors.len()),
            errors,
        });
    }
    let (Some(start), Some(end), Some(resolution)) = (start, end, resolution) else {
        return Err(ApiError::invalid_field::<&str>(&[], "an incomplete query"));
    };
    let start = resolution.window_start(start);
    Ok(Query {
        metric,
        start: if weekly { week_start(start) } else { start },
        end,
        aggregations,
        resolution,
        group_by,
        filters,
        limit,
        compare,
        weekly,
    })
}

fn parse_filters(raw: Option<&Value>, errors: &mut Vec<FieldError>) -> Vec<Filter> {
    let mut out = Vec::new();
    let Some(raw) = raw.filter(|v| !v.is_null()) else {
        return out;
    };
    let Some(map) = raw.as_object() else {
        errors.push(FieldError::at(
            &["filters"],
            "an object of tag → value, or tag → {\"eq\"|\"neq\"|\"in\"|\"prefix\": …}",
        ));
        return out;
    };
    for (tag, cond) in map {
        match cond {
            Value::String(v) => out.push(Filter::Eq(tag.clone(), v.clone())),
            Value::Object(op) if op.len() == 1 => {
                let (name, arg) = op
                    .iter()
                    .next()
                    .map(|(k, v)| (k.as_str(), v))
                    .unwrap_or(("", &Value::Null));
                let text = arg.as_str().map(str::to_owned);
                let filter = match (name, text) {
                    ("eq", Some(v)) => Some(Filter::Eq(tag.clone(), v)),
                    ("neq", Some(v)) => Some(Filter::Neq(tag.clone(), v)),
                    ("prefix", Some(v)) => Some(Filter::Prefix(tag.clone(), v)),
                    ("in", None) => arg
                        .as_array()
                        .filter(|a| a.iter().all(Value::is_string))
                        .map(|a| {
                            Filter::In(
                                tag.clone(),
                                a.iter()
                                    .filter_map(|v| v.as_str().map(str::to_owned))
                                    .collect(),
                            )
                        }),
                    _ => None,
                };
                match filter {
                    Some(f) => out.push(f),
                    None => errors.push(FieldError::at(
                        &["filters", tag.as_str()],
                        "one of {\"eq\": s}, {\"neq\": s}, {\"prefix\": s}, {\"in\": [s, …]}",
                    )),
                }
            }
            _ => errors.push(FieldError::at(
                &["filters", tag.as_str()],
                "a value, or one of {\"eq\": s}, {\"neq\": s}, {\"prefix\": s}, {\"in\": [s, …]}",
            )),
        }
    }
    out
}

/// The finest resolution `metric` has: sessions are computed hourly.
pub fn finest(metric: &str) -> Resolution {
    if crate::sessions::is_session_metric(metric) {
        Resolution::Hour
    } else {
        Resolution::Minute
    }
}

/// The resolution of a query over `[start, end)`.
fn choose(
    interval: Option<&Value>,
    start: i64,
    end: i64,
    now: i64,
    retention: &Retention,
    finest: Resolution,
    errors: &mut Vec<FieldError>,
) -> Option<Resolution> {
    let fits = |r: Resolution| (end - r.window_start(start)).div_euclid(r.secs()) < MAX_POINTS;
    let kept = |r: Resolution| start >= now - retention.days(r) * 86_400;
    match interval.and_then(Value::as_str).unwrap_or("auto") {
        // Ranges over a day always come from rollups, never from live minutes.
        "auto" => Resolution::ALL.into_iter().find(|r| {
            *r >= finest
                && fits(*r)
                && kept(*r)
                && (end - start <= 86_400 || *r > Resolution::Minute)
        }),
        name => match Resolution::parse(name) {
            Some(r) if r < finest => {
                errors.push(FieldError::at(
                    &["interval"],
                    format!("this metric is computed per {finest} at the finest"),
                ));
                None
            }
            Some(r) if !fits(r) => {
                errors.push(FieldError::at(
                    &["interval"],
                    format!("too fine for the range: more than {MAX_POINTS} points; use a coarser interval or auto"),
                ));
                None
            }
            Some(r) if !kept(r) => {
                errors.push(FieldError::at(
                    &["interval"],
                    format!(
                        "{r} buckets are kept {} days; the range starts earlier",
                        retention.days(r)
                    ),
                ));
                None
            }
            Some(r) => Some(r),
            None => {
                errors.push(FieldError::at(
                    &["interval"],
                    "one of 1m, 5m, 1h, 1d, 1w, auto",
                ));
                None
            }
        },
    }
}

/// One point of one group.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Epoch s: the start of the point's interval.
    pub start: i64,
    /// The aggregations asked for, in the query's order.
    pub values: Vec<Option<f64>>,
    /// Index of the group's tags in [`Answer::tags`].
    pub group: usize,
}

/// The answer to a query. It serialises as seed spec 001's `{"data": [{timestamp, value,
/// tags}]}`, each point also carrying `values` (every aggregation by name), next to
/// `metric`, `resolution`, `aggregations` and `groups` (groups found before `limit`).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub metric: String,
    pub resolution: Resolution,
    pub aggregations: Vec<Aggregation>,
    pub groups: usize,
    /// Each kept group's tags (its `group_by` tags; empty when not grouped).
    pub tags: Vec<BTreeMap<String, String>>,
    pub points: Vec<Point>,
    /// Each kept group's aggregations over the whole range (index as [`Answer::tags`]): its
    /// buckets merged, so a percentile or `uniques` is the range's own, not a mean of points.
    /// Empty for a derived metric.
    pub summary: Vec<Vec<Option<f64>>>,
    /// The same query over the compared range (`compare_to`).
    pub comparison: Option<Box<Answer>>,
    /// Points are weeks merged from daily buckets (`resolution` says `1w`).
    pub weekly: bool,
}

impl Answer {
    /// The value of aggregation `a` at each point of group `group` (tests, benchmarks).
    pub fn values_of(&self, group: usize, a: Aggregation) -> Vec<Option<f64>> {
        let i = self.aggregations.iter().position(|x| *x == a);
        self.points
            .iter()
            .filter(|p| p.group == group)
            .map(|p| i.and_then(|i| p.values[i]))
            .collect()
    }
}

impl Serialize for Answer {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        struct Data<'a>(&'a Answer);
        struct P<'a>(&'a Answer, &'a Point);
        impl Serialize for Data<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut seq = s.serialize_seq(Some(self.0.points.len()))?;
                for p in &self.0.points {
                    seq.serialize_element(&P(self.0, p))?;
                }
                seq.end()
            }
        }
        impl Serialize for P<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let (answer, point) = (self.0, self.1);
                let mut m = s.serialize_map(Some(4))?;
                let timestamp = chrono::DateTime::from_timestamp(point.start, 0)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    .unwrap_or_default();
                m.serialize_entry("timestamp", &timestamp)?;
                m.serialize_entry("value", &point.values.first().copied().flatten())?;
                let values: BTreeMap<&str, Option<f64>> = answer
                    .aggregations
                    .iter()
                    .zip(&point.values)
                    .map(|(a, v)| (a.as_str(), *v))
                    .collect();
                m.serialize_entry("values", &values)?;
                m.serialize_entry("tags", &answer.tags[point.group])?;
                m.end()
            }
        }
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("metric", &self.metric)?;
        if self.weekly {
            m.serialize_entry("resolution", "1w")?;
        } else {
            m.serialize_entry("resolution", &self.resolution)?;
        }
        m.serialize_entry("aggregations", &self.aggregations)?;
        m.serialize_entry("groups", &self.groups)?;
        m.serialize_entry("data", &Data(self))?;
        if !self.summary.is_empty() {
            let summary: Vec<serde_json::Value> = self
                .tags
                .iter()
                .zip(&self.summary)
                .map(|(tags, values)| {
                    let values: BTreeMap<&str, Option<f64>> = self
                        .aggregations
                        .iter()
                        .zip(values)
                        .map(|(a, v)| (a.as_str(), *v))
                        .collect();
                    serde_json::json!({"tags": tags, "values": values})
                })
                .collect();
            m.serialize_entry("summary", &summary)?;
        }
        if let Some(c) = &self.comparison {
            m.serialize_entry("comparison", c)?;
        }
        m.end()
    }
}

/// A series as a query reads it: its tags and its buckets (start, bucket) in the range.
pub type SeriesData = (BTreeMap<String, String>, Vec<(i64, Bucket)>);

/// Computes the answer from each series' tags and its buckets at the query's resolution.
///
/// A point made of one series' bucket is read in place; only points that combine several
/// series merge them, and sketches are merged only when a percentile or `uniques` is asked.
/// Timestamps are formatted and tags shared once per group when the answer is serialised.
pub fn compute(query: &Query, series: &[SeriesData]) -> Answer {
    type Group<'a> = (BTreeMap<String, String>, Vec<(i64, &'a Bucket)>);
    let mut groups: BTreeMap<BTreeMap<String, String>, Vec<(i64, &Bucket)>> = BTreeMap::new();
    for (tags, buckets) in series {
        if !query.filters.iter().all(|f| f.matches(tags)) {
            continue;
        }
        let key: BTreeMap<String, String> = query
            .group_by
            .iter()
            .map(|k| (k.clone(), tag(tags, k).to_owned()))
            .collect();
        let points = groups.entry(key).or_default();
        let at = |start: i64| {
            if query.weekly {
                week_start(start)
            } else {
                start
            }
        };
        points.extend(
            buckets
                .iter()
                .filter(|(start, _)| (query.start..query.end).contains(start))
                .map(|(start, b)| (at(*start), b)),
        );
    }
    let found = groups.len();
    // Top-k by total count; ties keep the tags' order.
    let mut ranked: Vec<Group<'_>> = groups.into_iter().collect();
    ranked.sort_by_key(|(_, points)| {
        std::cmp::Reverse(points.iter().map(|(_, b)| b.count).sum::<u64>())
    });
    ranked.truncate(query.limit);
    let secs = if query.weekly {
        7 * 86_400
    } else {
        query.resolution.secs()
    };
    let sketches = query.aggregations.iter().any(|a| {
        matches!(
            a,
            Aggregation::P50 | Aggregation::P95 | Aggregation::P99 | Aggregation::Uniques
        )
    });
    let mut tags = Vec::with_capacity(ranked.len());
    let mut summary = Vec::with_capacity(ranked.len());
    let mut points = Vec::new();
    let range_secs = (query.end - query.start).max(1);
    for (group, (key, mut buckets)) in ranked.into_iter().enumerate() {
        tags.push(key);
        let whole = combine(buckets.iter().map(|(_, b)| *b), sketches);
        summary.push(
            query
                .aggregations
                .iter()
                .map(|a| a.of(&whole, range_secs))
                .collect(),
        );
        buckets.sort_by_key(|(start, _)| *start);
        for run in buckets.chunk_by(|a, b| a.0 == b.0) {
            let merged;
            let bucket: &Bucket = match run {
                [(_, one)] => one,
                many => {
                    merged = combine(many.iter().map(|(_, b)| *b), sketches);
                    &merged
                }
            };
            points.push(Point {
                start: run[0].0,
                values: query
                    .aggregations
                    .iter()
                    .map(|a| a.of(bucket, secs))
                    .collect(),
                group,
            });
        }
    }
    Answer {
        metric: query.metric.clone(),
        resolution: query.resolution,
        aggregations: query.aggregations.clone(),
        groups: found,
        tags,
        summary,
        points,
        comparison: None,
        weekly: query.weekly,
    }
}

/// The answer of a derived metric from the answers of its two metrics (each asked for the
/// derived aggregation): per group and point, `derived`'s combination of the two values.
/// Groups are ranked by their tags and cut to the query's limit.
pub fn combine_derived(
    query: &Query,
    derived: &crate::definitions::Derived,
    a: &Answer,
    b: &Answer,
) -> Answer {
    type Key = (BTreeMap<String, String>, i64);
    let values = |ans: &Answer| -> BTreeMap<Key, Option<f64>> {
        ans.points
            .iter()
            .map(|p| {
                (
                    (ans.tags[p.group].clone(), p.start),
                    p.values.first().copied().flatten(),
                )
            })
            .collect()
    };
    let (va, vb) = (values(a), values(b));
    let keys: BTreeSet<&Key> = va.keys().chain(vb.keys()).collect();
    let groups: BTreeSet<&BTreeMap<String, String>> = keys.iter().map(|(t, _)| t).collect();
    let found = groups.len();
    let tags: Vec<BTreeMap<String, String>> =
        groups.into_iter().take(query.limit).cloned().collect();
    let points = keys
        .into_iter()
        .filter_map(|key| {
            let group = tags.iter().position(|t| *t == key.0)?;
            let value = derived.combine(
                va.get(key).copied().flatten(),
                vb.get(key).copied().flatten(),
            );
            Some(Point {
                start: key.1,
                values: vec![value],
                group,
            })
        })
        .collect();
    Answer {
        metric: query.metric.clone(),
        resolution: query.resolution,
        aggregations: vec![derived.aggregation],
        groups: found,
        tags,
        summary: Vec::new(),
        points,
        comparison: None,
        weekly: query.weekly,
    }
}

/// Several series' buckets of one point as one: exact figures always, sketches if needed.
fn combine<'a>(buckets: impl Iterator<Item = &'a Bucket>, sketches: bool) -> Bucket {
    let mut out = Bucket::default();
    for b in buckets {
        if sketches {
            out.merge(b);
        } else {
            out.count += b.count;
            out.sum += b.sum;
            out.min = out.min.min(b.min);
            out.max = out.max.max(b.max);
        }
    }
    out
}

/// Which role a metric needs: business metrics analyst, system metrics admin, the rest
/// (page views, custom events and metrics) any role.
pub fn required_role(metric: &str) -> pulse_core::identity::Role {
    use pulse_core::identity::Role;
    match metric {
        "order" | "product_view" | "add_to_cart" | "checkout" | crate::aggregate::ORDER_ITEMS => {
            Role::Analyst
        }
        "api_request"
        | "error"
        | "task_execution"
        | "ml_job"
        | crate::aggregate::API_FAILED
        | crate::aggregate::ML_COST
        | crate::aggregate::ML_FAILED => Role::Admin,
        _ => Role::Viewer,
    }
}

#[cfg(test)]
pub(crate) mod tests;
