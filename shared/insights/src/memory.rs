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

/// The insight items of every tenant, and the retrain requests sent.
#[derive(Debug, Default)]
pub struct MemoryInsights {
    fits: Mutex<BTreeMap<(TenantId, String, Aggregation, usize), Fit>>,
    accuracy: Mutex<BTreeMap<(TenantId, String, Aggregation, String), AccuracyRecord>>,
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
        aggregation: Aggregation,
        horizon: usize,
    ) -> Result<Option<Fit>, StoreError> {
        let fits = self.fits.lock().map_err(poisoned)?;
        Ok(fits
            .get(&(tenant.clone(), metric.to_owned(), aggregation, horizon))
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
                fit.aggregation,
                date.clone(),
            ),
            AccuracyRecord {
                metric: fit.metric.clone(),
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
        }
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
