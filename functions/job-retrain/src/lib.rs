//! The retrain job: refits the forecasters ([`pulse_insights::retrain`]) of a tenant's metrics
//! with four weeks of history or more, backtests them and stores each fit with its accuracy and
//! a new version, so that predictions are served from the stored fit until the next retrain or
//! the next day.
//!
//! Two triggers: a daily EventBridge schedule refits every tenant that used forecasts in the
//! last weeks ([`pulse_store::ForecastTenants`]); the retrain queue carries a request made
//! through `POST /api/v1/predictions/retrain`, whose job item is moved from `queued` through
//! `running` to `done` (with what was fitted and passed over) or `failed`.

use pulse_core::Config;
use pulse_core::identity::TenantId;
use pulse_insights::Retrained;
use pulse_metrics::insights::{JobStatus, RetrainJob};
use pulse_store::app::DynamoApp;
use pulse_store::deferred::QueueBatch;
use pulse_store::metrics::DynamoMetrics;
use pulse_store::queue::RetrainRequest;
use pulse_store::{FitWriter, ForecastTenants, RetrainJobs, StoreError, Totals};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// What invokes the job: a batch of the retrain queue (records with a `body`), or the daily
/// schedule (any other event).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Trigger {
    Requested(QueueBatch),
    Scheduled(serde_json::Value),
}

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Tenants refitted.
    pub tenants: usize,
    /// Fits stored.
    pub fitted: usize,
    /// Metrics passed over (too little history).
    pub skipped: usize,
    /// Tenants whose refit failed (storage), logged.
    pub failed: usize,
}

/// Why a run could not start.
#[derive(Debug, Error)]
pub enum JobError {
    #[error("the tenants using forecasts cannot be listed")]
    Tenants(#[source] StoreError),
}

impl From<JobError> for lambda_runtime::Diagnostic {
    fn from(e: JobError) -> Self {
        Self {
            error_type: "RetrainUnavailable".to_owned(),
            error_message: e.to_string(),
        }
    }
}

/// The job with the metrics it reads and the App items it keeps.
#[derive(Debug)]
pub struct Retrain<S, A> {
    metrics: S,
    store: A,
    clock: fn() -> i64,
}

/// Builds the job from the function's configuration, as `main` and the local cloud do.
pub fn wire(config: &Config, aws: &aws_config::SdkConfig) -> Retrain<DynamoMetrics, DynamoApp> {
    Retrain::new(
        DynamoMetrics::new(aws, &config.tables.metrics, config.retention),
        DynamoApp::new(aws, &config.tables.app),
    )
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

impl<S, A> Retrain<S, A>
where
    S: Totals,
    A: FitWriter + RetrainJobs + ForecastTenants,
{
    pub fn new(metrics: S, store: A) -> Self {
        Self {
            metrics,
            store,
            clock: now_secs,
        }
    }

    /// The same job with a fixed clock (tests).
    pub fn with_clock(self, clock: fn() -> i64) -> Self {
        Self { clock, ..self }
    }

    pub async fn handle(&self, trigger: Trigger) -> Result<Report, JobError> {
        match trigger {
            Trigger::Requested(batch) => Ok(self.requested(batch).await),
            Trigger::Scheduled(_) => self.daily().await,
        }
    }

    /// Every tenant that uses forecasts, one after another.
    async fn daily(&self) -> Result<Report, JobError> {
        let tenants = self.store.tenants().await.map_err(JobError::Tenants)?;
        let mut report = Report::default();
        for tenant in &tenants {
            match self.refit(tenant).await {
                Ok(done) => report.add(&done),
                Err(e) => {
                    tracing::error!(%tenant, error = %e, "daily refit failed");
                    report.failed += 1;
                }
            }
        }
        tracing::info!(
            tenants = report.tenants,
            fitted = report.fitted,
            skipped = report.skipped,
            failed = report.failed,
            "daily retrain done"
        );
        Ok(report)
    }

    /// Each requested job, its item kept up to date. A request that cannot be read is logged
    /// and dropped (it can never succeed); a failed refit ends its job `failed` with why, so
    /// the admin who asked sees it and can ask again.
    async fn requested(&self, batch: QueueBatch) -> Report {
        let mut report = Report::default();
        for message in batch.records {
            let request: RetrainRequest = match serde_json::from_str(&message.body) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(message = %message.message_id, error = %e, "unreadable retrain request dropped");
                    continue;
                }
            };
            let mut job = match self.store.job(&request.tenant, &request.job).await {
                Ok(Some(job)) => job,
                // The item expired or was never written: the request still stands.
                Ok(None) | Err(_) => RetrainJob {
                    id: request.job.clone(),
                    tenant: request.tenant.clone(),
                    status: JobStatus::Queued,
                    requested_at: pulse_models::series::format_time((self.clock)()),
                    finished_at: None,
                    fitted: Vec::new(),
                    skipped: Vec::new(),
                    error: None,
                },
            };
            job.status = JobStatus::Running;
            self.save(&job).await;
            match self.refit(&request.tenant).await {
                Ok(done) => {
                    report.add(&done);
                    job.status = JobStatus::Done;
                    job.fitted = done.fitted;
                    job.skipped = done.skipped;
                }
                Err(e) => {
                    tracing::error!(tenant = %request.tenant, job = %job.id, error = %e, "requested refit failed");
                    report.failed += 1;
                    job.status = JobStatus::Failed;
                    job.error = Some(format!("{e}; ask again later"));
                }
            }
            job.finished_at = Some(pulse_models::series::format_time((self.clock)()));
            self.save(&job).await;
        }
        report
    }

    async fn refit(&self, tenant: &TenantId) -> Result<Retrained, StoreError> {
        pulse_insights::retrain(&self.metrics, &self.store, tenant, (self.clock)()).await
    }

    /// Writes `job`'s item; a failure is logged (the refit itself is what matters).
    async fn save(&self, job: &RetrainJob) {
        if let Err(e) = self.store.put_job(job).await {
            tracing::warn!(tenant = %job.tenant, job = %job.id, error = %e, "job status not saved");
        }
    }
}

impl Report {
    fn add(&mut self, done: &Retrained) {
        self.tenants += 1;
        self.fitted += done.fitted.len();
        self.skipped += done.skipped.len();
    }
}

#[cfg(test)]
mod tests;
