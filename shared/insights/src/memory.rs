//! Fits, accuracy, retrain jobs and forecast users kept in memory: the App table's insight
//! items for in-process handler and job tests (the DynamoDB adapter is tested on the local
//! cloud).

use pulse_core::identity::TenantId;
use pulse_metrics::insights::{
    AccuracyRecord, Aggregation, DetectedAnomaly, DetectorState, Fit, RetrainJob,
};
use pulse_store::queue::{RetrainQueue, RetrainRequest};
use pulse_store::{
    AnomalyLog, DetectorStates, FitStore, FitWriter, ForecastTenants, RetrainJobs, StoreError,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

/// What a fit is stored under: tenant, metric, series, aggregation, and the horizon (for a
/// fit) or the day (for an accuracy record).
type FitKey<T> = (TenantId, String, Option<String>, Aggregation, T);

/// The insight items of every tenant, and the retrain requests sent.
#[derive(Debug, Default)]
pub struct MemoryInsights {
    fits: Mutex<BTreeMap<FitKey<usize>, Fit>>,
    accuracy: Mutex<BTreeMap<FitKey<String>, AccuracyRecord>>,
    jobs: Mutex<BTreeMap<(TenantId, String), RetrainJob>>,
    tenants: Mutex<BTreeSet<TenantId>>,
    detectors: Mutex<BTreeMap<(TenantId, String), DetectorState>>,
    /// Anomalies recorded, in order.
    pub anomalies: Mutex<Vec<(TenantId, DetectedAnomaly)>>,
    /// Retrain requests sent, in order.
    pub requests: Mutex<Vec<RetrainRequest>>,
}

fn poisoned<T>(_: T) -> StoreError {
    StoreError::Unavailable("a lock was poisoned".into())
}

impl FitStore for MemoryInsights {
    async fn fit(
        &self,
        tenant: &TenantId,
        metric: &str,
        series: Option<&str>,
        aggregation: Aggregation,
        horizon: usize,
    ) -> Result<Option<Fit>, StoreError> {
        let fits = self.fits.lock().map_err(poisoned)?;
        Ok(fits
            .get(&(
                tenant.clone(),
                metric.to_owned(),
                series.map(str::to_owned),
                aggregation,
                horizon,
            ))
            .cloned())
    }

    async fn accuracy_history(&self, tenant: &TenantId) -> Result<Vec<AccuracyRecord>, StoreError> {
        let records = self.accuracy.lock().map_err(poisoned)?;
        Ok(records
            .iter()
            .filter(|((t, ..), _)| t == tenant)
            .map(|(_, r)| r.clone())
            .collect())
    }
}

impl FitWriter for MemoryInsights {
    async fn put_fit(&self, tenant: &TenantId, fit: &Fit) -> Result<Fit, StoreError> {
        let key = (
            tenant.clone(),
            fit.metric.clone(),
            fit.series.clone(),
            fit.aggregation,
            fit.points.len(),
        );
        let mut fits = self.fits.lock().map_err(poisoned)?;
        let version = fits.get(&key).map_or(0, |f| f.version) + 1;
        let stored = Fit {
            version,
            ..fit.clone()
        };
        fits.insert(key, stored.clone());
        let date = fit.trained_at.get(..10).unwrap_or_default().to_owned();
        self.accuracy.lock().map_err(poisoned)?.insert(
            (
                tenant.clone(),
                fit.metric.clone(),
                fit.series.clone(),
                fit.aggregation,
                date.clone(),
            ),
            AccuracyRecord {
                metric: fit.metric.clone(),
                series: fit.series.clone(),
                aggregation: fit.aggregation,
                date,
                model: fit.model.clone(),
                version,
                accuracy: fit.accuracy.clone(),
            },
        );
        Ok(stored)
    }
}

impl RetrainJobs for MemoryInsights {
    async fn put_job(&self, job: &RetrainJob) -> Result<(), StoreError> {
        self.jobs
            .lock()
            .map_err(poisoned)?
            .insert((job.tenant.clone(), job.id.clone()), job.clone());
        Ok(())
    }

    async fn latest_job(&self, tenant: &TenantId) -> Result<Option<RetrainJob>, StoreError> {
        let jobs = self.jobs.lock().map_err(poisoned)?;
        Ok(jobs
            .iter()
            .filter(|((t, _), _)| t == tenant)
            .max_by(|((_, a), _), ((_, b), _)| a.cmp(b))
            .map(|(_, j)| j.clone()))
    }

    async fn job(&self, tenant: &TenantId, id: &str) -> Result<Option<RetrainJob>, StoreError> {
        let jobs = self.jobs.lock().map_err(poisoned)?;
        Ok(jobs.get(&(tenant.clone(), id.to_owned())).cloned())
    }
}

impl ForecastTenants for MemoryInsights {
    async fn note_use(&self, tenant: &TenantId) -> Result<(), StoreError> {
        self.tenants
            .lock()
            .map_err(poisoned)?
            .insert(tenant.clone());
        Ok(())
    }

    async fn tenants(&self) -> Result<Vec<TenantId>, StoreError> {
        Ok(self
            .tenants
            .lock()
            .map_err(poisoned)?
            .iter()
            .cloned()
            .collect())
    }
}

impl RetrainQueue for MemoryInsights {
    async fn request(&self, request: &RetrainRequest) -> Result<(), StoreError> {
        self.requests
            .lock()
            .map_err(poisoned)?
            .push(request.clone());
        Ok(())
    }
}

impl DetectorStates for MemoryInsights {
    async fn detectors(&self, tenant: &TenantId) -> Result<Vec<DetectorState>, StoreError> {
        let detectors = self.detectors.lock().map_err(poisoned)?;
        Ok(detectors
            .iter()
            .filter(|((t, _), _)| t == tenant)
            .map(|(_, d)| d.clone())
            .collect())
    }

    async fn put_detector(
        &self,
        tenant: &TenantId,
        state: &DetectorState,
        read_last: Option<i64>,
    ) -> Result<(), StoreError> {
        let mut detectors = self.detectors.lock().map_err(poisoned)?;
        let key = (tenant.clone(), state.metric.clone());
        if detectors.get(&key).map(|d| d.last_minute) != read_last {
            return Err(StoreError::Conflict);
        }
        detectors.insert(key, state.clone());
        Ok(())
    }
}

impl AnomalyLog for MemoryInsights {
    async fn record(
        &self,
        tenant: &TenantId,
        anomalies: &[DetectedAnomaly],
    ) -> Result<(), StoreError> {
        let mut log = self.anomalies.lock().map_err(poisoned)?;
        log.extend(anomalies.iter().map(|a| (tenant.clone(), a.clone())));
        Ok(())
    }

    async fn recorded(
        &self,
        tenant: &TenantId,
        metric: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<DetectedAnomaly>, StoreError> {
        let log = self.anomalies.lock().map_err(poisoned)?;
        Ok(log
            .iter()
            .filter(|(t, a)| t == tenant && a.metric == metric && (from..to).contains(&a.minute))
            .map(|(_, a)| a.clone())
            .collect())
    }
}

/// Daily or minute totals of a tenant kept in memory, as the rollups would answer them: rows
/// of `resolution` only, of `tenant` only when one is named; `rows: None` is storage that is
/// down.
#[derive(Debug, Clone)]
pub struct MemoryTotals {
    pub rows: Option<Vec<(String, i64, pulse_metrics::aggregate::Bucket)>>,
    pub resolution: pulse_metrics::rollup::Resolution,
    pub tenant: Option<TenantId>,
    /// The series of the metrics with their tags and buckets at `resolution`, as the
    /// registry and the series' rollups answer them (their sums need not be `rows`').
    pub series: Vec<MemorySeries>,
}

/// One series of a metric in [`MemoryTotals`].
#[derive(Debug, Clone)]
pub struct MemorySeries {
    pub metric: String,
    pub id: String,
    pub tags: BTreeMap<String, String>,
    /// Buckets by start.
    pub buckets: Vec<(i64, pulse_metrics::aggregate::Bucket)>,
}

impl MemoryTotals {
    /// `rows` at `resolution`, for any tenant.
    pub fn new(
        rows: Vec<(String, i64, pulse_metrics::aggregate::Bucket)>,
        resolution: pulse_metrics::rollup::Resolution,
    ) -> Self {
        Self {
            rows: Some(rows),
            resolution,
            tenant: None,
            series: Vec::new(),
        }
    }

    /// Whether `tenant` may read here: storage is up, and it is the tenant named (if any).
    fn readable(&self, tenant: &TenantId) -> Result<bool, StoreError> {
        if self.rows.is_none() {
            return Err(StoreError::Unavailable("storage is down".into()));
        }
        Ok(self.tenant.as_ref().is_none_or(|t| t == tenant))
    }
}

impl pulse_store::SeriesCatalog for MemoryTotals {
    async fn series(
        &self,
        tenant: &TenantId,
        metric: &str,
    ) -> Result<Vec<pulse_store::SeriesTags>, StoreError> {
        if !self.readable(tenant)? {
            return Ok(Vec::new());
        }
        Ok(self
            .series
            .iter()
            .filter(|s| s.metric == metric)
            .map(|s| (s.id.clone(), s.tags.clone()))
            .collect())
    }
}

impl pulse_store::RollupBuckets for MemoryTotals {
    async fn buckets(
        &self,
        key: &pulse_metrics::aggregate::SeriesKey,
        resolution: pulse_metrics::rollup::Resolution,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, pulse_metrics::aggregate::Bucket)>, StoreError> {
        if !self.readable(&key.tenant)? || resolution != self.resolution {
            return Ok(Vec::new());
        }
        Ok(self
            .series
            .iter()
            .filter(|s| s.metric == key.metric && s.id == key.series)
            .flat_map(|s| s.buckets.iter().filter(|(at, _)| (from..to).contains(at)))
            .cloned()
            .collect())
    }

    async fn was_sealed(&self, _: &TenantId, _: i64) -> Result<bool, StoreError> {
        Ok(true)
    }
}

impl pulse_store::Totals for MemoryTotals {
    async fn totals(
        &self,
        tenant: &TenantId,
        resolution: pulse_metrics::rollup::Resolution,
        from: i64,
        to: i64,
        _: &[&str],
    ) -> Result<Vec<(String, i64, pulse_metrics::aggregate::Bucket)>, StoreError> {
        let Some(rows) = &self.rows else {
            return Err(StoreError::Unavailable("storage is down".into()));
        };
        if resolution != self.resolution || self.tenant.as_ref().is_some_and(|t| t != tenant) {
            return Ok(Vec::new());
        }
        Ok(rows
            .iter()
            .filter(|(_, s, _)| (from..to).contains(s))
            .cloned()
            .collect())
    }
}
