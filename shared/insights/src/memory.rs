//! Fits, accuracy, retrain jobs and forecast users kept in memory: the App table's insight
//! items for in-process handler and job tests (the DynamoDB adapter is tested on the local
//! cloud).

use pulse_core::identity::TenantId;
use pulse_metrics::insights::{AccuracyRecord, Aggregation, Fit, RetrainJob};
use pulse_store::retrain::{RetrainQueue, RetrainRequest};
use pulse_store::{FitStore, FitWriter, ForecastTenants, RetrainJobs, StoreError};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

/// The insight items of every tenant, and the retrain requests sent.
#[derive(Debug, Default)]
pub struct MemoryInsights {
    fits: Mutex<BTreeMap<(TenantId, String, Aggregation, usize), Fit>>,
    accuracy: Mutex<BTreeMap<(TenantId, String, Aggregation, String), AccuracyRecord>>,
    jobs: Mutex<BTreeMap<(TenantId, String), RetrainJob>>,
    tenants: Mutex<BTreeSet<TenantId>>,
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
