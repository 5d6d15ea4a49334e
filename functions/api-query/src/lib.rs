//! `POST /api/v1/metrics/query`: the points of one metric over a range, from the rollup
//! buckets of the resolution the range calls for ([`pulse_shared::query`]); and
//! `GET /api/v1/metrics/history`, the same query in query-string form.
//!
//! A query reads the metric's series from the registry (one Query), then each series' buckets
//! in the range (one Query per series, 16 at a time), and computes groups, filters,
//! aggregations and top-k in memory. Every role may query; business metrics need analyst and
//! system metrics admin ([`pulse_shared::query::required_role`]). A tenant only ever reads
//! keys that start with its own id.

use futures::StreamExt;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, RequestExt, Response};
use pulse_shared::aggregate::SeriesKey;
use pulse_shared::config::ClaimNames;
use pulse_shared::http::{HttpHandler, json, serve};
use pulse_shared::identity::Caller;
use pulse_shared::query::{self, SeriesData, required_role};
use pulse_shared::rollup::Retention;
use pulse_shared::store::metrics::DynamoMetrics;
use pulse_shared::store::{RollupBuckets, SeriesCatalog, StoreError};
use pulse_shared::{ApiError, Config};

/// Series read at once.
const CONCURRENCY: usize = 16;

/// The query endpoint with its store.
#[derive(Debug)]
pub struct Query<S> {
    store: S,
    claims: ClaimNames,
    retention: Retention,
    clock: fn() -> i64,
}

/// Builds the handler from the function's configuration, as `main` and the local cloud do.
pub fn wire(config: &Config, aws: &aws_config::SdkConfig) -> Query<DynamoMetrics> {
    Query::new(
        DynamoMetrics::new(aws, &config.tables.metrics, config.retention),
        config,
    )
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

impl<S: SeriesCatalog + RollupBuckets> Query<S> {
    pub fn new(store: S, config: &Config) -> Self {
        Self {
            store,
            claims: config.claims.clone(),
            retention: config.retention,
            clock: now_secs,
        }
    }

    /// The same endpoint reading time from `clock` (epoch s), for tests.
    pub fn with_clock(self, clock: fn() -> i64) -> Self {
        Self { clock, ..self }
    }

    async fn respond(&self, req: Request) -> Result<Response<Body>, ApiError> {
        let caller = Caller::from_request(&req, &self.claims)?;
        let body = if req.method() == lambda_http::http::Method::GET {
            history_query(&req)
        } else {
            let bytes: &[u8] = match req.body() {
                Body::Text(t) => t.as_bytes(),
                Body::Binary(b) => b,
                _ => b"",
            };
            serde_json::from_slice(bytes).map_err(|e| {
                ApiError::invalid_field::<&str>(&[], format!("the query is not valid JSON: {e}"))
            })?
        };
        let q = query::parse(&body, (self.clock)(), &self.retention)?;
        caller.require(required_role(&q.metric))?;
        let unavailable = |e: StoreError| ApiError::Unavailable {
            detail: "metrics are unavailable".into(),
            source: Some(Box::new(e)),
        };
        let series = self
            .store
            .series(&caller.tenant, &q.metric)
            .await
            .map_err(unavailable)?;
        if series.is_empty() {
            return Err(ApiError::NotFound(format!(
                "no metric {:?} has data for this tenant",
                q.metric
            )));
        }
        let q = &q;
        let compared = q.comparison();
        // One read per series covers a range and the period just before it.
        let from = compared.as_ref().map_or(q.start, |c| c.start.min(q.start));
        let contiguous = compared.as_ref().is_none_or(|c| c.end >= q.start);
        let tenant = &caller.tenant;
        let matching: Vec<(String, std::collections::BTreeMap<String, String>)> = series
            .into_iter()
            .filter(|(_, tags)| q.filters.iter().all(|f| f.matches(tags)))
            .collect();
        let read =
            |start: i64,
             end: i64,
             matching: Vec<(String, std::collections::BTreeMap<String, String>)>| async move {
                let out: Vec<Result<SeriesData, StoreError>> = futures::stream::iter(matching)
                    .map(|(id, tags)| async move {
                        let key = SeriesKey {
                            tenant: tenant.clone(),
                            metric: q.metric.clone(),
                            series: id,
                        };
                        let buckets = self.store.buckets(&key, q.resolution, start, end).await?;
                        Ok((tags, buckets))
                    })
                    .buffer_unordered(CONCURRENCY)
                    .collect()
                    .await;
                out.into_iter().collect::<Result<Vec<_>, _>>()
            };
        let (main_from, main_to) = if contiguous {
            (from, q.end)
        } else {
            (q.start, q.end)
        };
        let series = read(main_from, main_to, matching.clone())
            .await
            .map_err(unavailable)?;
        let mut answer = query::compute(q, &series);
        if let Some(c) = &compared {
            let earlier = if contiguous {
                query::compute(c, &series)
            } else {
                let series = read(c.start, c.end, matching).await.map_err(unavailable)?;
                query::compute(c, &series)
            };
            answer.comparison = Some(Box::new(earlier));
        }
        tracing::info!(tenant = %caller.tenant, metric = %q.metric, resolution = %q.resolution, series = series.len(), points = answer.points.len(), "query answered");
        Ok(json(StatusCode::OK, &answer))
    }
}

/// `GET /api/v1/metrics/history?metric=…&start=…&end=…&interval=…&aggregation=…` as the
/// query body it stands for (`range=24h` instead of `start`/`end`; `group_by` and
/// `aggregation` may repeat as comma lists). Problems point at the body's fields.
fn history_query(req: &Request) -> serde_json::Value {
    let params = req.query_string_parameters_ref();
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
    body.into()
}

impl<S: SeriesCatalog + RollupBuckets + 'static> HttpHandler for Query<S> {
    async fn handle(&self, req: Request) -> Result<Response<Body>, lambda_http::Error> {
        serve(req, |req| self.respond(req)).await
    }
}
