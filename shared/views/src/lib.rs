//! `pulse-views`: the read views over the rollups — web analytics, business, system health and
//! ML pipelines (`GET /api/v1/{web|business|health|ml}/{view}`). api-query serves the web,
//! business and ML areas and the dashboard summary; api-health serves the health area.
//!
//! Every view takes the same query string: `range` (`1h`, `24h`, `7d`, `30d`, … or `start` and
//! `end`), `interval` (`1m`, `5m`, `1h`, `1d`; by default about 24 to 100 points), `limit`
//! (rows of a breakdown, default 10, at most 100) and filters: a dimension as a parameter
//! (`source=Google`, `country=DE,FR`, `path=/blog*`, `device=!mobile`). Ranges are aligned
//! down to the interval. Rates are fractions (0.5 is 50 %), durations seconds, money the
//! events' own amounts.
//!
//! Definitions follow Plausible's: visitors are distinct visitor ids, visits are sessions by
//! the 30-minute idle rule, bounce rate is the share of one-event visits, visit duration the
//! average time between a visit's first and last event, views per visit page views over
//! visits. Sources, devices and countries count visits by their entry (a visit from Google
//! stays Google's on its later pages), with events per visit in place of page views. Visits
//! are computed hourly, so they trail the live page views by up to 90 minutes; the realtime
//! view reads the live minutes.

pub mod catalog;

use pulse_core::error::ApiError;
use pulse_core::identity::{Caller, Role};
use pulse_metrics::aggregate::{self, Bucket};
use pulse_metrics::query::{self, Filter, Query, SeriesData};
use pulse_metrics::rollup::{Resolution, Retention};
use pulse_metrics::sessions::{SESSION_SECONDS, SESSIONS, views_per_visit};
use pulse_store::read::{Breakdowns, Reader};
use pulse_store::{BreakdownReader, RollupBuckets, SeriesCatalog, Totals, TrailStore};
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};

/// 52 weeks, so weekdays line up.
const YEAR_SECS: i64 = 364 * 86_400;
/// Dimensions a view may filter on.
const DIMENSIONS: &[&str] = &[
    "site",
    "source",
    "device",
    "country",
    "browser",
    "os",
    "path",
    "utm_medium",
    "utm_campaign",
    "product",
    "collection",
    "currency",
    "route",
    "method",
    "status",
    "provider",
    "pipeline",
    "service",
];

/// A view's parsed parameters.
#[derive(Debug, Clone)]
pub struct Params {
    pub start: i64,
    pub end: i64,
    pub resolution: Resolution,
    pub filters: Vec<Filter>,
    pub limit: usize,
    /// Whether the web overview answers with its top panels (`top=false` leaves them out,
    /// for a caller that shows only the figures and the chart).
    pub top: bool,
}

impl Params {
    /// The range of the same length just before.
    fn previous(&self) -> (i64, i64) {
        let len = self.end - self.start;
        (self.start - len, self.start)
    }
}

/// The interval a view uses by default for a range of `len` seconds.
fn default_interval(len: i64) -> &'static str {
    match len {
        l if l <= 3 * 3_600 => "1m",
        l if l <= 12 * 3_600 => "5m",
        l if l <= 3 * 86_400 => "1h",
        _ => "1d",
    }
}

/// Parses a view's query string (`params`) at `now`, for a view whose finest metric is
/// computed per `finest` and whose default range is `default_range`.
pub fn parse_params(
    params: &BTreeMap<String, String>,
    now: i64,
    retention: &Retention,
    finest: Resolution,
    default_range: &str,
) -> Result<Params, ApiError> {
    let mut body = Map::new();
    // The metric only sets the finest resolution the view may use.
    let metric = if finest == Resolution::Hour {
        SESSIONS
    } else {
        "page_view"
    };
    body.insert("metric_name".into(), metric.into());
    let mut filters = Map::new();
    let mut unknown = Vec::new();
    for (k, v) in params {
        match k.as_str() {
            "range" | "start" | "end" | "interval" | "limit" | "top" | "sections" | "cards" => {}
            dim if DIMENSIONS.contains(&dim) || dim.starts_with("utm_") => {
                filters.insert(dim.to_owned(), filter_value(v));
            }
            other => unknown.push(other.to_owned()),
        }
    }
    if let Some(k) = unknown.first() {
        return Err(ApiError::invalid_field(
            &[k.as_str()],
            format!(
                "unknown parameter; a view takes range, start, end, interval, limit, top and filters on {}",
                DIMENSIONS.join(", ")
            ),
        ));
    }
    let len = match (params.get("start"), params.get("range")) {
        (Some(start), _) => {
            let mut range = Map::new();
            range.insert("start".into(), start.clone().into());
            if let Some(end) = params.get("end") {
                range.insert("end".into(), end.clone().into());
            }
            let s = chrono::DateTime::parse_from_rfc3339(start).map(|t| t.timestamp());
            let e = params
                .get("end")
                .and_then(|e| chrono::DateTime::parse_from_rfc3339(e).ok())
                .map_or(now, |t| t.timestamp());
            body.insert("time_range".into(), range.into());
            s.map_or(86_400, |s| e - s)
        }
        (None, range) => {
            let r = range.map_or(default_range, String::as_str);
            body.insert("time_range".into(), r.into());
            query::relative(r).unwrap_or(86_400)
        }
    };
    let interval = params
        .get("interval")
        .cloned()
        .unwrap_or_else(|| default_interval(len).to_owned());
    let interval = match Resolution::parse(&interval) {
        Some(r) if r < finest => finest.as_str().to_owned(),
        _ => interval,
    };
    body.insert("interval".into(), interval.into());
    if !filters.is_empty() {
        body.insert("filters".into(), filters.into());
    }
    if let Some(l) = params.get("limit") {
        body.insert(
            "limit".into(),
            l.parse::<u64>()
                .map_or(Value::String(l.clone()), Into::into),
        );
    }
    let top = match params.get("top").map(String::as_str) {
        None | Some("true" | "1") => true,
        Some("false" | "0") => false,
        Some(_) => return Err(ApiError::invalid_field(&["top"], "true or false")),
    };
    let q: Query = query::parse(&Value::Object(body), now, retention)?;
    Ok(Params {
        start: q.start,
        end: q.end,
        resolution: q.resolution,
        filters: q.filters,
        limit: q.limit,
        top,
    })
}

/// `a,b` → in, `x*` → prefix, `!x` → neq, else eq.
fn filter_value(v: &str) -> Value {
    if let Some(rest) = v.strip_prefix('!') {
        json!({ "neq": rest })
    } else if let Some(prefix) = v.strip_suffix('*') {
        json!({ "prefix": prefix })
    } else if v.contains(',') {
        json!({ "in": v.split(',').map(str::trim).collect::<Vec<_>>() })
    } else {
        json!({ "eq": v })
    }
}

/// A figure with its previous value and relative change.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Figure {
    pub value: Option<f64>,
    pub previous: Option<f64>,
    /// (value − previous) / previous.
    pub change: Option<f64>,
}

pub fn figure(value: Option<f64>, previous: Option<f64>) -> Figure {
    let change = match (value, previous) {
        (Some(v), Some(p)) if p != 0.0 => Some((v - p) / p),
        _ => None,
    };
    Figure {
        value,
        previous,
        change,
    }
}

/// `{name: {value, previous, change}}` for each named figure now and in the period before.
fn figure_map(names: &[&str], now: &[Option<f64>], before: &[Option<f64>]) -> Map<String, Value> {
    names
        .iter()
        .zip(now.iter().zip(before))
        .map(|(n, (v, b))| ((*n).to_owned(), json!(figure(*v, *b))))
        .collect()
}

/// `a / b`, or `None` when `b` is 0.
pub fn ratio(a: f64, b: f64) -> Option<f64> {
    (b != 0.0).then(|| a / b)
}

/// Every bucket of `series` with start in `[from, to)` merged.
pub fn merged(series: &[SeriesData], from: i64, to: i64) -> Bucket {
    let mut out = Bucket::default();
    for (_, buckets) in series {
        for (s, b) in buckets {
            if (from..to).contains(s) {
                out.merge(b);
            }
        }
    }
    out
}

/// The buckets of `series` in `[from, to)` merged per value of the tag `dim`.
pub fn by_dimension(
    series: &[SeriesData],
    dim: &str,
    from: i64,
    to: i64,
) -> BTreeMap<String, Bucket> {
    let mut out: BTreeMap<String, Bucket> = BTreeMap::new();
    for (tags, buckets) in series {
        let key = tags
            .get(dim)
            .cloned()
            .unwrap_or_else(|| "(none)".to_owned());
        let into = out.entry(key).or_default();
        for (s, b) in buckets {
            if (from..to).contains(s) {
                into.merge(b);
            }
        }
    }
    out
}

/// The buckets of `series` merged per window start.
pub fn timeline(series: &[SeriesData], from: i64, to: i64) -> BTreeMap<i64, Bucket> {
    let mut out: BTreeMap<i64, Bucket> = BTreeMap::new();
    for (_, buckets) in series {
        for (s, b) in buckets {
            if (from..to).contains(s) {
                out.entry(*s).or_default().merge(b);
            }
        }
    }
    out
}

/// Epoch seconds as RFC 3339 (UTC, seconds).
pub fn rfc3339(epoch: i64) -> String {
    chrono::DateTime::from_timestamp(epoch, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

fn range_json(p: &Params) -> Value {
    json!({
        "start": rfc3339(p.start),
        "end": rfc3339(p.end),
        "interval": p.resolution.as_str(),
    })
}

/// The windows of `p` in order.
fn windows(p: &Params) -> impl Iterator<Item = i64> + '_ {
    let step = p.resolution.secs();
    (0..)
        .map(move |i| p.start + i * step)
        .take_while(move |s| *s < p.end)
}

/// The role a view needs.
pub fn required_role(area: &str) -> Role {
    match area {
        "business" => Role::Analyst,
        "health" | "ml" => Role::Admin,
        _ => Role::Viewer,
    }
}

/// Where visits count up to at `now`: the rollup job counts an open hour's visits from each
/// minute it seals (final figures replace them once the hour is [`pulse_metrics::sessions::IDLE_SECS`] past), so only
/// windows after the last sealed minute have no visit figures yet.
pub fn sessions_pending_from(now: i64) -> i64 {
    pulse_metrics::sessions::counted_through(now)
}

/// Reads and computes one view.
/// The web overview's top panels, in the dashboard's order.
const TOP_PANELS: [&str; 4] = ["sources", "pages", "countries", "devices"];
/// Rows per top panel.
const TOP_ROWS: usize = 10;

/// The totals of one (resolution, from, to) read so far, by metric, and the metrics read
/// (one with no total in the range is read but absent).
#[derive(Debug, Default, Clone)]
struct TotalsRead {
    of: std::collections::BTreeSet<String>,
    by_metric: BTreeMap<String, Vec<(i64, Bucket)>>,
}

#[derive(Debug)]
pub struct Views<'a, S> {
    pub reader: Reader<'a, S>,
    /// The totals read so far by this answer: a view reads several metrics over the same
    /// ranges (the business overview five, over this and last year's range), and the totals
    /// partition holds every metric of a window side by side, so one read serves them all.
    totals: ReadCache<TotalsRead>,
    /// The breakdowns read so far, likewise: a breakdown record holds every metric's series
    /// of a window, so the metrics a view splits by a tag share one read per range.
    breakdowns: ReadCache<Breakdowns>,
    /// Whether grouped and filtered reads take the live series (each metric's registry and
    /// series shards, up to the current minute) rather than the breakdowns (one read for
    /// every metric, through the last sealed minute).
    live: bool,
}

type Read = Result<Vec<SeriesData>, ApiError>;

/// Reads of one answer by (resolution, from, to).
type ReadCache<T> = std::sync::Mutex<HashMap<(Resolution, i64, i64), std::sync::Arc<T>>>;

/// What `read` gives for `key`, read at most once per answer (kept in `cache`).
async fn once<T, F>(
    cache: &ReadCache<T>,
    key: (Resolution, i64, i64),
    read: impl FnOnce() -> F,
) -> Result<std::sync::Arc<T>, ApiError>
where
    F: std::future::Future<Output = Result<T, pulse_store::StoreError>>,
{
    if let Some(known) = cache.lock().ok().and_then(|m| m.get(&key).cloned()) {
        return Ok(known);
    }
    let fresh = std::sync::Arc::new(read().await.map_err(ApiError::from)?);
    if let Ok(mut m) = cache.lock() {
        m.insert(key, fresh.clone());
    }
    Ok(fresh)
}

impl<S: RollupBuckets + SeriesCatalog + Totals + BreakdownReader> Views<'_, S> {
    /// `metric`'s series over `[from, to)` at `p`'s resolution, grouped when `grouped`, with
    /// `p`'s filters on the tags the metric has (a derived metric lacks most dimensions).
    async fn read(
        &self,
        metric: &str,
        grouped: bool,
        p: &Params,
        from: i64,
        to: i64,
        filters: &[Filter],
    ) -> Read {
        let resolution = p.resolution.max(query::finest(metric));
        let from = resolution.window_start(from);
        if !grouped && filters.is_empty() {
            let all = self.totals_of(&[metric], (resolution, from, to)).await?;
            // Every sample is counted in its metric's total, so a metric without one in the
            // range has no series in it either.
            let total: Vec<(i64, Bucket)> = all
                .by_metric
                .get(metric)
                .into_iter()
                .flatten()
                .filter(|(s, _)| *s >= from)
                .cloned()
                .collect();
            return Ok(if total.is_empty() {
                Vec::new()
            } else {
                vec![(BTreeMap::new(), total)]
            });
        }
        if !self.live {
            return self
                .read_breakdowns(metric, resolution, from, to, filters)
                .await;
        }
        self.read_live(metric, grouped, resolution, from, to, filters)
            .await
    }

    /// [`Self::read`] of several metrics over one range: the totals of those at one
    /// resolution in one read (the totals partition holds every metric of a window side by
    /// side; only these are carried).
    async fn read_all<const N: usize>(
        &self,
        metrics: [&str; N],
        grouped: bool,
        p: &Params,
        from: i64,
        to: i64,
        filters: &[Filter],
    ) -> Result<[Vec<SeriesData>; N], ApiError> {
        if !grouped && filters.is_empty() {
            self.prefetch(&metrics, p, from, to).await?;
        }
        let mut out: [Vec<SeriesData>; N] = std::array::from_fn(|_| Vec::new());
        for (slot, m) in out.iter_mut().zip(metrics) {
            *slot = self.read(m, grouped, p, from, to, filters).await?;
        }
        Ok(out)
    }

    /// Reads the totals of `metrics` over `[from, to)` together, one read per resolution
    /// they take, for the reads of them (or of a part of the range ending at `to`) to come.
    async fn prefetch(
        &self,
        metrics: &[&str],
        p: &Params,
        from: i64,
        to: i64,
    ) -> Result<(), ApiError> {
        let mut by_key: BTreeMap<(Resolution, i64, i64), Vec<&str>> = BTreeMap::new();
        for m in metrics {
            let resolution = p.resolution.max(query::finest(m));
            let key = (resolution, resolution.window_start(from), to);
            by_key.entry(key).or_default().push(m);
        }
        for (key, of) in by_key {
            self.totals_of(&of, key).await?;
        }
        Ok(())
    }

    /// API requests and failed ones (under `filters`) and errors (which have no route) over
    /// `[from, p.end)`.
    async fn requests_and_errors(
        &self,
        p: &Params,
        from: i64,
        filters: &[Filter],
    ) -> Result<[Vec<SeriesData>; 3], ApiError> {
        const REQUESTS: [&str; 3] = ["api_request", aggregate::API_FAILED, "error"];
        if filters.is_empty() {
            return self
                .read_all(REQUESTS, false, p, from, p.end, filters)
                .await;
        }
        let [req, failed] = self
            .read_all([REQUESTS[0], REQUESTS[1]], false, p, from, p.end, filters)
            .await?;
        let errors = self.read(REQUESTS[2], false, p, from, p.end, &[]).await?;
        Ok([req, failed, errors])
    }

    /// The totals of `metrics` (and of any read before) over `key`, read once per answer: a
    /// metric already read is not read again.
    async fn totals_of(
        &self,
        metrics: &[&str],
        key: (Resolution, i64, i64),
    ) -> Result<std::sync::Arc<TotalsRead>, ApiError> {
        let covers = |k: &TotalsRead| metrics.iter().all(|m| k.of.contains(*m));
        // A read of a longer range to the same end serves this one too (the goals of the web
        // overview read its current period, the overview this and the previous one).
        let wider = self.totals.lock().ok().and_then(|m| {
            m.iter()
                .find(|((r, f, t), k)| (*r, *t) == (key.0, key.2) && *f <= key.1 && covers(k))
                .map(|(_, k)| k.clone())
        });
        if let Some(wider) = wider {
            return Ok(wider);
        }
        let known = self.totals.lock().ok().and_then(|m| m.get(&key).cloned());
        let (resolution, from, to) = key;
        let fresh = self
            .reader
            .totals_of(metrics, resolution, from, to)
            .await
            .map_err(ApiError::from)?;
        let mut all = known.map(|k| (*k).clone()).unwrap_or_default();
        all.of.extend(metrics.iter().map(|m| (*m).to_owned()));
        all.by_metric.extend(fresh);
        let all = std::sync::Arc::new(all);
        if let Ok(mut m) = self.totals.lock() {
            m.insert(key, all.clone());
        }
        Ok(all)
    }

    /// `metric`'s series matching `filters` from the breakdowns of `[from, to)`.
    async fn read_breakdowns(
        &self,
        metric: &str,
        resolution: Resolution,
        from: i64,
        to: i64,
        filters: &[Filter],
    ) -> Read {
        let all = once(&self.breakdowns, (resolution, from, to), || {
            self.reader.breakdowns(resolution, from, to)
        })
        .await?;
        let mut by_series: BTreeMap<&str, SeriesData> = BTreeMap::new();
        for (start, b) in all.iter() {
            for (id, tags, bucket) in b.of_metric(metric) {
                if filters.iter().all(|f| f.matches(tags)) {
                    by_series
                        .entry(id)
                        .or_insert_with(|| (tags.clone(), Vec::new()))
                        .1
                        .push((*start, bucket.clone()));
                }
            }
        }
        Ok(by_series.into_values().collect())
    }

    /// `metric`'s live series: its registry, then its matching series' buckets.
    async fn read_live(
        &self,
        metric: &str,
        grouped: bool,
        resolution: Resolution,
        from: i64,
        to: i64,
        filters: &[Filter],
    ) -> Read {
        Ok(self
            .reader
            .series(metric, grouped, filters, resolution, from, to)
            .await
            .map_err(ApiError::from)?
            .unwrap_or_default())
    }

    /// Filters that apply to a metric whose series carry `dims`; a filter on another
    /// dimension is refused rather than ignored.
    fn filters_for(p: &Params, dims: &[&str], view: &str) -> Result<Vec<Filter>, ApiError> {
        for f in &p.filters {
            let tag = f.tag();
            if !dims.contains(&tag) && !tag.starts_with("utm_") {
                return Err(ApiError::invalid_field(
                    &["filters", tag],
                    format!("the {view} view filters on {} only", dims.join(", ")),
                ));
            }
        }
        Ok(p.filters.clone())
    }

    pub async fn web(&self, view: &str, p: &Params) -> Result<Value, ApiError> {
        const WEB_DIMS: &[&str] = &["site", "source", "device", "country", "browser", "os"];
        match view {
            "overview" => {
                let f = Self::filters_for(p, WEB_DIMS, "overview")?;
                let (ps, pe) = p.previous();
                let [views, visits, secs] = self
                    .read_all(
                        ["page_view", SESSIONS, SESSION_SECONDS],
                        false,
                        p,
                        ps,
                        p.end,
                        &f,
                    )
                    .await?;
                // A range none of whose hours has its visits computed yet has no visit figures.
                let sessions_from = sessions_pending_from(self.reader.now);
                let figures = |from: i64, to: i64| {
                    let v = merged(&views, from, to);
                    let s = merged(&visits, from, to);
                    let d = merged(&secs, from, to);
                    let n = s.count as f64;
                    let known = |x: Option<f64>| (from < sessions_from).then_some(x).flatten();
                    [
                        Some(v.unique_visitors() as f64),
                        known(Some(n)),
                        Some(v.count as f64),
                        known(views_per_visit(&s, &d)),
                        known(ratio(s.sum, n)),
                        known(ratio(d.sum, n)),
                    ]
                };
                let now = figures(p.start, p.end);
                let before = figures(ps, pe);
                let names = [
                    "visitors",
                    "visits",
                    "pageviews",
                    "views_per_visit",
                    "bounce_rate",
                    "visit_duration",
                ];
                let metrics = figure_map(&names, &now, &before);
                let tv = timeline(&views, p.start, p.end);
                let ts = timeline(&visits, p.start, p.end);
                let td = timeline(&secs, p.start, p.end);
                // A window after the last sealed minute has its visit figures unknown (null),
                // not zero.
                // Every top stat has its line, so a click on a stat can chart it.
                let no_gaps = Bucket::default();
                let series: Vec<Value> = windows(p)
                    .map(|w| {
                        let v = tv.get(&w);
                        let s = ts.get(&w);
                        let n = s.map_or(0.0, |b| b.count as f64);
                        let pageviews = v.map_or(0, |b| b.count);
                        let pending = p.resolution <= Resolution::Hour && w >= sessions_from;
                        let known = |x: Option<f64>| if pending { None } else { x };
                        json!({
                            "timestamp": rfc3339(w),
                            "visitors": v.map_or(0, Bucket::unique_visitors),
                            "visits": (!pending).then(|| s.map_or(0, |b| b.count)),
                            "pageviews": pageviews,
                            "views_per_visit": known(s.and_then(|s| views_per_visit(s, td.get(&w).unwrap_or(&no_gaps)))),
                            "bounce_rate": known(s.and_then(|b| ratio(b.sum, n))),
                            "visit_duration": known(td.get(&w).and_then(|d| ratio(d.sum, n)).or(s.map(|_| 0.0))),
                        })
                    })
                    .collect();
                // Plausible's one page: the top sources, pages, countries and devices come with
                // the overview, from the breakdowns it reads once for all four (a panel whose
                // metrics cannot take a filter is left out: the dashboard says so).
                let mut top = Map::new();
                for panel in TOP_PANELS.iter().filter(|_| p.top) {
                    let each = Params {
                        limit: TOP_ROWS,
                        ..p.clone()
                    };
                    if let Ok(answer) = Box::pin(self.web(panel, &each)).await {
                        top.insert((*panel).to_owned(), answer["rows"].clone());
                    }
                }
                let mut answer = json!({
                    "range": range_json(p),
                    "metrics": metrics,
                    "timeseries": series,
                    "sessions_through": rfc3339(sessions_from.min(p.end)),
                });
                if p.top {
                    answer["top"] = Value::Object(top);
                }
                Ok(answer)
            }
            "pages" => {
                let f = Self::filters_for(p, &["site", "path"], "pages")?;
                let pages = self
                    .read(aggregate::WEB_PAGES, true, p, p.start, p.end, &f)
                    .await?;
                let rows = by_dimension(&pages, "path", p.start, p.end);
                let mut rows: Vec<Value> = rows
                    .iter()
                    .map(|(path, b)| {
                        json!({"path": path, "visitors": b.unique_visitors(), "pageviews": b.count})
                    })
                    .collect();
                Ok(breakdown(
                    p,
                    self.reader.now,
                    "path",
                    &mut rows,
                    "pageviews",
                ))
            }
            "sources" | "devices" | "countries" => {
                let dim = match view {
                    "sources" => "source",
                    "devices" => "device",
                    _ => "country",
                };
                let f = Self::filters_for(p, WEB_DIMS, view)?;
                // By the visit's entry: a visit from Google stays Google's on later pages.
                let visits = self.read(SESSIONS, true, p, p.start, p.end, &f).await?;
                let secs = self
                    .read(SESSION_SECONDS, true, p, p.start, p.end, &f)
                    .await?;
                let s = by_dimension(&visits, dim, p.start, p.end);
                let d = by_dimension(&secs, dim, p.start, p.end);
                let mut rows: Vec<Value> = s
                    .iter()
                    .map(|(k, visits)| {
                        let n = visits.count as f64;
                        let later = d.get(k).cloned().unwrap_or_default();
                        json!({
                            dim: k,
                            "visitors": visits.unique_visitors(),
                            "visits": visits.count,
                            "bounce_rate": ratio(visits.sum, n),
                            "visit_duration": ratio(later.sum, n),
                            "events_per_visit": ratio(n + later.count as f64, n),
                        })
                    })
                    .collect();
                Ok(breakdown(p, self.reader.now, dim, &mut rows, "visitors"))
            }
            "realtime" => {
                let f = Self::filters_for(p, &["site"], "realtime")?;
                let now = self.reader.now;
                let minute = Resolution::Minute;
                let end = minute.window_start(now) + 60;
                let start = end - 30 * 60;
                let live = Params {
                    start,
                    end,
                    resolution: minute,
                    filters: f.clone(),
                    limit: p.limit,
                    top: false,
                };
                let views = self.read("page_view", false, &live, start, end, &f).await?;
                // The last half hour as it happens: the live series, not the sealed breakdowns.
                let pages = self
                    .read_live(aggregate::WEB_PAGES, true, minute, start, end, &f)
                    .await?;
                let current = merged(&views, end - 5 * 60, end);
                let per_minute = timeline(&views, start, end);
                let series: Vec<Value> = windows(&live)
                    .map(|w| {
                        let b = per_minute.get(&w);
                        json!({
                            "timestamp": rfc3339(w),
                            "visitors": b.map_or(0, Bucket::unique_visitors),
                            "pageviews": b.map_or(0, |b| b.count),
                        })
                    })
                    .collect();
                let mut rows: Vec<Value> = by_dimension(&pages, "path", start, end)
                    .iter()
                    .map(|(path, b)| {
                        json!({"path": path, "visitors": b.unique_visitors(), "pageviews": b.count})
                    })
                    .collect();
                sort_rows(&mut rows, "visitors", p.limit);
                Ok(json!({
                    "range": range_json(&live),
                    "visitors_now": current.unique_visitors(),
                    "pageviews_30m": merged(&views, start, end).count,
                    "timeseries": series,
                    "pages": rows,
                }))
            }
            other => Err(unknown_view("web", other)),
        }
    }

    pub async fn business(&self, view: &str, p: &Params) -> Result<Value, ApiError> {
        const DIMS: &[&str] = &["site", "product", "collection", "currency"];
        let f = Self::filters_for(p, DIMS, view)?;
        let (ps, _) = p.previous();
        let (ys, ye) = (p.start - YEAR_SECS, p.end - YEAR_SECS);
        match view {
            "overview" => {
                let metrics = [
                    "order",
                    "product_view",
                    "add_to_cart",
                    "checkout",
                    "page_view",
                ];
                let (now_read, year_read) = (
                    self.read_all(metrics, false, p, ps, p.end, &f).await?,
                    self.read_all(metrics, false, p, ys, ye, &f).await?,
                );
                let recent: BTreeMap<&str, Vec<SeriesData>> =
                    metrics.into_iter().zip(now_read).collect();
                let year: BTreeMap<&str, Vec<SeriesData>> =
                    metrics.into_iter().zip(year_read).collect();
                let at = |m: &str, from: i64, to: i64, yearly: bool| {
                    let data = if yearly { &year[m] } else { &recent[m] };
                    merged(data, from, to)
                };
                let figures = |from: i64, to: i64, yearly: bool| {
                    let o = at("order", from, to, yearly);
                    // Plausible's conversion rate: the share of the period's visitors who
                    // ordered. Everyone seen (pages, products, orders) is a visitor, so the
                    // buyers are a subset of them and the rate is within [0, 1].
                    let mut seen = at("page_view", from, to, yearly);
                    seen.merge(&at("product_view", from, to, yearly));
                    seen.merge(&o);
                    let (buyers, visitors) = (o.unique_visitors(), seen.unique_visitors());
                    [
                        Some(o.sum),
                        Some(o.count as f64),
                        ratio(o.sum, o.count as f64),
                        ratio(buyers.min(visitors) as f64, visitors as f64),
                        Some(at("product_view", from, to, yearly).count as f64),
                        Some(at("add_to_cart", from, to, yearly).count as f64),
                        Some(at("checkout", from, to, yearly).count as f64),
                    ]
                };
                let now = figures(p.start, p.end, false);
                let prev = figures(ps, p.start, false);
                let last_year = figures(ys, ye, true);
                let names = [
                    "revenue",
                    "orders",
                    "average_order_value",
                    "conversion_rate",
                    "product_views",
                    "add_to_carts",
                    "checkouts",
                ];
                let mut out = Map::new();
                for (i, n) in names.iter().enumerate() {
                    let pp = figure(now[i], prev[i]);
                    let py = figure(now[i], last_year[i]);
                    out.insert(
                        (*n).to_owned(),
                        json!({
                            "value": pp.value,
                            "previous_period": pp.previous,
                            "change": pp.change,
                            "previous_year": py.previous,
                            "change_year": py.change,
                        }),
                    );
                }
                Ok(json!({"range": range_json(p), "metrics": out}))
            }
            "sales" => {
                let now = self.read("order", true, p, ps, p.end, &f).await?;
                let year = self.read("order", false, p, ys, ye, &f).await?;
                let t = timeline(&now, p.start, p.end);
                let tp = timeline(&now, ps, p.start);
                let ty = timeline(&year, ys, ye);
                let len = p.end - p.start;
                let series: Vec<Value> = windows(p)
                    .map(|w| {
                        let b = t.get(&w);
                        let bp = tp.get(&(w - len));
                        let by = ty.get(&(w - YEAR_SECS));
                        json!({
                            "timestamp": rfc3339(w),
                            "revenue": b.map_or(0.0, |b| b.sum),
                            "orders": b.map_or(0, |b| b.count),
                            "previous_period_revenue": bp.map_or(0.0, |b| b.sum),
                            "previous_year_revenue": by.map_or(0.0, |b| b.sum),
                        })
                    })
                    .collect();
                let mut rows: Vec<Value> = by_dimension(&now, "currency", p.start, p.end)
                    .iter()
                    .map(|(c, b)| {
                        json!({"currency": c, "revenue": b.sum, "orders": b.count, "average_order_value": ratio(b.sum, b.count as f64)})
                    })
                    .collect();
                sort_rows(&mut rows, "revenue", p.limit);
                Ok(json!({"range": range_json(p), "timeseries": series, "currencies": rows}))
            }
            "products" | "collections" => {
                let dim = if view == "products" {
                    "product"
                } else {
                    "collection"
                };
                let views = self
                    .read("product_view", true, p, p.start, p.end, &f)
                    .await?;
                let carts = self
                    .read("add_to_cart", true, p, p.start, p.end, &f)
                    .await?;
                let items = self
                    .read(aggregate::ORDER_ITEMS, true, p, p.start, p.end, &f)
                    .await?;
                let v = by_dimension(&views, dim, p.start, p.end);
                let c = by_dimension(&carts, dim, p.start, p.end);
                let i = by_dimension(&items, dim, p.start, p.end);
                let mut keys: Vec<&String> = v.keys().chain(c.keys()).chain(i.keys()).collect();
                keys.sort();
                keys.dedup();
                let mut rows: Vec<Value> = keys
                    .into_iter()
                    .map(|k| {
                        let none = Bucket::default();
                        let (viewed, bought) = (v.get(k).unwrap_or(&none), i.get(k).unwrap_or(&none));
                        // Of the visitors who viewed it, the share who bought it: a purchase
                        // without a view (a backend order, a view last month) adds none, so
                        // the rate stays within [0, 1].
                        let viewers = viewed.unique_visitors();
                        json!({
                            dim: k,
                            "views": viewed.count,
                            "viewers": viewers,
                            "add_to_carts": c.get(k).map_or(0, |b| b.count),
                            "purchases": bought.count,
                            "revenue": bought.sum,
                            "conversion_rate": ratio(viewed.shared_visitors(bought) as f64, viewers as f64),
                        })
                    })
                    .collect();
                Ok(breakdown(p, self.reader.now, dim, &mut rows, "revenue"))
            }
            other => Err(unknown_view("business", other)),
        }
    }

    pub async fn health(&self, view: &str, p: &Params) -> Result<Value, ApiError> {
        // `service=!pulse` leaves out Pulse's own API calls, which it records as the tenant's.
        const DIMS: &[&str] = &["route", "method", "status", "service"];
        let f = Self::filters_for(p, DIMS, view)?;
        let (ps, pe) = p.previous();
        match view {
            "overview" => {
                let [req, failed, errors] = self.requests_and_errors(p, ps, &f).await?;
                let figures = |from: i64, to: i64| {
                    let r = merged(&req, from, to);
                    let x = merged(&failed, from, to);
                    [
                        Some(r.count as f64),
                        Some(x.count as f64),
                        ratio(x.count as f64, r.count as f64),
                        r.quantile(0.5),
                        r.quantile(0.95),
                        r.quantile(0.99),
                        Some(merged(&errors, from, to).count as f64),
                    ]
                };
                let (now, before) = (figures(p.start, p.end), figures(ps, pe));
                let names = [
                    "requests",
                    "failed_requests",
                    "error_rate",
                    "p50_latency_ms",
                    "p95_latency_ms",
                    "p99_latency_ms",
                    "errors",
                ];
                let metrics = figure_map(&names, &now, &before);
                Ok(json!({"range": range_json(p), "metrics": metrics}))
            }
            "api" => {
                let req = self
                    .read("api_request", true, p, p.start, p.end, &f)
                    .await?;
                let failed = self
                    .read(aggregate::API_FAILED, true, p, p.start, p.end, &f)
                    .await?;
                let r = by_dimension(&req, "route", p.start, p.end);
                let x = by_dimension(&failed, "route", p.start, p.end);
                let mut rows: Vec<Value> = r
                    .iter()
                    .map(|(route, b)| {
                        let failed = x.get(route).map_or(0, |b| b.count);
                        json!({
                            "route": route,
                            "requests": b.count,
                            "failed_requests": failed,
                            "error_rate": ratio(failed as f64, b.count as f64),
                            "p50_latency_ms": b.quantile(0.5),
                            "p95_latency_ms": b.quantile(0.95),
                            "p99_latency_ms": b.quantile(0.99),
                        })
                    })
                    .collect();
                Ok(breakdown(
                    p,
                    self.reader.now,
                    "route",
                    &mut rows,
                    "requests",
                ))
            }
            "timeseries" => {
                let [req, failed, errors] = self.requests_and_errors(p, p.start, &f).await?;
                let (tr, tf, te) = (
                    timeline(&req, p.start, p.end),
                    timeline(&failed, p.start, p.end),
                    timeline(&errors, p.start, p.end),
                );
                let series: Vec<Value> = windows(p)
                    .map(|w| {
                        let r = tr.get(&w);
                        let n = r.map_or(0, |b| b.count);
                        let x = tf.get(&w).map_or(0, |b| b.count);
                        json!({
                            "timestamp": rfc3339(w),
                            "requests": n,
                            "failed_requests": x,
                            "error_rate": ratio(x as f64, n as f64),
                            "p95_latency_ms": r.and_then(|b| b.quantile(0.95)),
                            "errors": te.get(&w).map_or(0, |b| b.count),
                        })
                    })
                    .collect();
                Ok(json!({"range": range_json(p), "timeseries": series}))
            }
            other => Err(unknown_view("health", other)),
        }
    }

    pub async fn ml(&self, view: &str, p: &Params) -> Result<Value, ApiError> {
        const DIMS: &[&str] = &["provider", "pipeline", "status"];
        let f = Self::filters_for(p, DIMS, view)?;
        let (ps, pe) = p.previous();
        let grouped = view == "providers";
        let (from, to) = if grouped {
            (p.start, p.end)
        } else {
            (ps, p.end)
        };
        let [jobs, failed, cost] = self
            .read_all(
                ["ml_job", aggregate::ML_FAILED, aggregate::ML_COST],
                grouped,
                p,
                from,
                to,
                &f,
            )
            .await?;
        let row = |j: &Bucket, x: &Bucket, c: &Bucket| {
            let n = j.count as f64;
            [
                Some(n),
                ratio(n - x.count as f64, n),
                j.quantile(0.5),
                j.quantile(0.95),
                j.quantile(0.99),
                Some(c.sum),
            ]
        };
        let names = [
            "jobs",
            "success_rate",
            "p50_duration_ms",
            "p95_duration_ms",
            "p99_duration_ms",
            "cost",
        ];
        match view {
            "overview" => {
                let at = |from, to| {
                    row(
                        &merged(&jobs, from, to),
                        &merged(&failed, from, to),
                        &merged(&cost, from, to),
                    )
                };
                let (now, before) = (at(p.start, p.end), at(ps, pe));
                let metrics = figure_map(&names, &now, &before);
                Ok(json!({"range": range_json(p), "metrics": metrics}))
            }
            "providers" => {
                let j = by_dimension(&jobs, "provider", p.start, p.end);
                let x = by_dimension(&failed, "provider", p.start, p.end);
                let c = by_dimension(&cost, "provider", p.start, p.end);
                let empty = Bucket::default();
                let mut rows: Vec<Value> = j
                    .iter()
                    .map(|(provider, b)| {
                        let v = row(
                            b,
                            x.get(provider).unwrap_or(&empty),
                            c.get(provider).unwrap_or(&empty),
                        );
                        let mut m = Map::new();
                        m.insert("provider".into(), provider.clone().into());
                        for (n, v) in names.iter().zip(v) {
                            m.insert((*n).to_owned(), json!(v));
                        }
                        Value::Object(m)
                    })
                    .collect();
                Ok(breakdown(p, self.reader.now, "provider", &mut rows, "jobs"))
            }
            other => Err(unknown_view("ml", other)),
        }
    }
}

fn unknown_view(area: &str, view: &str) -> ApiError {
    let known = match area {
        "web" => "overview, pages, sources, devices, countries, realtime",
        "business" => "overview, sales, products, collections, funnel",
        "health" => "overview, api, timeseries",
        _ => "overview, providers",
    };
    ApiError::NotFound(format!("no {area} view {view:?}; the views are {known}"))
}

/// Rows sorted by `key` (descending), cut to `limit`.
fn sort_rows(rows: &mut Vec<Value>, key: &str, limit: usize) {
    rows.sort_by(|a, b| {
        let v = |r: &Value| r.get(key).and_then(Value::as_f64).unwrap_or(0.0);
        v(b).total_cmp(&v(a))
    });
    rows.truncate(limit);
}

/// A breakdown's answer: its rows with something in the range, sorted by `key`. A row whose
/// `key` is 0 (a series seen before the range, nothing in it) is left out: a chart of zeros
/// (a donut of equal "0 %" slices) says less than the empty state.
/// A breakdown's answer: its rows with something in the range, ranked by `key`, counted
/// through the last sealed minute as of `now` (breakdowns are read from sealed minutes).
fn breakdown(p: &Params, now: i64, dim: &str, rows: &mut Vec<Value>, key: &str) -> Value {
    rows.retain(|r| r.get(key).and_then(Value::as_f64).is_some_and(|v| v > 0.0));
    let total = rows.len();
    sort_rows(rows, key, p.limit);
    let through = rfc3339(sessions_pending_from(now).min(p.end));
    json!({"range": range_json(p), "dimension": dim, "total_rows": total, "rows": rows, "through": through})
}

/// Whether `caller` may see `area`'s views.
pub fn allowed(caller: &Caller, area: &str) -> bool {
    caller.has(required_role(area))
}

/// The shop's steps, in the order a shopper takes them.
pub const SHOP_STEPS: [&str; 4] = ["product_view", "add_to_cart", "checkout", "order"];

/// The business funnel (`GET /api/v1/business/funnel`): how many visitors took the shop's
/// steps ([`SHOP_STEPS`]) **in that order** within a day of their product view, matched on the
/// hourly visitor trails exactly as a funnel query is ([`pulse_metrics::funnels::compute`]).
/// So a step never exceeds the one before it and every conversion lies in [0, 1] by
/// construction, which counting each step's visitors on their own cannot promise (an order
/// sent without a cart event, a checkout by a visitor who viewed last week). Trails keep no
/// dimensions, so the funnel takes no filters; like every funnel it reads at most
/// [`pulse_metrics::funnels::MAX_RANGE_DAYS`] days.
pub async fn business_funnel<S: TrailStore>(
    store: &S,
    caller: &Caller,
    params: &BTreeMap<String, String>,
    now: i64,
    retention: &Retention,
) -> Result<Value, ApiError> {
    use pulse_metrics::funnels::{self, Funnel, Step, Trail};
    caller.require(required_role("business"))?;
    let p = parse_params(params, now, retention, Resolution::Hour, "24h")?;
    if let Some(f) = p.filters.first() {
        return Err(ApiError::invalid_field(
            &[f.tag()],
            "the business funnel follows visitors, whose trails keep no dimensions: it takes no filters",
        ));
    }
    if p.end - p.start > funnels::MAX_RANGE_DAYS * 86_400 {
        return Err(ApiError::invalid_field(
            &["range"],
            format!("a funnel reads at most {} days", funnels::MAX_RANGE_DAYS),
        ));
    }
    let funnel = Funnel {
        steps: SHOP_STEPS
            .iter()
            .map(|s| Step::Event((*s).to_owned()))
            .collect(),
        window: 86_400,
        start: p.start,
        end: p.end,
    };
    let chunks = store.trails(&caller.tenant, p.start, p.end).await?;
    let trails: Vec<Trail> = chunks.iter().filter_map(|c| Trail::decode(c)).collect();
    let answer = funnels::compute(&funnel, &trails);
    let mut out = serde_json::to_value(&answer).map_err(ApiError::internal)?;
    if let Some(m) = out.as_object_mut() {
        m.insert("range".into(), range_json(&p));
        m.insert("window_seconds".into(), funnel.window.into());
    }
    Ok(out)
}

/// The answer of `view` in `area` for `caller` over the query string `params`: the caller's
/// role is checked for the area, the parameters parsed (an unknown one is a 400), and the view
/// computed from `store` as of `now` (epoch s).
pub async fn answer<S: RollupBuckets + SeriesCatalog + Totals + BreakdownReader>(
    store: &S,
    caller: &Caller,
    (area, view): (&str, &str),
    params: &BTreeMap<String, String>,
    now: i64,
    retention: &Retention,
    goals: &[pulse_metrics::goals::Goal],
) -> Result<Value, ApiError> {
    caller.require(required_role(area))?;
    let finest = match (area, view) {
        ("web", "overview" | "sources" | "devices" | "countries") => Resolution::Hour,
        _ => Resolution::Minute,
    };
    let default_range = if area == "web" && view == "realtime" {
        "30m"
    } else {
        "24h"
    };
    let p = parse_params(params, now, retention, finest, default_range)?;
    let v = Views {
        reader: Reader {
            store,
            tenant: &caller.tenant,
            now,
        },
        totals: Default::default(),
        breakdowns: Default::default(),
        live: false,
    };
    match area {
        // The web overview is one page: with its top panels come its goals' conversions,
        // from the same reads (goals take no filter yet: under one they are left out).
        "web" if view == "overview" && p.top && p.filters.is_empty() => {
            // The goals' event metrics are read with the overview's own totals.
            let mut wanted = vec!["page_view", SESSIONS, SESSION_SECONDS];
            wanted.extend(goals.iter().filter_map(|g| match &g.target {
                pulse_metrics::goals::Target::Event(e) => Some(e.as_str()),
                pulse_metrics::goals::Target::Path(_) => None,
            }));
            v.prefetch(&wanted, &p, p.previous().0, p.end).await?;
            let mut answer = v.web(view, &p).await?;
            answer["goals"] = v.goals(caller, &p, goals).await?;
            answer["goals"]["range"] = range_json(&p);
            Ok(answer)
        }
        "web" => v.web(view, &p).await,
        "business" => v.business(view, &p).await,
        "health" => v.health(view, &p).await,
        "ml" => v.ml(view, &p).await,
        other => Err(ApiError::NotFound(format!("no view area {other:?}"))),
    }
}

/// `GET /api/v1/web/goals`: each of `goals`' unique visitors, events and conversion rate (its
/// visitors over every visitor of the range, at most 1) over the range. A goal on a metric the
/// caller's role may not read is left out. Goals take no dimension filter yet: a page goal is
/// counted by path alone (`web.pages`), so a filter on another dimension cannot be honoured.
/// The same figures as the web overview's `goals` (from the same reads).
pub async fn goal_conversions<S: RollupBuckets + SeriesCatalog + Totals + BreakdownReader>(
    store: &S,
    caller: &Caller,
    params: &BTreeMap<String, String>,
    now: i64,
    retention: &Retention,
    goals: &[pulse_metrics::goals::Goal],
) -> Result<Value, ApiError> {
    caller.require(required_role("web"))?;
    let p = parse_params(params, now, retention, Resolution::Minute, "24h")?;
    if let Some(f) = p.filters.first() {
        return Err(ApiError::invalid_field(
            &[f.tag()],
            "goals take no filter yet: a page goal is counted by path alone",
        ));
    }
    let v = Views {
        reader: Reader {
            store,
            tenant: &caller.tenant,
            now,
        },
        totals: Default::default(),
        breakdowns: Default::default(),
        live: false,
    };
    let mut answer = v.goals(caller, &p, goals).await?;
    answer["range"] = range_json(&p);
    Ok(answer)
}

impl<S: RollupBuckets + SeriesCatalog + Totals + BreakdownReader> Views<'_, S> {
    /// `goals`' conversions over `p`'s range (no filters): `{visitors, goals, through}`. A
    /// page goal counts from the breakdowns (through the last sealed minute, like the top
    /// panels beside it), an event goal and every visitor from the totals.
    async fn goals(
        &self,
        caller: &Caller,
        p: &Params,
        goals: &[pulse_metrics::goals::Goal],
    ) -> Result<Value, ApiError> {
        use pulse_metrics::goals::Target;
        let everyone = merged(
            &self
                .read("page_view", false, p, p.start, p.end, &[])
                .await?,
            p.start,
            p.end,
        )
        .unique_visitors();
        let mut rows = Vec::with_capacity(goals.len());
        for g in goals {
            let (metric, filters, target) = match &g.target {
                Target::Event(e) => {
                    if caller.require(query::required_role(e)).is_err() {
                        continue;
                    }
                    (e.as_str(), Vec::new(), json!({"event": e}))
                }
                Target::Path(path) => {
                    let filter = match path.strip_suffix('*') {
                        Some(prefix) => Filter::Prefix("path".into(), prefix.to_owned()),
                        None => Filter::Eq("path".into(), path.clone()),
                    };
                    (aggregate::WEB_PAGES, vec![filter], json!({"path": path}))
                }
            };
            let reached = merged(
                &self
                    .read(metric, false, p, p.start, p.end, &filters)
                    .await?,
                p.start,
                p.end,
            );
            let visitors = reached.unique_visitors();
            let mut row = json!({
                "name": g.name,
                "visitors": visitors,
                "events": reached.count,
                "conversion_rate": ratio(visitors.min(everyone) as f64, everyone as f64),
            });
            if let (Some(row), Some(target)) = (row.as_object_mut(), target.as_object()) {
                row.extend(target.clone());
            }
            rows.push(row);
        }
        let through = rfc3339(sessions_pending_from(self.reader.now).min(p.end));
        Ok(json!({"visitors": everyone, "goals": rows, "through": through}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pulse_core::identity::TenantId;
    use pulse_metrics::funnels::Trail;
    use pulse_store::StoreError;

    #[test]
    fn visits_count_up_to_the_last_sealed_minute() {
        let ten = 1_795_431_600; // 2026-11-23T10:00:00Z
        // At 10:12:10 the job has sealed 10:10 (it seals a minute 30 s after it ends)
        assert_eq!(sessions_pending_from(ten + 12 * 60 + 10), ten + 10 * 60);
        assert_eq!(sessions_pending_from(ten + 12 * 60 + 29), ten + 10 * 60);
        assert_eq!(sessions_pending_from(ten + 12 * 60 + 30), ten + 11 * 60);
    }

    /// Trails in memory, as the rollup job would have written them.
    struct Trails(Vec<Vec<u8>>);

    impl TrailStore for Trails {
        async fn trails(&self, _: &TenantId, _: i64, _: i64) -> Result<Vec<Vec<u8>>, StoreError> {
            Ok(self.0.clone())
        }
    }

    fn analyst() -> Caller {
        Caller {
            tenant: TenantId::parse("shop").expect("tenant"),
            subject: "u".into(),
            email: None,
            roles: [Role::Analyst].into(),
            scopes: Default::default(),
            key_id: None,
        }
    }

    #[tokio::test]
    async fn the_business_funnel_counts_only_steps_taken_in_order_so_no_step_exceeds_the_one_before()
     {
        // Given an hour in which A views, carts, checks out and orders; B orders with no
        // view (a backend order); C checks out, then views, then carts; D views and orders
        // without a cart or checkout
        let hour = 1_800_000_000 / 3_600 * 3_600;
        let keys = ["e:product_view", "e:add_to_cart", "e:checkout", "e:order"];
        let (view, cart, checkout, order) = (0, 1, 2, 3);
        let trail = Trail {
            hour,
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            visitors: vec![
                (1, vec![(10, view), (20, cart), (30, checkout), (40, order)]),
                (2, vec![(10, order)]),
                (3, vec![(10, checkout), (20, view), (30, cart)]),
                (4, vec![(10, view), (20, order)]),
            ],
        };
        let store = Trails(trail.encode());
        let params = BTreeMap::from([
            ("start".to_owned(), rfc3339(hour)),
            ("end".to_owned(), rfc3339(hour + 3_600)),
        ]);
        // When the business funnel is answered
        let answer = business_funnel(
            &store,
            &analyst(),
            &params,
            hour + 7_200,
            &Retention::default(),
        )
        .await
        .expect("funnel");
        // Then A, C and D entered, A and C carted, only A checked out after a cart and ordered
        let visitors: Vec<u64> = answer["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .filter_map(|s| s["visitors"].as_u64())
            .collect();
        assert_eq!(visitors, [3, 2, 1, 1], "{answer}");
        // And every conversion lies in [0, 1]
        for step in answer["steps"].as_array().expect("steps") {
            let c = step["conversion"].as_f64().expect("conversion");
            assert!((0.0..=1.0).contains(&c), "{answer}");
        }
        assert_eq!(answer["conversion_rate"].as_f64(), Some(1.0 / 3.0));
    }

    #[tokio::test]
    async fn the_business_funnel_refuses_filters_it_cannot_apply_and_ranges_past_a_month() {
        // Given any trails
        let store = Trails(Vec::new());
        for (k, v) in [("product", "shoe"), ("range", "90d")] {
            let params = BTreeMap::from([(k.to_owned(), v.to_owned())]);
            // When the funnel is asked with a product filter, or over 90 days
            let refused = business_funnel(
                &store,
                &analyst(),
                &params,
                1_800_000_000,
                &Retention::default(),
            )
            .await;
            // Then it is a 400 naming the parameter
            match refused {
                Err(ApiError::Validation { detail, .. }) => assert!(detail.contains(k), "{detail}"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn top_panels_are_asked_for_by_default_left_out_on_request_and_a_bad_value_is_a_400() {
        let parse = |v: Option<&str>| {
            let params: BTreeMap<String, String> = v
                .map(|v| ("top".to_owned(), v.to_owned()))
                .into_iter()
                .collect();
            parse_params(
                &params,
                1_800_000_000,
                &Retention::default(),
                Resolution::Minute,
                "24h",
            )
        };
        // Given no `top`, `top=false` and `top=maybe`
        // Then the panels come by default, are left out on request, and a bad value is named
        assert!(parse(None).expect("default").top);
        assert!(!parse(Some("false")).expect("false").top);
        match parse(Some("maybe")) {
            Err(ApiError::Validation { detail, .. }) => {
                assert!(detail.contains("true or false"), "{detail}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_breakdown_leaves_out_rows_with_nothing_in_the_range() {
        // Given sources of which two had no visitors in the range
        let p = Params {
            start: 0,
            end: 3_600,
            resolution: Resolution::Hour,
            top: true,
            filters: Vec::new(),
            limit: 10,
        };
        let mut rows = vec![
            json!({"source": "google", "visitors": 0}),
            json!({"source": "(none)", "visitors": 3}),
            json!({"source": "t.co", "visitors": 0.0}),
            json!({"source": "github", "visitors": 5}),
        ];
        // When the breakdown is answered
        let answer = breakdown(&p, 0, "source", &mut rows, "visitors");
        // Then only the two with visitors are rows, largest first, and counted as the total
        let sources: Vec<&str> = answer["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .filter_map(|r| r["source"].as_str())
            .collect();
        assert_eq!(sources, ["github", "(none)"]);
        assert_eq!(answer["total_rows"], 2);
    }
}
