//! Pulse's read API, one function for every route that reads rollups:
//! - `POST /api/v1/metrics/query`: the points of one metric over a range, from the rollup
//!   buckets of the resolution the range calls for ([`pulse_metrics::query`]), and
//!   `GET /api/v1/metrics/history`, the same query in query-string form;
//! - `GET /api/v1/{web|business|health|ml}/{view}` ([`views`]);
//! - `GET /api/v1/metrics` (the key cards) and `GET /api/v1/dashboard/summary` ([`summary`]);
//! - `GET /api/v1/metrics/catalog`, what Explore can chart ([`views::catalog`]);
//! - `POST /api/v1/funnels/query` ([`pulse_metrics::funnels`], from hourly visitor trails).
//!
//! A query without filters or groups reads the metric's total (one Query); otherwise the
//! metric's series from the registry (one Query), then each series' buckets in the range
//! (one Query per series, 16 at a time), and computes groups, filters, aggregations and top-k
//! in memory ([`pulse_store::read`]). Every role may query; business metrics need analyst and system
//! metrics admin ([`pulse_metrics::query::required_role`]), and so do their views. A tenant
//! only ever reads keys that start with its own id.

pub mod summary;

use pulse_views as views;

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, RequestExt, Response};
use pulse_core::config::ClaimNames;
use pulse_core::identity::Caller;
use pulse_core::{ApiError, Config};
use pulse_http::FromRequest;
use pulse_http::selfmon::{RequestRecorder, serve_recorded};
use pulse_http::{HttpHandler, json, json_body};
use pulse_metrics::query::{self, required_role};
use pulse_metrics::rollup::Retention;
use pulse_store::app::DynamoApp;
use pulse_store::metrics::DynamoMetrics;
use pulse_store::read::Reader;
use pulse_store::{
    BreakdownReader, CardSettings, DefinitionStore, GoalSettings, RollupBuckets, SeriesCatalog,
    TenantSettings, Totals, TrailStore,
};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::Mutex;

/// The routes this crate serves (template.yaml routes them to this function, and a test
/// checks the two agree).
pub const ROUTES: &[&str] = &[
    "POST /api/v1/metrics/query",
    "GET /api/v1/metrics/history",
    "GET /api/v1/metrics",
    "GET /api/v1/metrics/catalog",
    "PUT /api/v1/metrics/cards",
    "PUT /api/v1/web/goals",
    "GET /api/v1/settings",
    "PUT /api/v1/settings",
    "GET /api/v1/web/{view}",
    "GET /api/v1/business/{view}",
    "GET /api/v1/ml/{view}",
    "GET /api/v1/dashboard/summary",
    "POST /api/v1/funnels/query",
];

/// How long a dashboard summary is reused for a tenant, sections and range.
pub const SUMMARY_CACHE_SECS: i64 = 60;

type Cached = (i64, serde_json::Value);

/// The read endpoints with their stores: metrics, and the tenant's metric definitions
/// (derived metrics).
#[derive(Debug)]
pub struct Query<S, D> {
    /// Records each request as an `api_request` event of its tenant (wired on AWS).
    recorder: Option<Arc<dyn RequestRecorder>>,
    store: S,
    definitions: D,
    claims: ClaimNames,
    retention: Retention,
    clock: fn() -> i64,
    /// Summaries by tenant, sections and range, with the time they were computed.
    summaries: Mutex<HashMap<String, Cached>>,
}

/// Builds the handler from the function's configuration, as `main` and the local cloud do.
pub fn wire(config: &Config, aws: &aws_config::SdkConfig) -> Query<DynamoMetrics, DynamoApp> {
    Query::new(
        DynamoMetrics::new(aws, &config.tables.metrics, config.retention),
        DynamoApp::new(aws, &config.tables.app),
        config,
    )
    .recording(pulse_http::selfmon::recorder(config, aws))
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

impl<
    S: SeriesCatalog + RollupBuckets + Totals + TrailStore + BreakdownReader,
    D: DefinitionStore + CardSettings + GoalSettings + TenantSettings,
> Query<S, D>
{
    pub fn new(store: S, definitions: D, config: &Config) -> Self {
        Self {
            store,
            recorder: None,
            definitions,
            claims: config.claims.clone(),
            retention: config.retention,
            clock: now_secs,
            summaries: Mutex::new(HashMap::new()),
        }
    }

    /// The same endpoint reading time from `clock` (epoch s), for tests.
    pub fn with_clock(self, clock: fn() -> i64) -> Self {
        Self { clock, ..self }
    }

    /// The same endpoint recording its requests with `recorder`.
    pub fn recording(self, recorder: Arc<dyn RequestRecorder>) -> Self {
        Self {
            recorder: Some(recorder),
            ..self
        }
    }

    async fn respond(&self, req: Request) -> Result<Response<Body>, ApiError> {
        let caller = Caller::from_request(&req, &self.claims)?;
        let path = req.uri().path().trim_end_matches('/').to_owned();
        let segments: Vec<&str> = path.split('/').collect();
        match segments.as_slice() {
            ["", "api", "v1", "metrics"] => self.cards(&req, &caller).await,
            ["", "api", "v1", "metrics", "cards"] => self.choose_cards(&req, &caller).await,
            ["", "api", "v1", "metrics", "catalog"] => self.catalog(&req, &caller).await,
            ["", "api", "v1", "dashboard", "summary"] => self.summary(&req, &caller).await,
            ["", "api", "v1", "funnels", "query"] => self.funnel(&req, &caller).await,
            ["", "api", "v1", "web", "goals"] if req.method() == "PUT" => {
                self.choose_goals(&req, &caller).await
            }
            ["", "api", "v1", "web", "goals"] => self.goals(&req, &caller).await,
            ["", "api", "v1", "settings"] => self.settings(&req, &caller).await,
            ["", "api", "v1", area @ ("web" | "business" | "ml"), view] => {
                self.view(&req, &caller, area, view).await
            }
            _ => self.query(req, &caller).await,
        }
    }

    fn reader<'a>(&'a self, caller: &'a Caller) -> Reader<'a, S> {
        Reader {
            store: &self.store,
            tenant: &caller.tenant,
            now: (self.clock)(),
        }
    }

    async fn view(
        &self,
        req: &Request,
        caller: &Caller,
        area: &str,
        view: &str,
    ) -> Result<Response<Body>, ApiError> {
        let params = query_params(req);
        if (area, view) == ("business", "funnel") {
            let answer = views::business_funnel(
                &self.store,
                caller,
                &params,
                (self.clock)(),
                &self.retention,
            )
            .await?;
            tracing::info!(tenant = %caller.tenant, area, view, entered = answer["entered"].as_u64(), "view answered");
            return Ok(json(StatusCode::OK, &answer));
        }
        // The web overview answers with its goals' conversions (the tenant's goals: one read).
        let goals = if (area, view) == ("web", "overview") {
            self.definitions.goals(&caller.tenant).await?
        } else {
            Vec::new()
        };
        let answer = views::answer(
            &self.store,
            caller,
            (area, view),
            &params,
            (self.clock)(),
            &self.retention,
            &goals,
        )
        .await?;
        tracing::info!(tenant = %caller.tenant, area, view, "view answered");
        Ok(json(StatusCode::OK, &answer))
    }

    /// `POST /api/v1/funnels/query`: the steps matched against the range's hourly trails.
    async fn funnel(&self, req: &Request, caller: &Caller) -> Result<Response<Body>, ApiError> {
        let body = json_body(req)?;
        let f = pulse_metrics::funnels::parse(&body, (self.clock)())?;
        // A step on a business or system event shows that data: the same role as its metric.
        for step in &f.steps {
            if let pulse_metrics::funnels::Step::Event(name) = step {
                caller.require(required_role(name))?;
            }
        }
        let chunks = self.store.trails(&caller.tenant, f.start, f.end).await?;
        let trails: Vec<pulse_metrics::funnels::Trail> = chunks
            .iter()
            .filter_map(|c| pulse_metrics::funnels::Trail::decode(c))
            .collect();
        let answer = pulse_metrics::funnels::compute(&f, &trails);
        tracing::info!(tenant = %caller.tenant, steps = f.steps.len(), hours = trails.len(), entered = answer.entered, "funnel answered");
        let range = serde_json::json!({
            "start": views::rfc3339(f.start),
            "end": views::rfc3339(f.end),
        });
        let mut out = serde_json::to_value(&answer).map_err(ApiError::internal)?;
        if let Some(m) = out.as_object_mut() {
            m.insert("range".into(), range);
            m.insert("window_seconds".into(), f.window.into());
        }
        Ok(json(StatusCode::OK, &out))
    }

    async fn cards(&self, req: &Request, caller: &Caller) -> Result<Response<Body>, ApiError> {
        let params = query_params(req);
        if let Some(k) = params.keys().find(|k| k.as_str() != "cards") {
            return Err(ApiError::invalid_field(
                &[k.as_str()],
                "unknown parameter; the cards take `cards` (a comma list)",
            ));
        }
        let ids: Vec<String> = match params.get("cards") {
            Some(list) => list.split(',').map(|s| s.trim().to_owned()).collect(),
            None => self
                .definitions
                .cards(&caller.tenant)
                .await?
                .unwrap_or_else(|| {
                    summary::DEFAULT_CARDS
                        .iter()
                        .map(|c| (*c).to_owned())
                        .collect()
                }),
        };
        summary::check_cards(&ids)?;
        let snapshot = summary::Snapshot::for_cards(&self.reader(caller)).await?;
        let body = snapshot.cards(caller, &ids)?;
        Ok(json(StatusCode::OK, &body))
    }

    /// `GET /api/v1/metrics/catalog`: the metrics the caller may chart, with tags and units.
    async fn catalog(&self, req: &Request, caller: &Caller) -> Result<Response<Body>, ApiError> {
        if let Some(k) = query_params(req).keys().next() {
            return Err(ApiError::invalid_field(
                &[k.as_str()],
                "unknown parameter; the catalog takes none",
            ));
        }
        let definitions = self.definitions.definitions(&caller.tenant).await?;
        let body =
            views::catalog::catalog(&self.store, caller, &definitions, (self.clock)()).await?;
        tracing::info!(tenant = %caller.tenant, metrics = body["metrics"].as_array().map_or(0, Vec::len), "catalog answered");
        Ok(json(StatusCode::OK, &body))
    }

    /// `GET /api/v1/web/goals`: each of the tenant's goals with its visitors and conversion
    /// rate over the range.
    async fn goals(&self, req: &Request, caller: &Caller) -> Result<Response<Body>, ApiError> {
        let params = query_params(req);
        let goals = self.definitions.goals(&caller.tenant).await?;
        let answer = views::goal_conversions(
            &self.store,
            caller,
            &params,
            (self.clock)(),
            &self.retention,
            &goals,
        )
        .await?;
        tracing::info!(tenant = %caller.tenant, goals = goals.len(), "goals answered");
        Ok(json(StatusCode::OK, &answer))
    }

    /// `PUT /api/v1/web/goals` (admin): the tenant's goals, `{"goals": [{name, event | path}]}`,
    /// replacing what it had.
    async fn choose_goals(
        &self,
        req: &Request,
        caller: &Caller,
    ) -> Result<Response<Body>, ApiError> {
        caller.require(pulse_core::identity::Role::Admin)?;
        let goals = pulse_metrics::goals::parse(&json_body(req)?)?;
        self.definitions.put_goals(&caller.tenant, &goals).await?;
        tracing::info!(tenant = %caller.tenant, goals = goals.len(), "goals chosen");
        Ok(json(StatusCode::OK, &serde_json::json!({ "goals": goals })))
    }

    /// `GET /api/v1/settings` (any role): the tenant's settings; `PUT` (admin) replaces them
    /// (`{"currency": "EUR"}`) and answers what is kept.
    async fn settings(&self, req: &Request, caller: &Caller) -> Result<Response<Body>, ApiError> {
        if req.method() == "PUT" {
            caller.require(pulse_core::identity::Role::Admin)?;
            let chosen = pulse_core::settings::Settings::parse(&json_body(req)?)?;
            self.definitions
                .put_settings(&caller.tenant, &chosen)
                .await?;
            tracing::info!(tenant = %caller.tenant, "settings chosen");
        }
        let settings = self.definitions.settings(&caller.tenant).await?;
        Ok(json(StatusCode::OK, &settings))
    }

    /// `PUT /api/v1/metrics/cards` (admin): the tenant's cards, `{"cards": [ids]}`.
    async fn choose_cards(
        &self,
        req: &Request,
        caller: &Caller,
    ) -> Result<Response<Body>, ApiError> {
        caller.require(pulse_core::identity::Role::Admin)?;
        let body = json_body(req)?;
        let ids: Vec<String> = body
            .get("cards")
            .and_then(serde_json::Value::as_array)
            .filter(|a| a.iter().all(serde_json::Value::is_string))
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .ok_or_else(|| ApiError::invalid_field(&["cards"], "required: an array of card ids"))?;
        summary::check_cards(&ids)?;
        self.definitions.put_cards(&caller.tenant, &ids).await?;
        Ok(json(StatusCode::OK, &serde_json::json!({ "cards": ids })))
    }

    async fn summary(&self, req: &Request, caller: &Caller) -> Result<Response<Body>, ApiError> {
        let params = query_params(req);
        if let Some(k) = params
            .keys()
            .find(|k| !matches!(k.as_str(), "sections" | "range"))
        {
            return Err(ApiError::invalid_field(
                &[k.as_str()],
                "unknown parameter; the summary takes sections and range",
            ));
        }
        let days = match params.get("range").map_or("24h", String::as_str) {
            "24h" | "1d" => 1,
            "7d" => 7,
            "30d" => 30,
            _ => {
                return Err(ApiError::invalid_field(&["range"], "one of 24h, 7d, 30d"));
            }
        };
        let all: Vec<&str> = summary::SECTIONS.iter().map(|(s, _)| *s).collect();
        let sections: Vec<&str> = match params.get("sections") {
            Some(list) => list.split(',').map(str::trim).collect(),
            None => all.clone(),
        };
        if let Some(bad) = sections.iter().find(|s| !all.contains(s)) {
            return Err(ApiError::invalid_field(
                &["sections"],
                format!("unknown section {bad:?}; any of {}", all.join(", ")),
            ));
        }
        let visible: Vec<&str> = summary::SECTIONS
            .iter()
            .filter(|(s, role)| sections.contains(s) && caller.has(*role))
            .map(|(s, _)| *s)
            .collect();
        let key = format!("{}|{}|{days}", caller.tenant, visible.join(","));
        let now = (self.clock)();
        let cached = self
            .summaries
            .lock()
            .ok()
            .and_then(|c| c.get(&key).cloned())
            .filter(|(at, _)| now - at < SUMMARY_CACHE_SECS);
        let (at, mut body) = match cached {
            Some(hit) => hit,
            None => {
                let snapshot = summary::Snapshot::for_summary(&self.reader(caller), days).await?;
                let body = snapshot.summary(caller, &visible, days);
                if let Ok(mut c) = self.summaries.lock() {
                    c.retain(|_, (t, _)| now - *t < SUMMARY_CACHE_SECS);
                    c.insert(key, (now, body.clone()));
                }
                (now, body)
            }
        };
        if let Some(m) = body.as_object_mut() {
            m.insert("cached".into(), (at != now).into());
            m.insert(
                "generated_at".into(),
                chrono::DateTime::from_timestamp(at, 0)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    .into(),
            );
        }
        let mut response = json(StatusCode::OK, &body);
        let age = SUMMARY_CACHE_SECS - (now - at);
        if let Ok(v) = format!("private, max-age={age}").parse() {
            response
                .headers_mut()
                .insert(lambda_http::http::header::CACHE_CONTROL, v);
        }
        Ok(response)
    }

    async fn query(&self, req: Request, caller: &Caller) -> Result<Response<Body>, ApiError> {
        let body = if req.method() == lambda_http::http::Method::GET {
            history_query(&req)?
        } else {
            json_body(&req)?
        };
        let q = query::parse(&body, (self.clock)(), &self.retention)?;
        let derived = self
            .definitions
            .definitions(&caller.tenant)
            .await?
            .into_iter()
            .find(|d| d.name == q.metric)
            .and_then(|d| d.derived);
        if let Some(derived) = derived {
            return self.derived(caller, &q, &derived).await;
        }
        caller.require(required_role(&q.metric))?;
        let answer = self.reader(caller).answer(&q).await?.ok_or_else(|| {
            ApiError::NotFound(format!("no metric {:?} has data for this tenant", q.metric))
        })?;
        tracing::info!(tenant = %caller.tenant, metric = %q.metric, resolution = %q.resolution, points = answer.points.len(), "query answered");
        Ok(json(StatusCode::OK, &answer))
    }
}

impl<
    S: SeriesCatalog + RollupBuckets + Totals + TrailStore + BreakdownReader,
    D: DefinitionStore + CardSettings + GoalSettings + TenantSettings,
> Query<S, D>
{
    /// A derived metric: both metrics queried alike, combined per group and point.
    async fn derived(
        &self,
        caller: &Caller,
        q: &query::Query,
        derived: &pulse_metrics::definitions::Derived,
    ) -> Result<Response<Body>, ApiError> {
        if q.compare.is_some() {
            return Err(ApiError::invalid_field(
                &["compare_to"],
                "a derived metric is not compared; query its two metrics",
            ));
        }
        for metric in &derived.of {
            caller.require(required_role(metric))?;
        }
        let answer = self.reader(caller).derived_answer(q, derived).await?;
        tracing::info!(tenant = %caller.tenant, metric = %q.metric, points = answer.points.len(), "derived query answered");
        Ok(json(StatusCode::OK, &answer))
    }
}

/// The query string as a map (the last value of a repeated name wins).
fn query_params(req: &Request) -> BTreeMap<String, String> {
    req.query_string_parameters_ref()
        .map(|p| {
            p.iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// `GET /api/v1/metrics/history?metric=…&start=…&end=…&interval=…&aggregation=…` as the
/// query body it stands for (`range=24h` instead of `start`/`end`; `group_by` and
/// `aggregation` may repeat as comma lists). Problems point at the body's fields; a parameter
/// it does not take is a 400 naming it (a misspelt filter must not return unfiltered data).
fn history_query(req: &Request) -> Result<serde_json::Value, ApiError> {
    const TAKES: &[&str] = &[
        "metric",
        "range",
        "start",
        "end",
        "interval",
        "aggregation",
        "group_by",
        "limit",
        "compare_to",
    ];
    let params = req.query_string_parameters_ref();
    if let Some(k) = params
        .into_iter()
        .flat_map(|p| p.iter().map(|(k, _)| k))
        .find(|k| !TAKES.contains(k))
    {
        return Err(ApiError::invalid_field(
            &[k],
            format!(
                "unknown parameter; the history takes {} (filters: POST /api/v1/metrics/query)",
                TAKES.join(", ")
            ),
        ));
    }
    let get = |k: &str| params.and_then(|p| p.first(k)).map(str::to_owned);
    let list = |k: &str| {
        get(k).map(|v| {
            v.split(',')
                .map(|s| serde_json::Value::String(s.trim().to_owned()))
                .collect::<Vec<_>>()
        })
    };
    let mut body = serde_json::Map::new();
    if let Some(m) = get("metric") {
        body.insert("metric_name".into(), m.into());
    }
    match (get("range"), get("start")) {
        (Some(range), _) => {
            body.insert("time_range".into(), range.into());
        }
        (None, Some(start)) => {
            let mut range = serde_json::Map::new();
            range.insert("start".into(), start.into());
            if let Some(end) = get("end") {
                range.insert("end".into(), end.into());
            }
            body.insert("time_range".into(), range.into());
        }
        (None, None) => {}
    }
    if let Some(i) = get("interval") {
        body.insert("interval".into(), i.into());
    }
    if let Some(a) = list("aggregation") {
        body.insert("aggregations".into(), a.into());
    }
    if let Some(g) = list("group_by") {
        body.insert("group_by".into(), g.into());
    }
    if let Some(l) = get("limit") {
        let limit = l
            .parse::<u64>()
            .map_or(serde_json::Value::String(l), Into::into);
        body.insert("limit".into(), limit);
    }
    if let Some(c) = get("compare_to") {
        body.insert("compare_to".into(), c.into());
    }
    Ok(body.into())
}

impl<S, D> HttpHandler for Query<S, D>
where
    S: SeriesCatalog + RollupBuckets + Totals + TrailStore + BreakdownReader + 'static,
    D: DefinitionStore + CardSettings + GoalSettings + TenantSettings + 'static,
{
    async fn handle(&self, req: Request) -> Result<Response<Body>, lambda_http::Error> {
        serve_recorded(req, self.recorder.as_ref(), |req| self.respond(req)).await
    }
}
