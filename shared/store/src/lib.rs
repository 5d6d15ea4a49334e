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

/// Checks that a table exists and accepts reads and writes (health checks).
#[async_trait]
pub trait TableProbe: Send + Sync {
    async fn probe(&self, table: &str) -> Result<(), StoreError>;
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
#[async_trait]
pub trait EventWriter: Send + Sync {
    /// Writes every event, retrying what DynamoDB leaves unprocessed until `deadline`.
    async fn write_events(
        &self,
        events: &[pulse_ingest::events::Event],
        deadline: tokio::time::Instant,
    ) -> Result<(), Incomplete>;

    /// Writes a history import's recent events ([`EventWriter::write_events`]), flagged so the
    /// stream leaves them alone: the import merged their buckets itself.
    async fn write_imported(
        &self,
        events: &[pulse_ingest::events::Event],
        deadline: tokio::time::Instant,
    ) -> Result<(), Incomplete>;
}

/// Imported history merged into buckets at every resolution (`POST /api/v1/imports`).
#[async_trait]
pub trait HistoryWriter: Send + Sync {
    /// Registers series not yet known; returns those refused because their metric already has
    /// `cap` series ([`BucketStore::register_series`]).
    async fn register_history_series(
        &self,
        series: &[(
            pulse_metrics::aggregate::SeriesKey,
            std::collections::BTreeMap<String, String>,
        )],
        cap: usize,
    ) -> Result<Vec<pulse_metrics::aggregate::SeriesKey>, StoreError>;

    /// Takes `tenant`'s import lease until `until` (epoch s): `false` when another import
    /// holds it. Under the lease, buckets no live event can reach are this import's alone.
    async fn lease_imports(
        &self,
        tenant: &pulse_core::identity::TenantId,
        now: i64,
        until: i64,
    ) -> Result<bool, StoreError>;

    /// Gives the lease back.
    async fn release_imports(
        &self,
        tenant: &pulse_core::identity::TenantId,
    ) -> Result<(), StoreError>;

    /// Merges each bucket into the stored one, unless `contribution` (the import's id) was
    /// merged there before: an import sent again, whole or after a partial failure, adds
    /// each bucket once. Buckets whose window ends before `unshared_before` (epoch s), which
    /// no live event can reach, are written in batches (the caller holds the lease); the rest
    /// in a conditional write each, as the stream and the rollup job may write them too.
    async fn merge_history(
        &self,
        buckets: &[(
            pulse_metrics::rollup::BucketAt,
            pulse_metrics::aggregate::Bucket,
        )],
        contribution: &str,
        unshared_before: i64,
    ) -> Result<(), StoreError>;
}

/// Live minute buckets and the series registry (stream aggregation).
#[async_trait]
pub trait BucketStore: Send + Sync {
    /// Registers series not yet known; returns those refused because their metric already has
    /// `cap` series (the caller folds them into `__other__`).
    async fn register_series(
        &self,
        series: &[(
            pulse_metrics::aggregate::SeriesKey,
            std::collections::BTreeMap<String, String>,
        )],
        cap: usize,
    ) -> Result<Vec<pulse_metrics::aggregate::SeriesKey>, StoreError>;

    /// Merges `bucket`, made of the stream records spanning `span`, into the stored minute
    /// bucket `key` with the marks of the records it applies, in one conditional write; unless
    /// the bucket's marks show them applied ([`pulse_core::watermark`]), or sealing owns the bucket.
    async fn merge_bucket(
        &self,
        key: &pulse_metrics::aggregate::BucketKey,
        bucket: &pulse_metrics::aggregate::Bucket,
        span: &pulse_core::watermark::Span,
    ) -> Result<Merged, StoreError>;

    /// [`BucketStore::merge_bucket`] for many buckets, each with its own outcome, in order; an
    /// adapter may read them together.
    async fn merge_buckets(
        &self,
        merges: &[(
            pulse_metrics::aggregate::BucketKey,
            pulse_metrics::aggregate::Bucket,
            pulse_core::watermark::Span,
        )],
    ) -> Vec<Result<Merged, StoreError>> {
        let mut out = Vec::with_capacity(merges.len());
        for (key, bucket, span) in merges {
            out.push(self.merge_bucket(key, bucket, span).await);
        }
        out
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
#[async_trait]
pub trait EventReader: Send + Sync {
    /// The events of `minute` in `shards` (every shard if empty).
    async fn minute_events(
        &self,
        tenant: &pulse_core::identity::TenantId,
        minute: i64,
        shards: &std::collections::BTreeSet<u32>,
    ) -> Result<Vec<pulse_ingest::events::Event>, StoreError>;
}

/// Windows waiting for the rollup job: marked by whoever changes a window's data (the stream
/// aggregator, the job itself for coarser windows), read oldest first, cleared when done.
#[async_trait]
pub trait PendingWindows: Send + Sync {
    /// Marks each window (adding to its series set); a window marked again is done again.
    async fn mark(&self, windows: &[pulse_metrics::rollup::Pending]) -> Result<(), StoreError>;
    /// Windows of `resolution` starting before `before` (epoch s), oldest first.
    async fn pending(
        &self,
        resolution: pulse_metrics::rollup::Resolution,
        before: i64,
        limit: usize,
    ) -> Result<Vec<pulse_metrics::rollup::Pending>, StoreError>;
    /// Clears `window` unless it was marked again since it was read.
    async fn clear(&self, window: &pulse_metrics::rollup::Pending) -> Result<(), StoreError>;
}

/// Writes whole buckets at any resolution (the rollup job's sealing and rollups: IAM
/// `PutItem` on the Metrics table).
#[async_trait]
pub trait BucketWriter: Send + Sync {
    /// Writes `bucket` at `at`, replacing what is there (sealing and rollups recompute).
    async fn put_bucket(
        &self,
        at: &pulse_metrics::rollup::BucketAt,
        bucket: &pulse_metrics::aggregate::Bucket,
    ) -> Result<(), StoreError>;
}

/// Reads whole buckets at any resolution (queries, views, live snapshots, rollups: IAM
/// `Query` on the Metrics table).
#[async_trait]
pub trait RollupBuckets: Send + Sync {
    /// The buckets of one series at `resolution` with start in `[from, to)`, by start.
    async fn buckets(
        &self,
        series: &pulse_metrics::aggregate::SeriesKey,
        resolution: pulse_metrics::rollup::Resolution,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, pulse_metrics::aggregate::Bucket)>, StoreError>;

    /// The buckets of several series of one metric at `resolution` with start in `[from, to)`,
    /// as `(series, start, bucket)` in no particular order: what a grouped query and a rollup
    /// read. An adapter whose layout keeps a metric's series together reads them at once; this
    /// default reads one series after another.
    async fn series_buckets(
        &self,
        tenant: &pulse_core::identity::TenantId,
        metric: &str,
        series: &[String],
        resolution: pulse_metrics::rollup::Resolution,
        from: i64,
        to: i64,
    ) -> Result<Vec<(String, i64, pulse_metrics::aggregate::Bucket)>, StoreError> {
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

    /// Whether sealing has written `tenant`'s minute starting at `start` (epoch s) before: a
    /// minute sealed again must read every Events shard, not only those its new mark names.
    async fn was_sealed(
        &self,
        tenant: &pulse_core::identity::TenantId,
        start: i64,
    ) -> Result<bool, StoreError>;
}

/// A tenant's metric totals (every metric's [`pulse_metrics::aggregate::TOTAL_SERIES`]) over a range
/// in one read: what a dashboard summary needs.
#[async_trait]
pub trait Totals: Send + Sync {
    /// `(metric, start, bucket)` of every metric's total at `resolution` with start in
    /// `[from, to)`.
    async fn totals(
        &self,
        tenant: &pulse_core::identity::TenantId,
        resolution: pulse_metrics::rollup::Resolution,
        from: i64,
        to: i64,
    ) -> Result<Vec<(String, i64, pulse_metrics::aggregate::Bucket)>, StoreError>;
}

/// Reads a tenant's metric definitions (IAM `Query` on the App table).
#[async_trait]
pub trait DefinitionStore: Send + Sync {
    /// Every definition of `tenant`.
    async fn definitions(
        &self,
        tenant: &pulse_core::identity::TenantId,
    ) -> Result<Vec<pulse_metrics::definitions::Definition>, StoreError>;
}

/// Changes a tenant's metric definitions (IAM `PutItem`, `DeleteItem` on the App table).
#[async_trait]
pub trait DefinitionWriter: Send + Sync {
    /// Creates or replaces a definition.
    async fn put_definition(
        &self,
        tenant: &pulse_core::identity::TenantId,
        definition: &pulse_metrics::definitions::Definition,
    ) -> Result<(), StoreError>;
    /// Deletes a definition; whether there was one.
    async fn delete_definition(
        &self,
        tenant: &pulse_core::identity::TenantId,
        name: &str,
    ) -> Result<bool, StoreError>;
}

/// Open WebSocket connections and their subscriptions, one at a time (IAM `GetItem`,
/// `PutItem`, `DeleteItem` on the App table).
#[async_trait]
pub trait ConnectionStore: Send + Sync {
    /// Creates or replaces a connection (with its subscriptions), expiring with API Gateway's
    /// connection limit, if its `version` is still the stored one (a new connection has
    /// version 0); otherwise [`StoreError::Conflict`]. The stored version is then one more.
    async fn put_connection(
        &self,
        connection: &pulse_metrics::live::Connection,
    ) -> Result<(), StoreError>;
    async fn connection(
        &self,
        id: &str,
    ) -> Result<Option<pulse_metrics::live::Connection>, StoreError>;
    /// Removes a connection and its subscriptions.
    async fn delete_connection(&self, id: &str) -> Result<(), StoreError>;
}

/// Every open connection of a tenant (IAM `Query` on the App table's `gsi1`).
#[async_trait]
pub trait TenantConnections: Send + Sync {
    /// Every open connection of `tenant` (the push reads them after each stream batch).
    async fn connections(
        &self,
        tenant: &pulse_core::identity::TenantId,
    ) -> Result<Vec<pulse_metrics::live::Connection>, StoreError>;
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
#[async_trait]
pub trait ConnectionPush: Send + Sync {
    async fn post(&self, connection: &str, frame: &str) -> Result<(), PushError>;
}

/// A tenant's choice of key cards (`GET /api/v1/metrics`).
#[async_trait]
pub trait CardSettings: Send + Sync {
    /// The card ids `tenant` chose, if it chose.
    async fn cards(
        &self,
        tenant: &pulse_core::identity::TenantId,
    ) -> Result<Option<Vec<String>>, StoreError>;
    async fn put_cards(
        &self,
        tenant: &pulse_core::identity::TenantId,
        cards: &[String],
    ) -> Result<(), StoreError>;
}

/// Writes hourly visitor trails for funnels ([`pulse_metrics::funnels::Trail`], encoded in
/// chunks; IAM `PutItem` on the Metrics table).
#[async_trait]
pub trait TrailWriter: Send + Sync {
    /// Replaces the trail of `tenant`'s hour starting at `hour` (epoch s).
    async fn put_trail(
        &self,
        tenant: &pulse_core::identity::TenantId,
        hour: i64,
        chunks: &[Vec<u8>],
    ) -> Result<(), StoreError>;
}

/// Reads hourly visitor trails (IAM `Query` on the Metrics table).
#[async_trait]
pub trait TrailStore: Send + Sync {
    /// The encoded chunks of the trails of hours starting in `[from, to)`.
    async fn trails(
        &self,
        tenant: &pulse_core::identity::TenantId,
        from: i64,
        to: i64,
    ) -> Result<Vec<Vec<u8>>, StoreError>;
}

/// The series registry as queries read it: every series of a metric with its tags.
#[async_trait]
pub trait SeriesCatalog: Send + Sync {
    /// The series of `metric` (ids and tags), `__other__` included when it holds data.
    async fn series(
        &self,
        tenant: &pulse_core::identity::TenantId,
        metric: &str,
    ) -> Result<Vec<(String, std::collections::BTreeMap<String, String>)>, StoreError>;
}

/// A site by id: which tenant it belongs to, and which origins may send its traffic (IAM
/// `GetItem` on the App table).
#[async_trait]
pub trait SiteLookup: Send + Sync {
    async fn site(&self, id: &str) -> Result<Option<pulse_ingest::track::Site>, StoreError>;
}

/// A tenant's sites, managed (IAM `PutItem`, `DeleteItem` on the App table, `Query` on its
/// `gsi1`).
#[async_trait]
pub trait SiteStore: Send + Sync {
    async fn sites(
        &self,
        tenant: &pulse_core::identity::TenantId,
    ) -> Result<Vec<pulse_ingest::track::Site>, StoreError>;
    /// Creates or replaces a site.
    async fn put_site(&self, site: &pulse_ingest::track::Site) -> Result<(), StoreError>;
    /// Deletes a site of `tenant`; `false` if it had none of that id.
    async fn delete_site(
        &self,
        tenant: &pulse_core::identity::TenantId,
        id: &str,
    ) -> Result<bool, StoreError>;
}

/// What the tracking endpoint needs besides sites: the day's salt and a rate limit.
#[async_trait]
pub trait TrackStore: Send + Sync {
    /// The salt of `day` (YYYY-MM-DD), created on first use and deleted 48 h later.
    async fn daily_salt(&self, day: &str) -> Result<Vec<u8>, StoreError>;
    /// Counts one request of `client` in the window starting at `window_start` (epoch s) and
    /// returns the count so far.
    async fn count_request(
        &self,
        client: &str,
        window_start: i64,
        window_secs: i64,
    ) -> Result<u64, StoreError>;
}

/// What the authorizer needs of API keys: one lookup by hash.
#[async_trait]
pub trait KeyLookup: Send + Sync {
    /// The key whose hash is `hash`, if it exists (a deleted key is revoked).
    async fn key_by_hash(
        &self,
        hash: &str,
    ) -> Result<Option<pulse_core::apikeys::ApiKey>, StoreError>;
}

/// API keys as admins manage them: stored by hash, listed per tenant, revoked by deletion.
#[async_trait]
pub trait KeyStore: Send + Sync {
    async fn keys(
        &self,
        tenant: &pulse_core::identity::TenantId,
    ) -> Result<Vec<pulse_core::apikeys::ApiKey>, StoreError>;
    async fn put_key(
        &self,
        hash: &str,
        key: &pulse_core::apikeys::ApiKey,
    ) -> Result<(), StoreError>;
    /// Revokes the key `id` of `tenant`; `false` if it has none of that id.
    async fn delete_key(
        &self,
        tenant: &pulse_core::identity::TenantId,
        id: &str,
    ) -> Result<bool, StoreError>;
}
