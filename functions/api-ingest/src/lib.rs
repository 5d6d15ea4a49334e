//! `POST /api/v1/events`: a batch of up to 1,000 events (1 MB) from a server-side sender,
//! `POST /v1/metrics`: OTLP/HTTP metrics (protobuf or JSON) from any OpenTelemetry SDK, and
//! `POST /api/v1/imports` (admin): history as NDJSON or CSV, up to 50,000 events (5 MB) as old
//! as the daily rollups are kept, merged at once into the buckets of every resolution still
//! kept, with its hours' sessions and funnel trails ([`pulse_metrics::history`]): the charts
//! show it when the 202 arrives. Its events young enough for live ingest are also stored raw
//! (flagged, so the stream leaves them alone), so a later seal of their minute includes them.
//! An event without an id gets one derived from the import's bytes and its place, and each
//! bucket records the imports merged into it: an import sent again adds nothing twice.
//!
//! All or nothing: the batch is parsed whole ([`pulse_ingest::events::parse_batch`]) and any
//! invalid event rejects it with every problem listed, before anything is written. A valid
//! batch is written with BatchWriteItem; what DynamoDB leaves unprocessed is retried until the
//! write budget runs out, and then the 503 names the ids stored and not stored.

use lambda_http::http::StatusCode;
use lambda_http::http::header::CONTENT_TYPE;
use lambda_http::{Body, Request, Response};
use pulse_core::config::ClaimNames;
use pulse_core::identity::Caller;
use pulse_core::{ApiError, Config};
use pulse_http::FromRequest;
use pulse_http::selfmon::{RequestRecorder, serve_recorded};
use pulse_http::{CORRELATION_ID, HttpHandler, json};
use pulse_ingest::events::{Context, Event, Limits, parse_batch};
use pulse_ingest::imports::{Format, parse_import};
use pulse_ingest::otlp::{self, Encoding};
use pulse_metrics::breakdown::Kind;
use pulse_metrics::funnels::Trail;
use pulse_metrics::history::History;
use pulse_store::events::DynamoEvents;
use pulse_store::{
    BreakdownRecord, BreakdownWriter, DefinitionStore, EventWriter, HistoryWriter, Incomplete,
    TrailStore, TrailWriter,
};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// The routes this crate serves (template.yaml routes them to this function, and a test
/// checks the two agree).
pub const ROUTES: &[&str] = &[
    "POST /api/v1/events",
    "POST /v1/metrics",
    "POST /api/v1/imports",
];

/// How long a batch may spend writing before it answers 503.
const WRITE_BUDGET: Duration = Duration::from_secs(6);
/// How long an import may spend writing (the function times out at 30 s).
const IMPORT_WRITE_BUDGET: Duration = Duration::from_secs(24);
/// How long after its end a window is written by no merge but an import's: the stream merges
/// only minutes of the last [`pulse_metrics::live::LIVE_SECS`] (10 minutes), with margin.
const UNSHARED_AFTER_SECS: i64 = 3_600;
/// How long an import's lease lasts: past the function's 30 s timeout, so a crashed import
/// holds back the next one at most this long.
const IMPORT_LEASE_SECS: i64 = 120;
/// Events and bytes per import.
pub const IMPORT_MAX_EVENTS: usize = 50_000;
pub const IMPORT_MAX_BYTES: usize = 5 * 1024 * 1024;

/// The ingest endpoint with its dependencies: where events go, and the tenant's metric
/// definitions whose value ranges it enforces.
#[derive(Debug)]
pub struct Ingest<W, D, H> {
    /// Records each request as an `api_request` event of its tenant (wired on AWS).
    recorder: Option<Arc<dyn RequestRecorder>>,
    writer: W,
    definitions: D,
    /// Where an import's buckets and trails are merged.
    history: H,
    retention: pulse_core::time::Retention,
    series_cap: usize,
    claims: ClaimNames,
    limits: Limits,
    /// Limits of an import: more events, and as old as daily rollups are kept.
    import_limits: Limits,
    clock: fn() -> i64,
}

/// The 202 answer to an import.
#[derive(Debug, Serialize)]
pub struct Imported {
    pub accepted: usize,
    /// The oldest and newest event times (RFC 3339).
    pub from: String,
    pub to: String,
    /// Distinct minutes the import touched.
    pub minutes: usize,
    /// Buckets merged, over every resolution still kept.
    pub buckets: usize,
}

/// The 202 answer.
#[derive(Debug, Serialize)]
pub struct Accepted {
    pub accepted: usize,
    pub ids: Vec<String>,
}

/// Builds the handler from the function's configuration, as `main` and the local cloud do.
pub fn wire(
    config: &Config,
    aws: &aws_config::SdkConfig,
) -> Ingest<DynamoEvents, pulse_store::app::DynamoApp, pulse_store::metrics::DynamoMetrics> {
    Ingest::new(
        DynamoEvents::new(aws, &config.tables.events, config.raw_retention_days)
            .with_claims(&config.tables.app),
        pulse_store::app::DynamoApp::new(aws, &config.tables.app),
        pulse_store::metrics::DynamoMetrics::new(aws, &config.tables.metrics, config.retention),
        config,
    )
    .recording(pulse_http::selfmon::recorder(config, aws))
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl<
    W: EventWriter,
    D: DefinitionStore,
    H: HistoryWriter + TrailStore + TrailWriter + BreakdownWriter,
> Ingest<W, D, H>
{
    pub fn new(writer: W, definitions: D, history: H, config: &Config) -> Self {
        Self {
            writer,
            recorder: None,
            definitions,
            history,
            retention: config.retention,
            series_cap: config.series_cap,
            claims: config.claims.clone(),
            limits: config.limits.clone(),
            import_limits: Limits {
                max_events: IMPORT_MAX_EVENTS,
                max_body_bytes: IMPORT_MAX_BYTES,
                max_past_ms: config.retention.day_days.saturating_mul(86_400_000),
                ..config.limits.clone()
            },
            clock: now_ms,
        }
    }

    /// The same endpoint reading time from `clock` (epoch ms), for tests.
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
        if req.uri().path().ends_with("/imports") {
            caller.require(pulse_core::identity::Role::Admin)?;
            return self.import(&req, &caller).await;
        }
        caller.require_ingest()?;
        if req.uri().path().ends_with("/v1/metrics") && !req.uri().path().starts_with("/api/") {
            return self.otlp(&req, &caller).await;
        }
        let media = media_type(&req);
        if media != "application/json" && !media.ends_with("+json") {
            return Err(ApiError::UnsupportedMediaType(format!(
                "send the batch as application/json, not {media:?}"
            )));
        }
        let ctx = self.context(&req, &caller);
        let events = parse_batch(body(&req), &ctx)?;
        self.check(&caller, &events, |i| i).await?;
        self.write(&events).await?;
        tracing::info!(tenant = %caller.tenant, events = events.len(), "batch accepted");
        Ok(json(
            StatusCode::ACCEPTED,
            &Accepted {
                accepted: events.len(),
                ids: events.into_iter().map(|e| e.id).collect(),
            },
        ))
    }

    /// OTLP/HTTP metrics: 200 with an `ExportMetricsServiceResponse` in the request's encoding,
    /// naming any points left out in `partial_success`.
    async fn otlp(&self, req: &Request, caller: &Caller) -> Result<Response<Body>, ApiError> {
        let encoding = Encoding::from_content_type(&media_type(req)).ok_or_else(|| {
            ApiError::UnsupportedMediaType(
                "send OTLP as application/x-protobuf or application/json".into(),
            )
        })?;
        let coding = req
            .headers()
            .get("content-encoding")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("identity");
        if !coding.eq_ignore_ascii_case("identity") {
            return Err(ApiError::UnsupportedMediaType(format!(
                "content-encoding {coding} is not accepted; export uncompressed"
            )));
        }
        let bytes = body(req);
        if bytes.len() > self.limits.max_body_bytes {
            return Err(ApiError::PayloadTooLarge(format!(
                "an export is at most {} bytes",
                self.limits.max_body_bytes
            )));
        }
        let request = otlp::decode(bytes, encoding)?;
        let mut converted = otlp::to_events(&request, &self.context(req, caller));
        let definitions = self.definitions_of(caller).await?;
        converted.leave_out(&pulse_metrics::definitions::check(
            &definitions,
            &converted.events,
            |i| i,
        ));
        if !converted.events.is_empty() {
            self.write(&converted.events).await?;
        }
        tracing::info!(tenant = %caller.tenant, events = converted.events.len(), rejected = converted.rejected, "OTLP export accepted");
        let mut res = Response::new(Body::Binary(otlp::encode_response(
            &converted.response(),
            encoding,
        )));
        res.headers_mut().insert(
            CONTENT_TYPE,
            lambda_http::http::HeaderValue::from_static(encoding.content_type()),
        );
        Ok(res)
    }

    /// An import: validated whole, written with a longer budget, answered with its extent.
    async fn import(&self, req: &Request, caller: &Caller) -> Result<Response<Body>, ApiError> {
        let media = media_type(req);
        let format = Format::from_media_type(&media).ok_or_else(|| {
            ApiError::UnsupportedMediaType(format!(
                "send an import as application/x-ndjson or text/csv, not {media:?}"
            ))
        })?;
        let ctx = Context {
            limits: &self.import_limits,
            ..self.context(req, caller)
        };
        let bytes = body(req);
        let mut events = parse_import(bytes, format, &ctx)?;
        self.check(caller, &events, |i| i).await?;
        let contribution = format!("{:032x}", xxhash_rust::xxh3::xxh3_128(bytes));
        for (i, e) in events.iter_mut().enumerate() {
            if !e.supplied_id {
                e.id = format!("imp-{}-{i}", &contribution[..16]);
            }
        }
        let now_ms = (self.clock)();
        let now = now_ms.div_euclid(1000);
        if !self
            .history
            .lease_imports(&caller.tenant, now, now + IMPORT_LEASE_SECS)
            .await?
        {
            return Err(ApiError::Conflict(
                "another import of this tenant is being merged; send this one when it has answered"
                    .into(),
            ));
        }
        let merged = self
            .split_and_merge(caller, &events, &contribution, now_ms)
            .await;
        let released = self.history.release_imports(&caller.tenant).await;
        let (buckets, recent) = merged?;
        released?;
        let times = events.iter().map(|e| e.timestamp_ms);
        let (from, to) = (times.clone().min(), times.max());
        let minutes: std::collections::BTreeSet<i64> = events
            .iter()
            .map(|e| e.timestamp_ms.div_euclid(60_000))
            .collect();
        let rfc3339 = |ms: Option<i64>| {
            ms.and_then(chrono::DateTime::from_timestamp_millis)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                .unwrap_or_default()
        };
        tracing::info!(tenant = %caller.tenant, events = events.len(), minutes = minutes.len(), buckets, raw = recent, "import merged");
        Ok(json(
            StatusCode::ACCEPTED,
            &Imported {
                accepted: events.len(),
                from: rfc3339(from),
                to: rfc3339(to),
                minutes: minutes.len(),
                buckets,
            },
        ))
    }

    /// Splits an import's events where its first send did (recent: within the live window
    /// then, stored raw and sealed; old: history) and merges them ([`Self::store_and_merge`]);
    /// how many buckets and how many events were recent. The caller holds the lease.
    async fn split_and_merge(
        &self,
        caller: &Caller,
        events: &[Event],
        contribution: &str,
        now_ms: i64,
    ) -> Result<(usize, usize), ApiError> {
        let now = now_ms.div_euclid(1000);
        let keep_until = now + self.retention.day_days.saturating_mul(86_400);
        let live_from = self
            .history
            .import_boundary(
                &caller.tenant,
                contribution,
                now_ms - self.limits.max_past_ms,
                keep_until,
            )
            .await?;
        let (recent, old): (Vec<Event>, Vec<Event>) = events
            .iter()
            .cloned()
            .partition(|e| e.timestamp_ms >= live_from);
        let buckets = self
            .store_and_merge(caller, events, (&recent, &old), contribution, now)
            .await?;
        Ok((buckets, recent.len()))
    }

    /// Stores an import's `recent` events raw, then merges its buckets and trails, and writes
    /// the `old` events' breakdowns (the recent ones' come from sealing); how many buckets.
    /// The caller holds the tenant's import lease, so an import refused with a 409 has stored
    /// nothing.
    async fn store_and_merge(
        &self,
        caller: &Caller,
        events: &[Event],
        (recent, old): (&[Event], &[Event]),
        contribution: &str,
        now: i64,
    ) -> Result<usize, ApiError> {
        if !recent.is_empty() {
            let deadline = tokio::time::Instant::now() + IMPORT_WRITE_BUDGET;
            self.writer
                .write_imported(recent, deadline)
                .await
                .map_err(partially_stored)?;
        }
        let mut history = History::of(events);
        let refused = self
            .history
            .register_series(&history.series(), self.series_cap)
            .await?;
        history.fold_into_other(&refused);
        let buckets = history.rollups(&self.retention, now);
        // Only the stream merges into a bucket (read, add, write) besides imports, and only
        // into minutes of the last `LIVE_SECS`; the rollup job replaces buckets, which no
        // condition on our write would order anyway. So windows that ended an hour ago are
        // this import's alone under its lease, and go in batches.
        let unshared_before = now - UNSHARED_AFTER_SECS;
        self.history
            .merge_history(&buckets, contribution, unshared_before)
            .await?;
        self.merge_trails(caller, history.trails()).await?;
        // Keyed by the import, so an import sent again rewrites its records instead of adding.
        let owned;
        let past = if recent.is_empty() {
            &history
        } else {
            let mut h = History::of(old);
            h.fold_into_other(&refused);
            owned = h;
            &owned
        };
        let records: Vec<BreakdownRecord> = past
            .breakdowns(&self.retention, now)
            .into_iter()
            .map(|(r, start, b)| {
                (
                    r,
                    start,
                    Kind::Imported(contribution.to_owned()),
                    b.encode(),
                )
            })
            .collect();
        self.history
            .put_breakdowns(&caller.tenant, &records)
            .await?;
        Ok(buckets.len())
    }

    /// Merges an import's hourly trails into the stored ones (read in one range).
    async fn merge_trails(&self, caller: &Caller, trails: &[Trail]) -> Result<(), ApiError> {
        let (Some(first), Some(last)) = (trails.first(), trails.last()) else {
            return Ok(());
        };
        let mut stored: std::collections::HashMap<i64, Trail> = std::collections::HashMap::new();
        for chunk in self
            .history
            .trails(&caller.tenant, first.hour, last.hour + 3_600)
            .await?
        {
            if let Some(t) = Trail::decode(&chunk) {
                match stored.get_mut(&t.hour) {
                    Some(have) => have.merge(&t),
                    None => {
                        stored.insert(t.hour, t);
                    }
                }
            }
        }
        for trail in trails {
            let merged = match stored.remove(&trail.hour) {
                Some(mut have) => {
                    have.merge(trail);
                    have
                }
                None => trail.clone(),
            };
            self.history
                .put_trail(&caller.tenant, trail.hour, &merged.encode())
                .await?;
        }
        Ok(())
    }

    fn context<'a>(&'a self, req: &'a Request, caller: &'a Caller) -> Context<'a> {
        Context {
            tenant: &caller.tenant,
            now_ms: (self.clock)(),
            correlation_id: req
                .headers()
                .get(CORRELATION_ID)
                .and_then(|v| v.to_str().ok()),
            limits: &self.limits,
        }
    }

    /// The caller's tenant's metric definitions by name.
    async fn definitions_of(
        &self,
        caller: &Caller,
    ) -> Result<std::collections::HashMap<String, pulse_metrics::definitions::Definition>, ApiError>
    {
        let defs = self.definitions.definitions(&caller.tenant).await?;
        Ok(defs.into_iter().map(|d| (d.name.clone(), d)).collect())
    }

    /// Refuses the whole request when an event breaks the tenant's metric definitions.
    async fn check(
        &self,
        caller: &Caller,
        events: &[Event],
        index: impl Fn(usize) -> usize,
    ) -> Result<(), ApiError> {
        let defs = self.definitions_of(caller).await?;
        let errors = pulse_metrics::definitions::check(&defs, events, index);
        if errors.is_empty() {
            return Ok(());
        }
        Err(ApiError::Validation {
            detail: format!(
                "{} events break the metric definitions; nothing was stored",
                errors.len()
            ),
            errors,
        })
    }

    async fn write(&self, events: &[Event]) -> Result<(), ApiError> {
        self.write_within(events, WRITE_BUDGET).await
    }

    async fn write_within(&self, events: &[Event], budget: Duration) -> Result<(), ApiError> {
        let deadline = tokio::time::Instant::now() + budget;
        self.writer
            .write_events(events, deadline)
            .await
            .map_err(partially_stored)
    }
}

/// The 503 naming what was stored and what not.
fn partially_stored(
    Incomplete {
        stored,
        unstored,
        last_error,
    }: Incomplete,
) -> ApiError {
    tracing::warn!(
        stored = stored.len(),
        unstored = unstored.len(),
        "batch partially stored"
    );
    ApiError::PartiallyStored {
        stored,
        unstored,
        source: last_error.map(|e| Box::new(e) as _),
    }
}

fn media_type(req: &Request) -> String {
    req.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn body(req: &Request) -> &[u8] {
    match req.body() {
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b,
        _ => b"",
    }
}

impl<W, D, H> HttpHandler for Ingest<W, D, H>
where
    W: EventWriter + 'static,
    D: DefinitionStore + 'static,
    H: HistoryWriter + TrailStore + TrailWriter + BreakdownWriter + 'static,
{
    async fn handle(&self, req: Request) -> Result<Response<Body>, lambda_http::Error> {
        serve_recorded(req, self.recorder.as_ref(), |req| self.respond(req)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pulse_core::config::Tables;
    use pulse_ingest::events::Event;
    use pulse_metrics::aggregate::{Bucket, SeriesKey};
    use pulse_metrics::rollup::BucketAt;
    use serde_json::{Value, json};
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::Mutex;

    const NOW: i64 = 1_795_341_600_000;

    /// Keeps what it is asked to write; `stall` leaves the last event unwritten.
    #[derive(Default)]
    struct Memory {
        written: Mutex<Vec<Event>>,
        imported: Mutex<Vec<Event>>,
        stall: bool,
    }

    impl EventWriter for Memory {
        async fn write_events(
            &self,
            events: &[Event],
            _deadline: tokio::time::Instant,
        ) -> Result<(), Incomplete> {
            let mut w = self.written.lock().expect("lock");
            if self.stall {
                let (done, rest) = events.split_at(events.len() - 1);
                w.extend_from_slice(done);
                return Err(Incomplete {
                    stored: done.iter().map(|e| e.id.clone()).collect(),
                    unstored: rest.iter().map(|e| e.id.clone()).collect(),
                    last_error: None,
                });
            }
            w.extend_from_slice(events);
            Ok(())
        }

        async fn write_imported(
            &self,
            events: &[Event],
            _deadline: tokio::time::Instant,
        ) -> Result<(), Incomplete> {
            self.imported
                .lock()
                .expect("lock")
                .extend_from_slice(events);
            Ok(())
        }
    }

    /// Breakdown records' chunks by (resolution, start, kind key).
    type BreakdownChunks = BTreeMap<(String, i64, String), Vec<Vec<u8>>>;

    /// Buckets merged as the DynamoDB adapter merges them (an import's id once per bucket),
    /// and trails by hour.
    #[derive(Default)]
    struct Histories {
        buckets: Mutex<BTreeMap<BucketAt, (Bucket, BTreeSet<String>)>>,
        trails: Mutex<BTreeMap<i64, Vec<Vec<u8>>>>,
        leased: Mutex<bool>,
        breakdowns: Mutex<BreakdownChunks>,
        boundaries: Mutex<BTreeMap<String, i64>>,
    }

    impl BreakdownWriter for Histories {
        async fn put_breakdowns(
            &self,
            _: &pulse_core::identity::TenantId,
            records: &[BreakdownRecord],
        ) -> Result<(), pulse_store::StoreError> {
            let mut all = self.breakdowns.lock().expect("lock");
            for (r, start, kind, chunks) in records {
                all.insert((r.to_string(), *start, kind.key()), chunks.clone());
            }
            Ok(())
        }
    }

    impl pulse_store::SeriesRegistry for Histories {
        async fn register_series(
            &self,
            _: &[(SeriesKey, BTreeMap<String, String>)],
            _: usize,
        ) -> Result<Vec<SeriesKey>, pulse_store::StoreError> {
            Ok(Vec::new())
        }
    }

    impl HistoryWriter for Histories {
        async fn lease_imports(
            &self,
            _: &pulse_core::identity::TenantId,
            _: i64,
            _: i64,
        ) -> Result<bool, pulse_store::StoreError> {
            let mut leased = self.leased.lock().expect("lock");
            Ok(!std::mem::replace(&mut *leased, true))
        }

        async fn import_boundary(
            &self,
            _: &pulse_core::identity::TenantId,
            contribution: &str,
            live_from: i64,
            _: i64,
        ) -> Result<i64, pulse_store::StoreError> {
            let mut kept = self.boundaries.lock().expect("lock");
            Ok(*kept.entry(contribution.to_owned()).or_insert(live_from))
        }

        async fn release_imports(
            &self,
            _: &pulse_core::identity::TenantId,
        ) -> Result<(), pulse_store::StoreError> {
            *self.leased.lock().expect("lock") = false;
            Ok(())
        }

        async fn merge_history(
            &self,
            buckets: &[(BucketAt, Bucket)],
            contribution: &str,
            _: i64,
        ) -> Result<(), pulse_store::StoreError> {
            let mut stored = self.buckets.lock().expect("lock");
            for (at, bucket) in buckets {
                let (have, imports) = stored.entry(at.clone()).or_default();
                if imports.insert(contribution.to_owned()) {
                    have.merge(bucket);
                }
            }
            Ok(())
        }
    }

    impl TrailStore for Histories {
        async fn trails(
            &self,
            _: &pulse_core::identity::TenantId,
            from: i64,
            to: i64,
        ) -> Result<Vec<Vec<u8>>, pulse_store::StoreError> {
            let trails = self.trails.lock().expect("lock");
            Ok(trails
                .range(from..to)
                .flat_map(|(_, c)| c.clone())
                .collect())
        }
    }

    impl TrailWriter for Histories {
        async fn put_trail(
            &self,
            _: &pulse_core::identity::TenantId,
            hour: i64,
            chunks: &[Vec<u8>],
        ) -> Result<(), pulse_store::StoreError> {
            self.trails
                .lock()
                .expect("lock")
                .insert(hour, chunks.to_vec());
            Ok(())
        }
    }

    /// A tenant without metric definitions.
    #[derive(Debug)]
    struct NoDefinitions;

    impl DefinitionStore for NoDefinitions {
        async fn definitions(
            &self,
            _: &pulse_core::identity::TenantId,
        ) -> Result<Vec<pulse_metrics::definitions::Definition>, pulse_store::StoreError> {
            Ok(Vec::new())
        }
    }

    fn config() -> Config {
        Config {
            stage: "test".into(),
            ..Config::with_tables(Tables {
                events: "ev".into(),
                metrics: "me".into(),
                app: "ap".into(),
            })
        }
    }

    fn request(role: &str, content_type: &str, body: Value) -> Request {
        request_as(
            json!({"jwt": {"claims": {"sub": "u", "custom:tenant": "acme", "cognito:groups": format!("[{role}]")}, "scopes": null}}),
            content_type,
            body,
        )
    }

    /// A request as API Gateway passes it after `authorizer` (the request context's
    /// `authorizer` object: a JWT authorizer's claims or a Lambda authorizer's context).
    fn request_as(authorizer: Value, content_type: &str, body: Value) -> Request {
        let event = json!({
            "version": "2.0", "routeKey": "POST /api/v1/events", "rawPath": "/api/v1/events", "rawQueryString": "",
            "headers": {"content-type": content_type, "x-correlation-id": "corr-1"},
            "requestContext": {
                "accountId": "1", "apiId": "a", "domainName": "d", "requestId": "r", "routeKey": "POST /api/v1/events",
                "stage": "$default", "time": "22/Nov/2026:10:00:00 +0000", "timeEpoch": NOW,
                "http": {"method": "POST", "path": "/api/v1/events", "protocol": "HTTP/1.1", "sourceIp": "192.0.2.1", "userAgent": "t"},
                "authorizer": authorizer
            },
            "body": body.to_string(), "isBase64Encoded": false
        });
        lambda_http::request::from_str(&event.to_string()).expect("HTTP API event")
    }

    fn body(res: &Response<Body>) -> Value {
        match res.body() {
            Body::Text(t) => serde_json::from_str(t).expect("json"),
            other => panic!("unexpected body {other:?}"),
        }
    }

    fn ingest(writer: Memory) -> Ingest<Memory, NoDefinitions, Histories> {
        Ingest::new(writer, NoDefinitions, Histories::default(), &config()).with_clock(|| NOW)
    }

    #[tokio::test]
    async fn a_valid_batch_is_written_with_the_tenant_and_correlation_id() {
        let handler = ingest(Memory::default());
        let res = handler
            .handle(request(
                "admin",
                "application/json",
                json!({"events": [
                    {"kind": "metric", "name": "cpu", "value": 0.5, "id": "a"},
                    {"kind": "page_view", "path": "/"}
                ]}),
            ))
            .await
            .expect("response");
        assert_eq!(res.status(), 202);
        let v = body(&res);
        assert_eq!(v["accepted"], 2);
        assert_eq!(v["ids"][0], "a");
        let written = handler.writer.written.lock().expect("lock");
        assert_eq!(written.len(), 2);
        assert_eq!(written[0].tenant.as_str(), "acme");
        assert_eq!(written[1].correlation_id.as_deref(), Some("corr-1"));
        assert_eq!(written[1].timestamp_ms, NOW);
    }

    #[tokio::test]
    async fn an_ingest_key_writes_into_its_own_tenant_only() {
        // Given a request the Lambda authorizer allowed for a key of tenant "keyed"
        let handler = ingest(Memory::default());
        let keyed = request_as(
            json!({"lambda": {"tenant": "keyed", "sub": "key:0123abcd", "roles": "", "scopes": "ingest", "key_id": "0123abcd"}}),
            "application/json",
            json!({"events": [{"kind": "metric", "name": "cpu", "value": 1.0, "tags": {"tenant": "acme"}}]}),
        );
        // When it is handled
        let res = handler.handle(keyed).await.expect("response");
        // Then the event belongs to the key's tenant, whatever the body says
        assert_eq!(res.status(), 202);
        let written = handler.writer.written.lock().expect("lock");
        assert_eq!(written[0].tenant.as_str(), "keyed");
    }

    #[tokio::test]
    async fn a_key_without_the_ingest_scope_and_an_analyst_are_forbidden() {
        let handler = ingest(Memory::default());
        let scopeless = request_as(
            json!({"lambda": {"tenant": "acme", "sub": "key:0123abcd", "roles": "", "scopes": ""}}),
            "application/json",
            json!({"events": [{"kind": "metric", "name": "cpu", "value": 1.0}]}),
        );
        let analyst = request(
            "analyst",
            "application/json",
            json!({"events": [{"kind": "metric", "name": "cpu", "value": 1.0}]}),
        );
        for req in [scopeless, analyst] {
            let res = handler.handle(req).await.expect("response");
            assert_eq!(res.status(), 403);
        }
        assert!(handler.writer.written.lock().expect("lock").is_empty());
    }

    fn import(authorizer: Value, content_type: &str, body: &str) -> Request {
        let mut req = request_as(authorizer, content_type, json!(null));
        *req.uri_mut() = "/api/v1/imports".parse().expect("uri");
        *req.body_mut() = Body::Text(body.to_owned());
        req
    }

    #[tokio::test]
    async fn an_admin_imports_old_history_and_a_key_may_not() {
        // Given 40-day-old events as NDJSON
        let handler = ingest(Memory::default());
        let old = chrono::DateTime::from_timestamp_millis(NOW - 40 * 86_400_000)
            .expect("time")
            .to_rfc3339();
        let ndjson = format!(
            "{{\"kind\":\"metric\",\"name\":\"cpu\",\"value\":1,\"timestamp\":\"{old}\"}}\n{{\"kind\":\"page_view\",\"path\":\"/\",\"timestamp\":\"{old}\"}}\n"
        );
        let admin = json!({"jwt": {"claims": {"sub": "u", "custom:tenant": "acme", "cognito:groups": "[admin]"}, "scopes": null}});
        // When an admin imports them
        let res = handler
            .handle(import(admin.clone(), "application/x-ndjson", &ndjson))
            .await
            .expect("response");
        // Then both are merged into rollups (a batch would refuse them as too old), not stored
        // raw (no seal will read them), and the answer says where
        assert_eq!(res.status(), 202);
        let v = body(&res);
        assert_eq!(
            (v["accepted"].as_u64(), v["minutes"].as_u64()),
            (Some(2), Some(1))
        );
        assert!(v["buckets"].as_u64().is_some_and(|n| n > 0));
        assert!(handler.writer.written.lock().expect("lock").is_empty());
        assert!(handler.writer.imported.lock().expect("lock").is_empty());
        // And an ingest key, or the wrong media type, is refused
        let key = json!({"lambda": {"tenant": "acme", "sub": "key:0123abcd", "roles": "", "scopes": "ingest"}});
        let res = handler
            .handle(import(key, "application/x-ndjson", &ndjson))
            .await
            .expect("response");
        assert_eq!(res.status(), 403);
        let res = handler
            .handle(import(admin, "application/json", &ndjson))
            .await
            .expect("response");
        assert_eq!(res.status(), 415);
    }

    #[tokio::test]
    async fn an_invalid_batch_writes_nothing() {
        let handler = ingest(Memory::default());
        let res = handler
            .handle(request(
                "admin",
                "application/json",
                json!({"events": [
                    {"kind": "metric", "name": "cpu", "value": 1},
                    {"kind": "metric", "name": "cpu"}
                ]}),
            ))
            .await
            .expect("response");
        assert_eq!(res.status(), 400);
        assert_eq!(body(&res)["errors"][0]["pointer"], "#/events/1/value");
        assert!(handler.writer.written.lock().expect("lock").is_empty());
    }

    #[tokio::test]
    async fn only_admins_may_ingest_and_only_json() {
        let handler = ingest(Memory::default());
        let batch = json!({"events": [{"kind": "metric", "name": "cpu", "value": 1}]});
        let viewer = handler
            .handle(request("viewer", "application/json", batch.clone()))
            .await
            .expect("response");
        assert_eq!(viewer.status(), 403);
        let text = handler
            .handle(request("admin", "text/plain", batch))
            .await
            .expect("response");
        assert_eq!(text.status(), 415);
        assert!(handler.writer.written.lock().expect("lock").is_empty());
    }

    #[tokio::test]
    async fn a_stalled_write_is_503_naming_the_stored_and_unstored_ids() {
        let handler = ingest(Memory {
            stall: true,
            ..Default::default()
        });
        let res = handler
            .handle(request(
                "admin",
                "application/json",
                json!({"events": [
                    {"kind": "metric", "name": "cpu", "value": 1, "id": "x1"},
                    {"kind": "metric", "name": "cpu", "value": 2, "id": "x2"}
                ]}),
            ))
            .await
            .expect("response");
        assert_eq!(res.status(), 503);
        let v = body(&res);
        assert_eq!(v["stored_ids"], json!(["x1"]));
        assert_eq!(v["unstored_ids"], json!(["x2"]));
    }

    fn admin() -> Value {
        json!({"jwt": {"claims": {"sub": "u", "custom:tenant": "acme", "cognito:groups": "[admin]"}, "scopes": null}})
    }

    fn at(ms: i64) -> String {
        chrono::DateTime::from_timestamp_millis(ms)
            .expect("time")
            .to_rfc3339()
    }

    /// The status of an admin's NDJSON import.
    async fn send(handler: &Ingest<Memory, NoDefinitions, Histories>, ndjson: &str) -> u16 {
        handler
            .handle(import(admin(), "application/x-ndjson", ndjson))
            .await
            .expect("response")
            .status()
            .as_u16()
    }

    /// The stored count of `metric`'s total at `resolution`, over every window.
    fn count(
        handler: &Ingest<Memory, NoDefinitions, Histories>,
        metric: &str,
        resolution: pulse_metrics::rollup::Resolution,
    ) -> u64 {
        handler
            .history
            .buckets
            .lock()
            .expect("lock")
            .iter()
            .filter(|(at, _)| {
                at.series.metric == metric
                    && at.resolution == resolution
                    && at.series.series == pulse_metrics::aggregate::TOTAL_SERIES
            })
            .map(|(_, (b, _))| b.count)
            .sum()
    }

    /// An import of a page view of `/` 2 hours before `NOW` and one of `/pricing` 20 days before.
    fn recent_and_old_views() -> String {
        let (recent, old) = (at(NOW - 2 * 3_600_000), at(NOW - 20 * 86_400_000));
        format!(
            "{{\"kind\":\"page_view\",\"path\":\"/\",\"visitor\":\"v1\",\"timestamp\":\"{recent}\"}}\n{{\"kind\":\"page_view\",\"path\":\"/pricing\",\"visitor\":\"v2\",\"timestamp\":\"{old}\"}}\n"
        )
    }

    /// The page views in `handler`'s breakdown records, by (resolution, path).
    fn imported_paths(
        handler: &Ingest<Memory, NoDefinitions, Histories>,
    ) -> BTreeMap<(String, String), u64> {
        let breakdowns = handler.history.breakdowns.lock().expect("lock");
        let mut paths = BTreeMap::new();
        for ((r, _, kind), chunks) in breakdowns.iter() {
            assert!(kind.starts_with('i'), "{kind}");
            let mut b = pulse_metrics::breakdown::Breakdown::default();
            for c in chunks {
                assert!(b.add_chunk(c));
            }
            for (_, tags, bucket) in b.of_metric(pulse_metrics::aggregate::WEB_PAGES) {
                *paths.entry((r.clone(), tags["path"].clone())).or_insert(0) += bucket.count;
            }
        }
        paths
    }

    #[tokio::test]
    async fn an_import_is_in_every_resolution_at_once_and_sent_again_counts_once() {
        use pulse_metrics::rollup::Resolution;
        // Given page views from 2 hours and from 20 days ago, without ids
        let handler = ingest(Memory::default());
        let ndjson = recent_and_old_views();
        // When an admin imports them, and sends the same import again
        for _ in 0..2 {
            assert_eq!(send(&handler, &ndjson).await, 202);
        }
        // Then each view is counted once at every resolution that still keeps its window
        assert_eq!(count(&handler, "page_view", Resolution::Day), 2);
        assert_eq!(count(&handler, "page_view", Resolution::Hour), 2);
        assert_eq!(count(&handler, "page_view", Resolution::FiveMinutes), 2);
        assert_eq!(count(&handler, "page_view", Resolution::Minute), 1);
        // And each is a visit, with a trail for funnels
        assert_eq!(
            count(&handler, pulse_metrics::sessions::SESSIONS, Resolution::Day),
            2
        );
        assert_eq!(handler.history.trails.lock().expect("lock").len(), 2);
        // And the old one's breakdown is written once per window, keyed by the import, the
        // recent one's left to sealing
        let paths = imported_paths(&handler);
        assert_eq!(
            paths.get(&("1d".to_owned(), "/pricing".to_owned())),
            Some(&1)
        );
        assert_eq!(
            paths.get(&("1h".to_owned(), "/pricing".to_owned())),
            Some(&1)
        );
        assert!(!paths.keys().any(|(_, p)| p == "/"), "{paths:?}");
        // And only the recent one is stored raw, flagged for the stream, under the same id
        // both times (an id derived from the import, so the resend overwrote it)
        let raw = handler.writer.imported.lock().expect("lock");
        assert_eq!(raw.len(), 2);
        assert_eq!(raw[0].id, raw[1].id);
        assert!(raw[0].id.starts_with("imp-"));
        assert!(handler.writer.written.lock().expect("lock").is_empty());
    }

    #[tokio::test]
    async fn an_import_sent_again_after_its_recent_events_aged_splits_them_as_its_first_send_did() {
        // Given an import of a page view 2 hours old (stored raw, left to sealing) and one 20
        // days old (history)
        let handler = ingest(Memory::default());
        let ndjson = recent_and_old_views();
        assert_eq!(send(&handler, &ndjson).await, 202);
        // When the same import is sent again 8 days later, when the first view is past the
        // live window too
        let handler = handler.with_clock(|| NOW + 8 * 86_400_000);
        assert_eq!(send(&handler, &ndjson).await, 202);
        // Then its history records still hold only the old view (the first one was sealed
        // from its raw event: in the history too it would count twice in breakdowns)
        let paths: BTreeSet<String> = imported_paths(&handler)
            .into_keys()
            .map(|(_, p)| p)
            .collect();
        assert_eq!(paths, BTreeSet::from(["/pricing".to_owned()]));
        // And the first view went to the raw store both times, under one id
        let raw = handler.writer.imported.lock().expect("lock");
        assert_eq!(raw.len(), 2);
        assert_eq!(raw[0].id, raw[1].id);
    }

    #[tokio::test]
    async fn an_import_while_another_is_merged_is_a_409_and_the_lease_is_given_back() {
        // Given another import of the tenant holding the lease
        let handler = ingest(Memory::default());
        *handler.history.leased.lock().expect("lock") = true;
        let line = format!(
            "{{\"kind\":\"metric\",\"name\":\"cpu\",\"value\":1,\"timestamp\":\"{}\"}}\n",
            at(NOW - 86_400_000)
        );
        // When an import arrives, it is refused with nothing merged
        assert_eq!(send(&handler, &line).await, 409);
        assert!(handler.history.buckets.lock().expect("lock").is_empty());
        // And once the lease is free it is merged, and gives the lease back
        *handler.history.leased.lock().expect("lock") = false;
        assert_eq!(send(&handler, &line).await, 202);
        assert!(!*handler.history.leased.lock().expect("lock"));
    }

    #[tokio::test]
    async fn two_imports_into_one_hour_add_up_and_merge_their_trails() {
        use pulse_metrics::rollup::Resolution;
        // Given two different imports of views in the same hour, 3 days ago
        let handler = ingest(Memory::default());
        let t = NOW - 3 * 86_400_000;
        for (path, visitor, ms) in [("/", "v1", t), ("/pricing", "v1", t + 60_000)] {
            let line = format!(
                "{{\"kind\":\"page_view\",\"path\":\"{path}\",\"visitor\":\"{visitor}\",\"timestamp\":\"{}\"}}\n",
                at(ms)
            );
            assert_eq!(send(&handler, &line).await, 202);
        }
        // Then the hour counts both, and its trail holds the visitor's two steps in order
        assert_eq!(count(&handler, "page_view", Resolution::Hour), 2);
        let trails = handler.history.trails.lock().expect("lock");
        let trail = trails
            .values()
            .next()
            .and_then(|c| Trail::decode(&c[0]))
            .expect("trail");
        assert_eq!(trail.visitors.len(), 1);
        assert_eq!(trail.visitors[0].1.len(), 2);
    }
}
