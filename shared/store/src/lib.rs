//! `pulse-store`: the key design of Pulse's three tables, the narrow traits functions depend on,
//! and the only adapters that touch `aws-sdk-*` (DynamoDB, S3, SQS, API Gateway management).
//!
//! | table   | partition key `pk`                       | sort key `sk`             | lifecycle |
//! |---------|------------------------------------------|---------------------------|-----------|
//! | Events  | `{tenant}#{minute}#{shard}`               | `{ts_ms}#{event_id}`      | TTL 7 d, stream NEW_IMAGE |
//! | Metrics | `{tenant}#{metric}#{resolution}#s{shard}` | `{start}#{series}`        | TTL by resolution |
//! | App     | `{tenant}#{kind}` (or a hashed lookup id) | `{kind}#{id}`             | per item |
//!
//! The full access-pattern table is in docs/ARCHITECTURE.md. Each function depends on the
//! smallest trait it needs; DynamoDB attribute values never leave [`dynamo`].

pub mod app;
pub mod aws;
pub mod deadletters;
pub mod deferred;
pub mod dynamo;
pub mod events;
pub mod keys;
pub mod metrics;
pub mod push;
pub mod queue;
pub mod read;
pub mod stream;

use async_trait::async_trait;
use thiserror::Error;

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A DynamoDB client for a loopback test endpoint, with Pulse's retry and timeout policy.
#[cfg(test)]
pub(crate) fn test_client(url: &str) -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .endpoint_url(url)
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "k", "s", None, None, "test",
        ))
        .retry_config(crate::aws::retry_config())
        .timeout_config(crate::aws::timeout_config())
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// A storage call that failed after the adapter's retries.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("table {0} does not exist")]
    TableNotFound(String),
    #[error("table {table} is {status}, not active")]
    TableNotActive { table: String, status: String },
    #[error("storage is throttling past the retry budget")]
    Throttled(#[source] Source),
    #[error("storage call failed")]
    Unavailable(#[source] Source),
    /// A conditional write lost to a concurrent one: read again and retry.
    #[error("the item changed since it was read")]
    Conflict,
    /// Storage refused the request as it is (DynamoDB's `ValidationException`: a number out
    /// of range, an item too large). Permanent: retrying can never succeed.
    #[error("storage refused the request as invalid")]
    Rejected(#[source] Source),
}

impl StoreError {
    /// Whether the same call could succeed later (throttling, an outage, a lost race); a
    /// permanent failure is set aside instead of retried.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, StoreError::Rejected(_))
    }
}

/// Seconds a client is told to wait after storage throttled past the SDK's retries.
pub const THROTTLED_RETRY_AFTER_SECS: u64 = 2;

/// The one place a storage failure becomes what the client sees: throttling past the retries
/// with backoff is 503 with `Retry-After`, a lost conditional write 409, an outage 503, and a
/// request storage refuses as invalid a bug (500; the source is logged, never shown). A missing
/// item is not an error: reads return `None`, and the handler answers 404.
impl From<StoreError> for pulse_core::ApiError {
    fn from(e: StoreError) -> Self {
        use pulse_core::ApiError;
        match e {
            StoreError::Throttled(source) => ApiError::Throttled {
                retry_after_secs: THROTTLED_RETRY_AFTER_SECS,
                source: Some(source),
            },
            StoreError::Conflict => {
                ApiError::Conflict("the item changed while it was written; try again".into())
            }
            StoreError::Rejected(source) => ApiError::Internal(source),
            e @ (StoreError::Unavailable(_)
            | StoreError::TableNotFound(_)
            | StoreError::TableNotActive { .. }) => ApiError::Unavailable {
                detail: "storage is unavailable; try again shortly".into(),
                source: Some(Box::new(e)),
            },
        }
    }
}

/// The one place an SDK error becomes a [`StoreError`]: throttling that outlasted the SDK's
/// retries is `Throttled`, a request DynamoDB refuses as invalid is `Rejected` (permanent),
/// anything else `Unavailable`.
pub(crate) fn classify<E, R>(err: aws_sdk_dynamodb::error::SdkError<E, R>) -> StoreError
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    use aws_sdk_dynamodb::error::ProvideErrorMetadata;
    match err.code() {
        Some(
            "ThrottlingException"
            | "ProvisionedThroughputExceededException"
            | "RequestLimitExceeded",
        ) => StoreError::Throttled(Box::new(err)),
        Some("ValidationException") => StoreError::Rejected(Box::new(err)),
        _ => StoreError::Unavailable(Box::new(err)),
    }
}

/// A series id and its tags.
pub type SeriesTags = (String, std::collections::BTreeMap<String, String>);

/// Checks that a table exists and accepts reads and writes (health checks).
pub trait TableProbe: Send + Sync {
    fn probe(
        &self,
        table: &str,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send;
}

/// A write that did not complete before its deadline: which events are stored and which are
/// not, so the client can retry exactly the rest (or all of them: ids make retries idempotent).
#[derive(Debug, Error)]
#[error("{} of {} events stored before the deadline", stored.len(), stored.len() + unstored.len())]
pub struct Incomplete {
    pub stored: Vec<String>,
    pub unstored: Vec<String>,
    /// The last error seen, if the rest failed rather than stayed unprocessed.
    #[source]
    pub last_error: Option<StoreError>,
}

/// Writes raw events (ingest).
pub trait EventWriter: Send + Sync {
    /// Writes every event, retrying what DynamoDB leaves unprocessed until `deadline`.
    fn write_events(
        &self,
        events: &[pulse_ingest::events::Event],
        deadline: tokio::time::Instant,
    ) -> impl std::future::Future<Output = Result<(), Incomplete>> + Send;

    /// Writes a history import's recent events ([`EventWriter::write_events`]), flagged so the
    /// stream leaves them alone: the import merged their buckets itself.
    fn write_imported(
        &self,
        events: &[pulse_ingest::events::Event],
        deadline: tokio::time::Instant,
    ) -> impl std::future::Future<Output = Result<(), Incomplete>> + Send;
}

/// The series registry: each metric's series claimed once, up to a cap (stream aggregation,
/// sealing and imports).
pub trait SeriesRegistry: Send + Sync {
    /// Registers series not yet known; returns those refused because their metric already has
    /// `cap` series (the caller folds them into `__other__`).
    fn register_series(
        &self,
        series: &[(
            pulse_metrics::aggregate::SeriesKey,
            std::collections::BTreeMap<String, String>,
        )],
        cap: usize,
    ) -> impl std::future::Future<
        Output = Result<Vec<pulse_metrics::aggregate::SeriesKey>, StoreError>,
    > + Send;
}

/// Imported history merged into buckets at every resolution (`POST /api/v1/imports`).
pub trait HistoryWriter: SeriesRegistry {
    /// Takes `tenant`'s import lease until `until` (epoch s): `false` when another import
    /// holds it. Under the lease, buckets no live event can reach are this import's alone.
    fn lease_imports(
        &self,
        tenant: &pulse_core::identity::TenantId,
        now: i64,
        until: i64,
    ) -> impl std::future::Future<Output = Result<bool, StoreError>> + Send;

    /// Where `contribution` (an import's id) splits its events into recent (stored raw and
    /// sealed) and old (written as history): `live_from` (epoch ms) on its first send, kept
    /// until `keep_until` (epoch s); on a later send, the first send's. So an import sent
    /// again after its recent events have aged does not count them in its history as well.
    /// The caller holds the lease.
    fn import_boundary(
        &self,
        tenant: &pulse_core::identity::TenantId,
        contribution: &str,
        live_from: i64,
        keep_until: i64,
    ) -> impl std::future::Future<Output = Result<i64, StoreError>> + Send;

    /// Gives the lease back.
    fn release_imports(
        &self,
        tenant: &pulse_core::identity::TenantId,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send;

    /// Merges each bucket into the stored one, unless `contribution` (the import's id) was
    /// merged there before: an import sent again, whole or after a partial failure, adds
    /// each bucket once. Buckets whose window ends before `unshared_before` (epoch s), which
    /// nothing but imports merges into, are written in batches (the caller holds the lease);
    /// the rest in a conditional write each, as the stream merges into them too.
    fn merge_history(
        &self,
        buckets: &[(
            pulse_metrics::rollup::BucketAt,
            pulse_metrics::aggregate::Bucket,
        )],
        contribution: &str,
        unshared_before: i64,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send;
}

/// Live minute buckets and the series registry (stream aggregation).
pub trait BucketStore: SeriesRegistry {
    /// Merges `bucket`, made of the stream records spanning `span`, into the stored minute
    /// bucket `key` with the marks of the records it applies, in one conditional write; unless
    /// the bucket's marks show them applied ([`pulse_core::watermark`]), or sealing owns the bucket.
    fn merge_bucket(
        &self,
        key: &pulse_metrics::aggregate::BucketKey,
        bucket: &pulse_metrics::aggregate::Bucket,
        span: &pulse_core::watermark::Span,
    ) -> impl std::future::Future<Output = Result<Merged, StoreError>> + Send;

    /// [`BucketStore::merge_bucket`] for many buckets, each with its own outcome, in order; an
    /// adapter may read them together.
    fn merge_buckets(
        &self,
        merges: &[(
            pulse_metrics::aggregate::BucketKey,
            pulse_metrics::aggregate::Bucket,
            pulse_core::watermark::Span,
        )],
    ) -> impl std::future::Future<Output = Vec<Result<Merged, StoreError>>> + Send {
        async move {
            let mut out = Vec::with_capacity(merges.len());
            for (key, bucket, span) in merges {
                out.push(self.merge_bucket(key, bucket, span).await);
            }
            out
        }
    }
}

/// A stream record that can never be processed (its event does not parse, storage refuses
/// its bucket as invalid): kept for an operator instead of retried, so it never holds up the
/// records behind it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Discarded {
    /// The record's sequence number and Events partition.
    pub sequence: String,
    pub partition: String,
    /// The event's tenant, when it could be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Why it can never succeed.
    pub reason: String,
}

/// Where records that can never succeed are kept: the stream's on-failure destination.
#[async_trait]
pub trait DeadLetters: Send + Sync + std::fmt::Debug {
    /// Keeps `records` (one object per call); an error means they must be retried instead.
    async fn keep(&self, source: &str, records: &[Discarded]) -> Result<(), StoreError>;
}

/// What a live merge did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Merged {
    /// The contribution was added.
    Written,
    /// Every record of it was applied before (a retried or redelivered batch): nothing written.
    AlreadyApplied,
    /// Some records were applied before: merge again with only the records past these marks.
    Partly(pulse_core::watermark::Watermarks),
    /// The minute is sealed: only sealing (from the raw events, which hold these records)
    /// changes it now.
    Sealed,
}

/// Reads raw events back: one minute of one tenant (the rollup job's sealing).
pub trait EventReader: Send + Sync {
    /// The events of `minute` in `shards` (every shard if empty).
    fn minute_events(
        &self,
        tenant: &pulse_core::identity::TenantId,
        minute: i64,
        shards: &std::collections::BTreeSet<u32>,
    ) -> impl std::future::Future<Output = Result<Vec<pulse_ingest::events::Event>, StoreError>> + Send;
}

/// Windows waiting for the rollup job: marked by whoever changes a window's data (the stream
/// aggregator, the job itself for coarser windows), read oldest first, cleared when done.
pub trait PendingWindows: Send + Sync {
    /// Marks each window (adding to its series set); a window marked again is done again.
    fn mark(
        &self,
        windows: &[pulse_metrics::rollup::Pending],
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send;
    /// Windows of `resolution` starting before `before` (epoch s), oldest first.
    fn pending(
        &self,
        resolution: pulse_metrics::rollup::Resolution,
        before: i64,
        limit: usize,
    ) -> impl std::future::Future<Output = Result<Vec<pulse_metrics::rollup::Pending>, StoreError>> + Send;
    /// Clears `window` unless it was marked again since it was read.
    fn clear(
        &self,
        window: &pulse_metrics::rollup::Pending,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send;
}

/// Writes whole buckets at any resolution (the rollup job's sealing and rollups: IAM
/// `PutItem` and `BatchWriteItem` on the Metrics table).
pub trait BucketWriter: Send + Sync {
    /// Writes `bucket` at `at`, replacing what is there (sealing and rollups recompute).
    fn put_bucket(
        &self,
        at: &pulse_metrics::rollup::BucketAt,
        bucket: &pulse_metrics::aggregate::Bucket,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send;

    /// [`BucketWriter::put_bucket`] for many buckets; an adapter may write them in batches
    /// (a replacing write needs no condition, so nothing is lost by batching).
    fn put_buckets(
        &self,
        buckets: &[(
            pulse_metrics::rollup::BucketAt,
            pulse_metrics::aggregate::Bucket,
        )],
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send {
        async move {
            for (at, bucket) in buckets {
                self.put_bucket(at, bucket).await?;
            }
            Ok(())
        }
    }
}

/// Reads whole buckets at any resolution (queries, views, live snapshots, rollups: IAM
/// `Query` on the Metrics table).
pub trait RollupBuckets: Send + Sync {
    /// The buckets of one series at `resolution` with start in `[from, to)`, by start.
    fn buckets(
        &self,
        series: &pulse_metrics::aggregate::SeriesKey,
        resolution: pulse_metrics::rollup::Resolution,
        from: i64,
        to: i64,
    ) -> impl std::future::Future<
        Output = Result<Vec<(i64, pulse_metrics::aggregate::Bucket)>, StoreError>,
    > + Send;

    /// The buckets of several series of one metric at `resolution` with start in `[from, to)`,
    /// as `(series, start, bucket)` in no particular order: what a grouped query and a rollup
    /// read. An adapter whose layout keeps a metric's series together reads them at once; this
    /// default reads one series after another.
    fn series_buckets(
        &self,
        tenant: &pulse_core::identity::TenantId,
        metric: &str,
        series: &[String],
        resolution: pulse_metrics::rollup::Resolution,
        from: i64,
        to: i64,
    ) -> impl std::future::Future<
        Output = Result<Vec<(String, i64, pulse_metrics::aggregate::Bucket)>, StoreError>,
    > + Send {
        async move {
            let mut out = Vec::new();
            for id in series {
                let key = pulse_metrics::aggregate::SeriesKey {
                    tenant: tenant.clone(),
                    metric: metric.to_owned(),
                    series: id.clone(),
                };
                for (start, bucket) in self.buckets(&key, resolution, from, to).await? {
                    out.push((id.clone(), start, bucket));
                }
            }
            Ok(out)
        }
    }

    /// Whether sealing has written `tenant`'s minute starting at `start` (epoch s) before: a
    /// minute sealed again must read every Events shard, not only those its new mark names.
    fn was_sealed(
        &self,
        tenant: &pulse_core::identity::TenantId,
        start: i64,
    ) -> impl std::future::Future<Output = Result<bool, StoreError>> + Send;
}

/// A tenant's metric totals (every metric's [`pulse_metrics::aggregate::TOTAL_SERIES`]) over a range
/// in one read: what a dashboard summary needs.
pub trait Totals: Send + Sync {
    /// `(metric, start, bucket)` of every metric's total at `resolution` with start in
    /// `[from, to)`, or of `metrics`' only when not empty (a view that reads three metrics
    /// need not carry the other dozen over the wire).
    fn totals(
        &self,
        tenant: &pulse_core::identity::TenantId,
        resolution: pulse_metrics::rollup::Resolution,
        from: i64,
        to: i64,
        metrics: &[&str],
    ) -> impl std::future::Future<
        Output = Result<Vec<(String, i64, pulse_metrics::aggregate::Bucket)>, StoreError>,
    > + Send;
}

/// Reads a tenant's metric definitions (IAM `Query` on the App table).
pub trait DefinitionStore: Send + Sync {
    /// Every definition of `tenant`.
    fn definitions(
        &self,
        tenant: &pulse_core::identity::TenantId,
    ) -> impl std::future::Future<
        Output = Result<Vec<pulse_metrics::definitions::Definition>, StoreError>,
    > + Send;
}

/// Changes a tenant's metric definitions (IAM `PutItem`, `DeleteItem` on the App table).
pub trait DefinitionWriter: Send + Sync {
    /// Creates or replaces a definition.
    fn put_definition(
        &self,
        tenant: &pulse_core::identity::TenantId,
        definition: &pulse_metrics::definitions::Definition,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send;
    /// Deletes a definition; whether there was one.
    fn delete_definition(
        &self,
        tenant: &pulse_core::identity::TenantId,
        name: &str,
    ) -> impl std::future::Future<Output = Result<bool, StoreError>> + Send;
}

/// Open WebSocket connections and their subscriptions, one at a time (IAM `GetItem`,
/// `PutItem`, `DeleteItem` on the App table).
pub trait ConnectionStore: Send + Sync {
    /// Creates or replaces a connection (with its subscriptions), expiring with API Gateway's
    /// connection limit, if its `version` is still the stored one (a new connection has
    /// version 0); otherwise [`StoreError::Conflict`]. The stored version is then one more.
    fn put_connection(
        &self,
        connection: &pulse_metrics::live::Connection,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send;
    fn connection(
        &self,
        id: &str,
    ) -> impl std::future::Future<
        Output = Result<Option<pulse_metrics::live::Connection>, StoreError>,
    > + Send;
    /// Removes a connection and its subscriptions.
    fn delete_connection(
        &self,
        id: &str,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send;
}

/// Every open connection of a tenant (IAM `Query` on the App table's `gsi1`).
pub trait TenantConnections: Send + Sync {
    /// Every open connection of `tenant` (the push reads them after each stream batch).
    fn connections(
        &self,
        tenant: &pulse_core::identity::TenantId,
    ) -> impl std::future::Future<Output = Result<Vec<pulse_metrics::live::Connection>, StoreError>> + Send;
}

/// Why a frame could not be posted to a connection.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The connection is gone (HTTP 410): forget it.
    #[error("the connection is gone")]
    Gone,
    /// API Gateway throttled the post: back off and retry.
    #[error("posting is throttled")]
    Throttled,
    #[error("the frame could not be posted")]
    Failed(#[source] StoreError),
}

/// Posts frames to WebSocket connections (API Gateway's management API).
pub trait ConnectionPush: Send + Sync {
    fn post(
        &self,
        connection: &str,
        frame: &str,
    ) -> impl std::future::Future<Output = Result<(), PushError>> + Send;
}

/// A tenant's choice of key cards (`GET /api/v1/metrics`).
pub trait CardSettings: Send + Sync {
    /// The card ids `tenant` chose, if it chose.
    fn cards(
        &self,
        tenant: &pulse_core::identity::TenantId,
    ) -> impl std::future::Future<Output = Result<Option<Vec<String>>, StoreError>> + Send;
    fn put_cards(
        &self,
        tenant: &pulse_core::identity::TenantId,
        cards: &[String],
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send;
}

/// Writes hourly visitor trails for funnels ([`pulse_metrics::funnels::Trail`], encoded in
/// chunks; IAM `PutItem` on the Metrics table).
pub trait TrailWriter: Send + Sync {
    /// Replaces the trail of `tenant`'s hour starting at `hour` (epoch s).
    fn put_trail(
        &self,
        tenant: &pulse_core::identity::TenantId,
        hour: i64,
        chunks: &[Vec<u8>],
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send;
}

/// Reads hourly visitor trails (IAM `Query` on the Metrics table).
pub trait TrailStore: Send + Sync {
    /// The encoded chunks of the trails of hours starting in `[from, to)`.
    fn trails(
        &self,
        tenant: &pulse_core::identity::TenantId,
        from: i64,
        to: i64,
    ) -> impl std::future::Future<Output = Result<Vec<Vec<u8>>, StoreError>> + Send;
}

/// Keeps each sealed minute's visit events for a few hours
/// ([`pulse_metrics::sessions::VisitMinute`], encoded in chunks; IAM `PutItem` on the Metrics
/// table), so the rollup job recomputes the open hours' sessions from small records.
pub trait VisitWriter: Send + Sync {
    /// Replaces the record of `tenant`'s minute starting at `minute` (epoch s).
    fn put_visit_minute(
        &self,
        tenant: &pulse_core::identity::TenantId,
        minute: i64,
        chunks: &[Vec<u8>],
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send;
}

/// Reads the kept visit minutes (IAM `Query` on the Metrics table).
pub trait VisitReader: Send + Sync {
    /// The encoded chunks of the minutes starting in `[from, to)` (epoch s) still kept.
    fn visit_minutes(
        &self,
        tenant: &pulse_core::identity::TenantId,
        from: i64,
        to: i64,
    ) -> impl std::future::Future<Output = Result<Vec<Vec<u8>>, StoreError>> + Send;
}

/// One breakdown record to write: `(resolution, window start, kind, encoded chunks)`.
pub type BreakdownRecord = (
    pulse_metrics::rollup::Resolution,
    i64,
    pulse_metrics::breakdown::Kind,
    Vec<Vec<u8>>,
);

/// Writes breakdown records ([`pulse_metrics::breakdown::Breakdown`]: every series of a
/// tenant's metrics in one window; the rollup job and imports; IAM `BatchWriteItem` on the
/// Metrics table).
pub trait BreakdownWriter: Send + Sync {
    /// Replaces each record of `tenant` with its chunks.
    fn put_breakdowns(
        &self,
        tenant: &pulse_core::identity::TenantId,
        records: &[BreakdownRecord],
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send;
}

/// Reads breakdown records (views; the rollup job rolling them: IAM `Query` on the Metrics
/// table).
pub trait BreakdownReader: Send + Sync {
    /// The current chunks of `tenant`'s records at `resolution` starting in `[from, to)`, as
    /// `(start, kind, chunk)`.
    fn breakdowns(
        &self,
        tenant: &pulse_core::identity::TenantId,
        resolution: pulse_metrics::rollup::Resolution,
        from: i64,
        to: i64,
    ) -> impl std::future::Future<
        Output = Result<Vec<(i64, pulse_metrics::breakdown::Kind, Vec<u8>)>, StoreError>,
    > + Send;
}

/// The series registry as queries read it: every series of a metric with its tags.
pub trait SeriesCatalog: Send + Sync {
    /// The series of `metric` (ids and tags), `__other__` included when it holds data.
    fn series(
        &self,
        tenant: &pulse_core::identity::TenantId,
        metric: &str,
    ) -> impl std::future::Future<Output = Result<Vec<SeriesTags>, StoreError>> + Send;
}

/// A site by id: which tenant it belongs to, and which origins may send its traffic (IAM
/// `GetItem` on the App table).
pub trait SiteLookup: Send + Sync {
    fn site(
        &self,
        id: &str,
    ) -> impl std::future::Future<Output = Result<Option<pulse_ingest::track::Site>, StoreError>> + Send;
}

/// A tenant's sites, managed (IAM `PutItem`, `DeleteItem` on the App table, `Query` on its
/// `gsi1`).
pub trait SiteStore: Send + Sync {
    fn sites(
        &self,
        tenant: &pulse_core::identity::TenantId,
    ) -> impl std::future::Future<Output = Result<Vec<pulse_ingest::track::Site>, StoreError>> + Send;
    /// Creates or replaces a site.
    fn put_site(
        &self,
        site: &pulse_ingest::track::Site,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send;
    /// Deletes a site of `tenant`; `false` if it had none of that id.
    fn delete_site(
        &self,
        tenant: &pulse_core::identity::TenantId,
        id: &str,
    ) -> impl std::future::Future<Output = Result<bool, StoreError>> + Send;
}

/// What the tracking endpoint needs besides sites: the day's salt and a rate limit.
pub trait TrackStore: Send + Sync {
    /// The salt of `day` (YYYY-MM-DD), created on first use and deleted 48 h later.
    fn daily_salt(
        &self,
        day: &str,
    ) -> impl std::future::Future<Output = Result<Vec<u8>, StoreError>> + Send;
    /// Counts one request of `client` in the window starting at `window_start` (epoch s) and
    /// returns the count so far.
    fn count_request(
        &self,
        client: &str,
        window_start: i64,
        window_secs: i64,
    ) -> impl std::future::Future<Output = Result<u64, StoreError>> + Send;
}

/// What the authorizer needs of API keys: one lookup by hash.
pub trait KeyLookup: Send + Sync {
    /// The key whose hash is `hash`, if it exists (a deleted key is revoked).
    fn key_by_hash(
        &self,
        hash: &str,
    ) -> impl std::future::Future<Output = Result<Option<pulse_core::apikeys::ApiKey>, StoreError>> + Send;
}

/// API keys as admins manage them: stored by hash, listed per tenant, revoked by deletion.
pub trait KeyStore: Send + Sync {
    fn keys(
        &self,
        tenant: &pulse_core::identity::TenantId,
    ) -> impl std::future::Future<Output = Result<Vec<pulse_core::apikeys::ApiKey>, StoreError>> + Send;
    fn put_key(
        &self,
        hash: &str,
        key: &pulse_core::apikeys::ApiKey,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send;
    /// Revokes the key `id` of `tenant`; `false` if it has none of that id.
    fn delete_key(
        &self,
        tenant: &pulse_core::identity::TenantId,
        id: &str,
    ) -> impl std::future::Future<Output = Result<bool, StoreError>> + Send;
}

/// Reads a tenant's fitted forecasters and their accuracy history (IAM `GetItem` and `Query`
/// on the App table).
pub trait FitStore: Send + Sync {
    /// The last fit of `metric`'s `aggregation` over `horizon` days (of the series `series`
    /// names, in [`pulse_metrics::insights::SeriesSelector`]'s canonical form, when given),
    /// with its version.
    fn fit(
        &self,
        tenant: &pulse_core::identity::TenantId,
        metric: &str,
        series: Option<&str>,
        aggregation: pulse_metrics::insights::Aggregation,
        horizon: usize,
    ) -> impl std::future::Future<Output = Result<Option<pulse_metrics::insights::Fit>, StoreError>> + Send;
    /// Every measured accuracy of `tenant`'s fits, by metric, aggregation and day.
    fn accuracy_history(
        &self,
        tenant: &pulse_core::identity::TenantId,
    ) -> impl std::future::Future<
        Output = Result<Vec<pulse_metrics::insights::AccuracyRecord>, StoreError>,
    > + Send;
}

/// Writes fits (IAM `UpdateItem`: the version counts up in the same write; `PutItem`: the
/// day's accuracy record).
pub trait FitWriter: Send + Sync {
    /// Stores `fit` as its metric's current one and records its accuracy for the day;
    /// returns it with its new version.
    fn put_fit(
        &self,
        tenant: &pulse_core::identity::TenantId,
        fit: &pulse_metrics::insights::Fit,
    ) -> impl std::future::Future<Output = Result<pulse_metrics::insights::Fit, StoreError>> + Send;
}

/// Retrain jobs requested through the API (IAM `PutItem`, `GetItem` and `Query` on the App
/// table).
pub trait RetrainJobs: Send + Sync {
    /// The tenant's newest job (ids sort by the time they were asked).
    fn latest_job(
        &self,
        tenant: &pulse_core::identity::TenantId,
    ) -> impl std::future::Future<
        Output = Result<Option<pulse_metrics::insights::RetrainJob>, StoreError>,
    > + Send;
    fn put_job(
        &self,
        job: &pulse_metrics::insights::RetrainJob,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send;
    fn job(
        &self,
        tenant: &pulse_core::identity::TenantId,
        id: &str,
    ) -> impl std::future::Future<
        Output = Result<Option<pulse_metrics::insights::RetrainJob>, StoreError>,
    > + Send;
}

/// The tenants that use forecasts, whom the daily retrain refits (IAM `PutItem` and `Query` on
/// the App table). A tenant is listed for [`app::FORECAST_USE_DAYS`] after it last asked.
pub trait ForecastTenants: Send + Sync {
    /// Notes that `tenant` uses forecasts now.
    fn note_use(
        &self,
        tenant: &pulse_core::identity::TenantId,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send;
    fn tenants(
        &self,
    ) -> impl std::future::Future<Output = Result<Vec<pulse_core::identity::TenantId>, StoreError>> + Send;
}

/// The streaming detectors of a tenant's metrics (IAM `Query` and `PutItem` on the App
/// table). A detector is written only if no other run advanced it since it was read.
pub trait DetectorStates: Send + Sync {
    fn detectors(
        &self,
        tenant: &pulse_core::identity::TenantId,
    ) -> impl std::future::Future<
        Output = Result<Vec<pulse_metrics::insights::DetectorState>, StoreError>,
    > + Send;
    /// Stores `state`; [`StoreError::Conflict`] when the stored detector's last minute is no
    /// longer `read_last` (`None`: there was none).
    fn put_detector(
        &self,
        tenant: &pulse_core::identity::TenantId,
        state: &pulse_metrics::insights::DetectorState,
        read_last: Option<i64>,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send;
}

/// Anomalies found as minutes seal (IAM `PutItem` to record, `Query` to read, on the App
/// table; kept 30 days).
pub trait AnomalyLog: Send + Sync {
    fn record(
        &self,
        tenant: &pulse_core::identity::TenantId,
        anomalies: &[pulse_metrics::insights::DetectedAnomaly],
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send;
    /// `metric`'s anomalies with minute in `[from, to)`, oldest first.
    fn recorded(
        &self,
        tenant: &pulse_core::identity::TenantId,
        metric: &str,
        from: i64,
        to: i64,
    ) -> impl std::future::Future<
        Output = Result<Vec<pulse_metrics::insights::DetectedAnomaly>, StoreError>,
    > + Send;
}

/// A tenant's settings ([`pulse_core::settings::Settings`]; IAM `GetItem` and `PutItem` on the
/// App table).
pub trait TenantSettings: Send + Sync {
    fn settings(
        &self,
        tenant: &pulse_core::identity::TenantId,
    ) -> impl std::future::Future<Output = Result<pulse_core::settings::Settings, StoreError>> + Send;
    fn put_settings(
        &self,
        tenant: &pulse_core::identity::TenantId,
        settings: &pulse_core::settings::Settings,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send;
}

/// A tenant's goals (IAM `GetItem` and `PutItem` on the App table).
pub trait GoalSettings: Send + Sync {
    fn goals(
        &self,
        tenant: &pulse_core::identity::TenantId,
    ) -> impl std::future::Future<Output = Result<Vec<pulse_metrics::goals::Goal>, StoreError>> + Send;
    fn put_goals(
        &self,
        tenant: &pulse_core::identity::TenantId,
        goals: &[pulse_metrics::goals::Goal],
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send;
}
