//! The App table adapter for web analytics: sites, the daily visitor salt, and rate-limit
//! counters.
//!
//! | item | pk | sk | gsi1pk / gsi1sk | TTL |
//! |------|----|----|-----------------|-----|
//! | site | `site#{id}` | `site` | `{tenant}#sites` / `{id}` | — |
//! | salt | `salt` | `{YYYY-MM-DD}` | — | 48 h |
//! | rate counter | `rl#{client hash}` | `{window start}` | — | 2 windows |
//! | API key | `key#{sha256(key)}` | `key` | `{tenant}#keys` / `{key id}` | — |
//! | metric definition | `{tenant}#metricdefs` | `{metric}` | — | — |
//! | key cards chosen | `{tenant}#settings` | `cards` | — | — |
//! | goals | `{tenant}#settings` | `goals` | — | — |
//! | WebSocket connection | `conn#{id}` | `conn` | `{tenant}#conns` / `{id}` | 2 h |
//! | forecaster fit | `{tenant}#fits` | `{metric}#{aggregation}#h{horizon}` | — | — |
//! | fit accuracy of a day | `{tenant}#accuracy` | `{metric}#{aggregation}#{date}` | — | 400 d |
//! | retrain job | `{tenant}#retrain` | `{job id}` | — | 30 d |
//! | tenant using forecasts | `forecast#tenants` | `{tenant}` | — | 35 d after its last use |
//! | a metric's detector | `{tenant}#detectors` | `{metric}` | — | — |
//! | an anomaly found as minutes seal | `{tenant}#anomalies#{metric}` | `{minute start, 12 digits}` | — | 30 d |
//!
//! A site is read by id from the public tracking endpoint (no tenant known yet), so its key
//! is the unguessable site id and the item names its tenant; admins list their sites through
//! gsi1, whose key starts with the tenant.

use super::keys::{EXPIRES_AT, GSI1, GSI1_PK, GSI1_SK, PK, SK};
use super::{
    AnomalyLog, CardSettings, ConnectionStore, DefinitionStore, DefinitionWriter, DetectorStates,
    FitStore, FitWriter, ForecastTenants, GoalSettings, KeyLookup, KeyStore, RetrainJobs,
    SiteLookup, SiteStore, StoreError, TenantConnections, TrackStore,
};
use aws_config::SdkConfig;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use pulse_core::apikeys::ApiKey;
use pulse_core::identity::TenantId;
use pulse_ingest::track::Site;
use pulse_metrics::insights::{
    AccuracyRecord, Aggregation, DetectedAnomaly, DetectorState, Fit, RetrainJob,
};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a warm function trusts a tenant's metric definitions it has read.
const DEFINITION_CACHE: Duration = Duration::from_secs(60);
/// How long a warm function trusts a site it has read.
const SITE_CACHE: Duration = Duration::from_secs(60);

/// The App table.
#[derive(Debug)]
pub struct DynamoApp {
    client: aws_sdk_dynamodb::Client,
    table: String,
    sites: Mutex<HashMap<String, (Instant, Option<Site>)>>,
    salts: Mutex<HashMap<String, Vec<u8>>>,
    definitions: Mutex<HashMap<String, (Instant, Vec<pulse_metrics::definitions::Definition>)>>,
}

impl DynamoApp {
    pub fn new(aws: &SdkConfig, table: &str) -> Self {
        Self {
            client: aws_sdk_dynamodb::Client::new(aws),
            table: table.to_owned(),
            sites: Mutex::new(HashMap::new()),
            salts: Mutex::new(HashMap::new()),
            definitions: Mutex::new(HashMap::new()),
        }
    }
}

impl DynamoApp {
    /// Every item under `pk` in gsi1, following pages.
    async fn gsi1(&self, pk: &str) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        self.query_all(true, pk).await
    }

    /// Every item under partition `pk`, following pages.
    async fn partition(
        &self,
        pk: &str,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        self.query_all(false, pk).await
    }

    /// Every item under `pk` in the table, or in gsi1 when `gsi1`, following pages.
    async fn query_all(
        &self,
        gsi1: bool,
        pk: &str,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        self.client
            .query()
            .table_name(&self.table)
            .set_index_name(gsi1.then(|| GSI1.to_owned()))
            .key_condition_expression("#p = :p")
            .expression_attribute_names("#p", if gsi1 { GSI1_PK } else { PK })
            .expression_attribute_values(":p", AttributeValue::S(pk.to_owned()))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(crate::classify)
    }

    /// The item at (`pk`, `sk`), if any.
    async fn item(
        &self,
        pk: String,
        sk: String,
    ) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(pk))
            .key(SK, AttributeValue::S(sk))
            .send()
            .await
            .map_err(crate::classify)?;
        Ok(out.item().cloned())
    }

    /// Writes `value` as a JSON document in attribute `k` of the item at (`pk`, `sk`), replacing
    /// it, with its tenant and, when given, a TTL of `days`.
    async fn put_document<T: serde::Serialize + ?Sized>(
        &self,
        (pk, sk): (String, String),
        tenant: &TenantId,
        (k, value): (&str, &T),
        days: Option<i64>,
    ) -> Result<(), StoreError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, AttributeValue::S(pk))
            .item(SK, AttributeValue::S(sk))
            .item("tenant", AttributeValue::S(tenant.to_string()))
            .item(k, json_attr(value)?);
        if let Some(days) = days {
            put = put.item(EXPIRES_AT, expires_in(days));
        }
        put.send().await.map_err(crate::classify)?;
        Ok(())
    }

    /// A JSON document stored in attribute `k` of `item`.
    fn document<T: serde::de::DeserializeOwned>(
        item: &HashMap<String, AttributeValue>,
        k: &str,
    ) -> Result<T, StoreError> {
        let text = item
            .get(k)
            .and_then(|v| v.as_s().ok())
            .ok_or_else(|| StoreError::Unavailable(format!("an item without {k}").into()))?;
        serde_json::from_str(text).map_err(|e| StoreError::Unavailable(Box::new(e)))
    }
}

/// Days a tenant stays on the daily retrain after it last asked for a forecast.
pub const FORECAST_USE_DAYS: i64 = 35;
/// Days a fit's accuracy record is kept (a year of drift, and a margin).
const ACCURACY_DAYS: i64 = 400;
/// Days a retrain job's status is kept.
const JOB_DAYS: i64 = 30;

fn expires_in(days: i64) -> AttributeValue {
    AttributeValue::N((chrono::Utc::now().timestamp() + days * 86_400).to_string())
}

fn json_attr<T: serde::Serialize + ?Sized>(value: &T) -> Result<AttributeValue, StoreError> {
    serde_json::to_string(value)
        .map(AttributeValue::S)
        .map_err(|e| StoreError::Unavailable(Box::new(e)))
}

/// A fit's sort key: `{metric}#{aggregation}#h{horizon}`, then `#{series}` for a series' fit
/// (metric names hold no `#`, so a series' key never equals a total's).
fn fit_sk(metric: &str, series: Option<&str>, aggregation: Aggregation, horizon: usize) -> String {
    match series {
        None => format!("{metric}#{}#h{horizon}", aggregation.name()),
        Some(series) => format!("{metric}#{}#h{horizon}#{series}", aggregation.name()),
    }
}

impl FitStore for DynamoApp {
    async fn fit(
        &self,
        tenant: &TenantId,
        metric: &str,
        series: Option<&str>,
        aggregation: Aggregation,
        horizon: usize,
    ) -> Result<Option<Fit>, StoreError> {
        let Some(item) = self
            .item(
                format!("{tenant}#fits"),
                fit_sk(metric, series, aggregation, horizon),
            )
            .await?
        else {
            return Ok(None);
        };
        let mut fit: Fit = Self::document(&item, "fit")?;
        fit.version = item
            .get("version")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        Ok(Some(fit))
    }

    async fn accuracy_history(&self, tenant: &TenantId) -> Result<Vec<AccuracyRecord>, StoreError> {
        self.partition(&format!("{tenant}#accuracy"))
            .await?
            .iter()
            .map(|item| Self::document(item, "record"))
            .collect()
    }
}

impl FitWriter for DynamoApp {
    async fn put_fit(&self, tenant: &TenantId, fit: &Fit) -> Result<Fit, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(format!("{tenant}#fits")))
            .key(
                SK,
                AttributeValue::S(fit_sk(
                    &fit.metric,
                    fit.series.as_deref(),
                    fit.aggregation,
                    fit.points.len(),
                )),
            )
            .update_expression("SET #f = :f, #t = :t ADD #v :one")
            .expression_attribute_names("#f", "fit")
            .expression_attribute_names("#t", "tenant")
            .expression_attribute_names("#v", "version")
            .expression_attribute_values(":f", json_attr(fit)?)
            .expression_attribute_values(":t", AttributeValue::S(tenant.to_string()))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(crate::classify)?;
        let version = out
            .attributes()
            .and_then(|a| a.get("version"))
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        let fit = Fit {
            version,
            ..fit.clone()
        };
        let date = fit.trained_at.get(..10).unwrap_or_default().to_owned();
        let record = AccuracyRecord {
            metric: fit.metric.clone(),
            series: fit.series.clone(),
            aggregation: fit.aggregation,
            date: date.clone(),
            model: fit.model.clone(),
            version,
            accuracy: fit.accuracy.clone(),
        };
        self.put_document(
            (
                format!("{tenant}#accuracy"),
                match &fit.series {
                    None => format!("{}#{}#{date}", fit.metric, fit.aggregation.name()),
                    Some(series) => {
                        format!("{}#{}#{date}#{series}", fit.metric, fit.aggregation.name())
                    }
                },
            ),
            tenant,
            ("record", &record),
            Some(ACCURACY_DAYS),
        )
        .await?;
        Ok(fit)
    }
}

impl RetrainJobs for DynamoApp {
    async fn put_job(&self, job: &RetrainJob) -> Result<(), StoreError> {
        self.put_document(
            (format!("{}#retrain", job.tenant), job.id.clone()),
            &job.tenant,
            ("job", job),
            Some(JOB_DAYS),
        )
        .await
    }

    async fn latest_job(&self, tenant: &TenantId) -> Result<Option<RetrainJob>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#p = :p")
            .expression_attribute_names("#p", PK)
            .expression_attribute_values(":p", AttributeValue::S(format!("{tenant}#retrain")))
            .scan_index_forward(false)
            .limit(1)
            .send()
            .await
            .map_err(crate::classify)?;
        out.items()
            .first()
            .map(|item| Self::document(item, "job"))
            .transpose()
    }

    async fn job(&self, tenant: &TenantId, id: &str) -> Result<Option<RetrainJob>, StoreError> {
        self.item(format!("{tenant}#retrain"), id.to_owned())
            .await?
            .map(|item| Self::document(&item, "job"))
            .transpose()
    }
}

impl ForecastTenants for DynamoApp {
    async fn note_use(&self, tenant: &TenantId) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item(PK, AttributeValue::S("forecast#tenants".into()))
            .item(SK, AttributeValue::S(tenant.to_string()))
            .item(EXPIRES_AT, expires_in(FORECAST_USE_DAYS))
            .send()
            .await
            .map_err(crate::classify)?;
        Ok(())
    }

    async fn tenants(&self) -> Result<Vec<TenantId>, StoreError> {
        let now = chrono::Utc::now().timestamp();
        // TTL deletes lag: an expired item is passed over here.
        Ok(self
            .partition("forecast#tenants")
            .await?
            .iter()
            .filter(|item| {
                item.get(EXPIRES_AT)
                    .and_then(|v| v.as_n().ok())
                    .and_then(|n| n.parse::<i64>().ok())
                    .is_none_or(|at| at > now)
            })
            .filter_map(|item| s(item, SK).and_then(|t| TenantId::parse(&t).ok()))
            .collect())
    }
}

/// Days an anomaly found as minutes seal is kept.
const ANOMALY_DAYS: i64 = 30;

impl DetectorStates for DynamoApp {
    async fn detectors(&self, tenant: &TenantId) -> Result<Vec<DetectorState>, StoreError> {
        Ok(self
            .partition(&format!("{tenant}#detectors"))
            .await?
            .iter()
            .filter_map(|item| {
                Some(DetectorState {
                    metric: s(item, SK)?,
                    last_minute: item.get("last")?.as_n().ok()?.parse().ok()?,
                    state: item.get("state")?.as_b().ok()?.as_ref().to_vec(),
                })
            })
            .collect())
    }

    async fn put_detector(
        &self,
        tenant: &TenantId,
        state: &DetectorState,
        read_last: Option<i64>,
    ) -> Result<(), StoreError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, AttributeValue::S(format!("{tenant}#detectors")))
            .item(SK, AttributeValue::S(state.metric.clone()))
            .item("last", AttributeValue::N(state.last_minute.to_string()))
            .item("state", AttributeValue::B(Blob::new(state.state.clone())));
        let put = match read_last {
            Some(last) => put
                .condition_expression("#l = :l")
                .expression_attribute_names("#l", "last")
                .expression_attribute_values(":l", AttributeValue::N(last.to_string())),
            None => put
                .condition_expression("attribute_not_exists(#p)")
                .expression_attribute_names("#p", PK),
        };
        match put.send().await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => {
                Err(StoreError::Conflict)
            }
            Err(e) => Err(crate::classify(e)),
        }
    }
}

impl AnomalyLog for DynamoApp {
    async fn record(
        &self,
        tenant: &TenantId,
        anomalies: &[DetectedAnomaly],
    ) -> Result<(), StoreError> {
        for a in anomalies {
            self.put_document(
                (
                    format!("{tenant}#anomalies#{}", a.metric),
                    format!("{:012}", a.minute),
                ),
                tenant,
                ("anomaly", a),
                Some(ANOMALY_DAYS),
            )
            .await?;
        }
        Ok(())
    }

    async fn recorded(
        &self,
        tenant: &TenantId,
        metric: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<DetectedAnomaly>, StoreError> {
        let items: Vec<HashMap<String, AttributeValue>> = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#p = :p AND #s BETWEEN :a AND :b")
            .expression_attribute_names("#p", PK)
            .expression_attribute_names("#s", SK)
            .expression_attribute_values(
                ":p",
                AttributeValue::S(format!("{tenant}#anomalies#{metric}")),
            )
            .expression_attribute_values(":a", AttributeValue::S(format!("{:012}", from.max(0))))
            .expression_attribute_values(
                ":b",
                AttributeValue::S(format!("{:012}", (to - 1).max(0))),
            )
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(crate::classify)?;
        items
            .iter()
            .map(|item| Self::document(item, "anomaly"))
            .collect()
    }
}

fn s(item: &HashMap<String, AttributeValue>, k: &str) -> Option<String> {
    item.get(k).and_then(|v| v.as_s().ok()).cloned()
}

fn site_from(item: &HashMap<String, AttributeValue>) -> Option<Site> {
    Some(Site {
        id: s(item, "site_id")?,
        tenant: TenantId::parse(&s(item, "tenant")?).ok()?,
        domain: s(item, "domain")?,
        allowed_origins: item
            .get("allowed_origins")
            .and_then(|v| v.as_l().ok())
            .map(|l| l.iter().filter_map(|v| v.as_s().ok().cloned()).collect())
            .unwrap_or_default(),
    })
}

impl SiteStore for DynamoApp {
    async fn sites(&self, tenant: &TenantId) -> Result<Vec<Site>, StoreError> {
        Ok(self
            .gsi1(&format!("{tenant}#sites"))
            .await?
            .iter()
            .filter_map(site_from)
            .collect())
    }

    async fn put_site(&self, site: &Site) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item(PK, AttributeValue::S(format!("site#{}", site.id)))
            .item(SK, AttributeValue::S("site".into()))
            .item(GSI1_PK, AttributeValue::S(format!("{}#sites", site.tenant)))
            .item(GSI1_SK, AttributeValue::S(site.id.clone()))
            .item("site_id", AttributeValue::S(site.id.clone()))
            .item("tenant", AttributeValue::S(site.tenant.to_string()))
            .item("domain", AttributeValue::S(site.domain.clone()))
            .item(
                "allowed_origins",
                AttributeValue::L(
                    site.allowed_origins
                        .iter()
                        .cloned()
                        .map(AttributeValue::S)
                        .collect(),
                ),
            )
            // A site id belongs to one tenant for good: another tenant cannot take it over.
            .condition_expression("attribute_not_exists(pk) OR tenant = :t")
            .expression_attribute_values(":t", AttributeValue::S(site.tenant.to_string()))
            .send()
            .await
            .map_err(crate::classify)?;
        if let Ok(mut cache) = self.sites.lock() {
            cache.remove(&site.id);
        }
        Ok(())
    }

    async fn delete_site(&self, tenant: &TenantId, id: &str) -> Result<bool, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(format!("site#{id}")))
            .key(SK, AttributeValue::S("site".into()))
            .condition_expression("tenant = :t")
            .expression_attribute_values(":t", AttributeValue::S(tenant.to_string()))
            .send()
            .await;
        if let Ok(mut cache) = self.sites.lock() {
            cache.remove(id);
        }
        match out {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(false),
            Err(e) => Err(crate::classify(e)),
        }
    }
}

impl SiteLookup for DynamoApp {
    async fn site(&self, id: &str) -> Result<Option<Site>, StoreError> {
        if let Some((at, site)) = self.sites.lock().ok().and_then(|c| c.get(id).cloned())
            && at.elapsed() < SITE_CACHE
        {
            return Ok(site);
        }
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(format!("site#{id}")))
            .key(SK, AttributeValue::S("site".into()))
            .send()
            .await
            .map_err(crate::classify)?;
        let site = out.item().and_then(site_from);
        if let Ok(mut cache) = self.sites.lock() {
            cache.insert(id.to_owned(), (Instant::now(), site.clone()));
        }
        Ok(site)
    }
}

impl TrackStore for DynamoApp {
    async fn daily_salt(&self, day: &str) -> Result<Vec<u8>, StoreError> {
        if let Some(salt) = self.salts.lock().ok().and_then(|c| c.get(day).cloned()) {
            return Ok(salt);
        }
        let mut fresh = [0u8; 32];
        aws_lc_rs::rand::fill(&mut fresh)
            .map_err(|_| StoreError::Unavailable("no randomness for the salt".into()))?;
        let expires = chrono::Utc::now().timestamp() + 48 * 3600;
        // The first request of the day creates the salt; every other one reads it.
        let created = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, AttributeValue::S("salt".into()))
            .item(SK, AttributeValue::S(day.to_owned()))
            .item("salt", AttributeValue::B(Blob::new(fresh.to_vec())))
            .item(EXPIRES_AT, AttributeValue::N(expires.to_string()))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        let salt = match created {
            Ok(_) => fresh.to_vec(),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => self
                .client
                .get_item()
                .table_name(&self.table)
                .key(PK, AttributeValue::S("salt".into()))
                .key(SK, AttributeValue::S(day.to_owned()))
                .consistent_read(true)
                .send()
                .await
                .map_err(crate::classify)?
                .item()
                .and_then(|i| i.get("salt"))
                .and_then(|v| v.as_b().ok())
                .map(|b| b.as_ref().to_vec())
                .ok_or_else(|| {
                    StoreError::Unavailable(format!("the salt of {day} vanished").into())
                })?,
            Err(e) => return Err(crate::classify(e)),
        };
        if let Ok(mut cache) = self.salts.lock() {
            cache.retain(|d, _| d.as_str() >= day);
            cache.insert(day.to_owned(), salt.clone());
        }
        Ok(salt)
    }

    async fn count_request(
        &self,
        client: &str,
        window_start: i64,
        window_secs: i64,
    ) -> Result<u64, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(format!("rl#{client}")))
            .key(SK, AttributeValue::S(window_start.to_string()))
            .update_expression("ADD hits :one SET #e = if_not_exists(#e, :e)")
            .expression_attribute_names("#e", EXPIRES_AT)
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(
                ":e",
                AttributeValue::N((window_start + 2 * window_secs).to_string()),
            )
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(crate::classify)?;
        Ok(out
            .attributes()
            .and_then(|a| a.get("hits"))
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok())
            .unwrap_or(1))
    }
}

fn key_from(item: &HashMap<String, AttributeValue>) -> Option<ApiKey> {
    Some(ApiKey {
        id: s(item, "key_id")?,
        tenant: TenantId::parse(&s(item, "tenant")?).ok()?,
        name: s(item, "name").unwrap_or_default(),
        scopes: item
            .get("scopes")
            .and_then(|v| v.as_ss().ok())
            .cloned()
            .unwrap_or_default(),
        created_at: s(item, "created_at").unwrap_or_default(),
    })
}

impl KeyLookup for DynamoApp {
    async fn key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(format!("key#{hash}")))
            .key(SK, AttributeValue::S("key".into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(crate::classify)?;
        Ok(out.item().and_then(key_from))
    }
}

impl KeyStore for DynamoApp {
    async fn keys(&self, tenant: &TenantId) -> Result<Vec<ApiKey>, StoreError> {
        Ok(self
            .gsi1(&format!("{tenant}#keys"))
            .await?
            .iter()
            .filter_map(key_from)
            .collect())
    }

    async fn put_key(&self, hash: &str, key: &ApiKey) -> Result<(), StoreError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, AttributeValue::S(format!("key#{hash}")))
            .item(SK, AttributeValue::S("key".into()))
            .item(GSI1_PK, AttributeValue::S(format!("{}#keys", key.tenant)))
            .item(GSI1_SK, AttributeValue::S(key.id.clone()))
            .item("key_id", AttributeValue::S(key.id.clone()))
            .item("key_hash", AttributeValue::S(hash.to_owned()))
            .item("tenant", AttributeValue::S(key.tenant.to_string()))
            .item("name", AttributeValue::S(key.name.clone()))
            .item("created_at", AttributeValue::S(key.created_at.clone()))
            .condition_expression("attribute_not_exists(pk)");
        if !key.scopes.is_empty() {
            put = put.item("scopes", AttributeValue::Ss(key.scopes.clone()));
        }
        match put.send().await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => {
                Err(StoreError::Conflict)
            }
            Err(e) => Err(crate::classify(e)),
        }
    }

    async fn delete_key(&self, tenant: &TenantId, id: &str) -> Result<bool, StoreError> {
        let page = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI1)
            .key_condition_expression("#p = :p AND #s = :s")
            .expression_attribute_names("#p", GSI1_PK)
            .expression_attribute_names("#s", GSI1_SK)
            .expression_attribute_values(":p", AttributeValue::S(format!("{tenant}#keys")))
            .expression_attribute_values(":s", AttributeValue::S(id.to_owned()))
            .send()
            .await
            .map_err(crate::classify)?;
        let mut deleted = false;
        for item in page.items() {
            if let Some(hash) = s(item, "key_hash") {
                self.client
                    .delete_item()
                    .table_name(&self.table)
                    .key(PK, AttributeValue::S(format!("key#{hash}")))
                    .key(SK, AttributeValue::S("key".into()))
                    .send()
                    .await
                    .map_err(crate::classify)?;
                deleted = true;
            }
        }
        Ok(deleted)
    }
}

impl DefinitionStore for DynamoApp {
    /// Cached for a minute in a warm function: ingest reads them for every batch.
    async fn definitions(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<pulse_metrics::definitions::Definition>, StoreError> {
        if let Some((at, defs)) = self
            .definitions
            .lock()
            .ok()
            .and_then(|c| c.get(tenant.as_str()).cloned())
            && at.elapsed() < DEFINITION_CACHE
        {
            return Ok(defs);
        }
        let items: Vec<HashMap<String, AttributeValue>> = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#p = :p")
            .expression_attribute_names("#p", PK)
            .expression_attribute_values(":p", AttributeValue::S(format!("{tenant}#metricdefs")))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(crate::classify)?;
        let defs: Vec<pulse_metrics::definitions::Definition> = items
            .iter()
            .filter_map(|i| serde_json::from_str(i.get("definition")?.as_s().ok()?).ok())
            .collect();
        if let Ok(mut c) = self.definitions.lock() {
            c.insert(tenant.to_string(), (Instant::now(), defs.clone()));
        }
        Ok(defs)
    }
}

impl DefinitionWriter for DynamoApp {
    async fn put_definition(
        &self,
        tenant: &TenantId,
        definition: &pulse_metrics::definitions::Definition,
    ) -> Result<(), StoreError> {
        let body =
            serde_json::to_string(definition).map_err(|e| StoreError::Unavailable(Box::new(e)))?;
        self.client
            .put_item()
            .table_name(&self.table)
            .item(PK, AttributeValue::S(format!("{tenant}#metricdefs")))
            .item(SK, AttributeValue::S(definition.name.clone()))
            .item("tenant", AttributeValue::S(tenant.to_string()))
            .item("definition", AttributeValue::S(body))
            .send()
            .await
            .map_err(crate::classify)?;
        if let Ok(mut c) = self.definitions.lock() {
            c.remove(tenant.as_str());
        }
        Ok(())
    }
    async fn delete_definition(&self, tenant: &TenantId, name: &str) -> Result<bool, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(format!("{tenant}#metricdefs")))
            .key(SK, AttributeValue::S(name.to_owned()))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(crate::classify)?;
        if let Ok(mut c) = self.definitions.lock() {
            c.remove(tenant.as_str());
        }
        Ok(out.attributes().is_some())
    }
}

impl GoalSettings for DynamoApp {
    async fn goals(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<pulse_metrics::goals::Goal>, StoreError> {
        match self
            .item(format!("{tenant}#settings"), "goals".into())
            .await?
        {
            Some(item) => Self::document(&item, "goals"),
            None => Ok(Vec::new()),
        }
    }

    async fn put_goals(
        &self,
        tenant: &TenantId,
        goals: &[pulse_metrics::goals::Goal],
    ) -> Result<(), StoreError> {
        self.put_document(
            (format!("{tenant}#settings"), "goals".into()),
            tenant,
            ("goals", goals),
            None,
        )
        .await
    }
}

impl crate::TenantSettings for DynamoApp {
    async fn settings(
        &self,
        tenant: &TenantId,
    ) -> Result<pulse_core::settings::Settings, StoreError> {
        match self
            .item(format!("{tenant}#settings"), "tenant".into())
            .await?
        {
            Some(item) => Self::document(&item, "settings"),
            None => Ok(pulse_core::settings::Settings::default()),
        }
    }

    async fn put_settings(
        &self,
        tenant: &TenantId,
        settings: &pulse_core::settings::Settings,
    ) -> Result<(), StoreError> {
        self.put_document(
            (format!("{tenant}#settings"), "tenant".into()),
            tenant,
            ("settings", settings),
            None,
        )
        .await
    }
}

impl CardSettings for DynamoApp {
    async fn cards(&self, tenant: &TenantId) -> Result<Option<Vec<String>>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(format!("{tenant}#settings")))
            .key(SK, AttributeValue::S("cards".into()))
            .send()
            .await
            .map_err(crate::classify)?;
        Ok(out
            .item()
            .and_then(|i| i.get("cards"))
            .and_then(|v| v.as_l().ok())
            .map(|l| l.iter().filter_map(|v| v.as_s().ok().cloned()).collect()))
    }

    async fn put_cards(&self, tenant: &TenantId, cards: &[String]) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item(PK, AttributeValue::S(format!("{tenant}#settings")))
            .item(SK, AttributeValue::S("cards".into()))
            .item("tenant", AttributeValue::S(tenant.to_string()))
            .item(
                "cards",
                AttributeValue::L(cards.iter().cloned().map(AttributeValue::S).collect()),
            )
            .send()
            .await
            .map_err(crate::classify)?;
        Ok(())
    }
}

impl ConnectionStore for DynamoApp {
    async fn put_connection(&self, c: &pulse_metrics::live::Connection) -> Result<(), StoreError> {
        // The stored JSON carries the version the item will have.
        let stored = pulse_metrics::live::Connection {
            version: c.version + 1,
            ..c.clone()
        };
        let body =
            serde_json::to_string(&stored).map_err(|e| StoreError::Unavailable(Box::new(e)))?;
        let expires = c.connected_at + pulse_metrics::live::CONNECTION_SECS;
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, AttributeValue::S(format!("conn#{}", c.id)))
            .item(SK, AttributeValue::S("conn".into()))
            .item("tenant", AttributeValue::S(c.tenant.to_string()))
            .item(GSI1_PK, AttributeValue::S(format!("{}#conns", c.tenant)))
            .item(GSI1_SK, AttributeValue::S(c.id.clone()))
            .item("connection", AttributeValue::S(body))
            .item("version", AttributeValue::N((c.version + 1).to_string()))
            .item(EXPIRES_AT, AttributeValue::N(expires.to_string()))
            .condition_expression(if c.version == 0 {
                "attribute_not_exists(pk)"
            } else {
                "version = :v"
            })
            .set_expression_attribute_values((c.version > 0).then(|| {
                HashMap::from([(":v".to_owned(), AttributeValue::N(c.version.to_string()))])
            }))
            .send()
            .await;
        match put {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => {
                Err(StoreError::Conflict)
            }
            Err(e) => Err(crate::classify(e)),
        }
    }

    async fn connection(
        &self,
        id: &str,
    ) -> Result<Option<pulse_metrics::live::Connection>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(format!("conn#{id}")))
            .key(SK, AttributeValue::S("conn".into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(crate::classify)?;
        Ok(out
            .item()
            .and_then(|i| i.get("connection"))
            .and_then(|v| v.as_s().ok())
            .and_then(|s| serde_json::from_str(s).ok()))
    }

    async fn delete_connection(&self, id: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(format!("conn#{id}")))
            .key(SK, AttributeValue::S("conn".into()))
            .send()
            .await
            .map_err(crate::classify)?;
        Ok(())
    }
}

impl TenantConnections for DynamoApp {
    async fn connections(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<pulse_metrics::live::Connection>, StoreError> {
        Ok(self
            .gsi1(&format!("{tenant}#conns"))
            .await?
            .iter()
            .filter_map(|i| serde_json::from_str(i.get("connection")?.as_s().ok()?).ok())
            .collect())
    }
}
