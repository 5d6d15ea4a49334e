//! The detect job: told by the rollup job which minutes of a tenant are sealed (the detect
//! queue), it feeds each new minute of every metric to the metric's streaming detector and
//! records the anomalous ones ([`pulse_insights::detect`]), so an anomaly is known within two
//! minutes of its minute's end.
//!
//! Notices of one tenant in a batch are merged (from the oldest minute sealed to the newest). A notice whose
//! detection failed on a retryable storage error is handed back to SQS, which delivers it
//! again; detectors advance only by conditional writes, so a redelivery never scores a minute
//! twice.

use pulse_core::Config;
use pulse_core::identity::TenantId;
use pulse_metrics::insights::SealedThrough;
use pulse_store::app::DynamoApp;
pub use pulse_store::deferred::QueueBatch;
use pulse_store::metrics::DynamoMetrics;
use pulse_store::stream::BatchResponse;
use pulse_store::{AnomalyLog, DetectorStates, Totals};
use std::collections::BTreeMap;

/// The job with the metrics it reads and the detectors and anomalies it keeps.
#[derive(Debug)]
pub struct Detect<S, A> {
    metrics: S,
    store: A,
    clock: fn() -> i64,
}

/// Builds the job from the function's configuration, as `main` and the local cloud do.
pub fn wire(config: &Config, aws: &aws_config::SdkConfig) -> Detect<DynamoMetrics, DynamoApp> {
    Detect::new(
        DynamoMetrics::new(aws, &config.tables.metrics, config.retention),
        DynamoApp::new(aws, &config.tables.app),
    )
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

impl<S, A> Detect<S, A>
where
    S: Totals,
    A: DetectorStates + AnomalyLog,
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

    /// One batch of notices; the ids of those to deliver again.
    pub async fn handle(&self, batch: QueueBatch) -> BatchResponse {
        let mut by_tenant: BTreeMap<TenantId, (i64, i64, Vec<String>)> = BTreeMap::new();
        for message in batch.records {
            match serde_json::from_str::<SealedThrough>(&message.body) {
                Ok(n) => {
                    let entry =
                        by_tenant
                            .entry(n.tenant)
                            .or_insert((n.from, n.through, Vec::new()));
                    entry.0 = entry.0.min(n.from);
                    entry.1 = entry.1.max(n.through);
                    entry.2.push(message.message_id);
                }
                // It can never be read: dropped, not retried.
                Err(e) => {
                    tracing::error!(message = %message.message_id, error = %e, "unreadable notice dropped");
                }
            }
        }
        let mut again = Vec::new();
        for (tenant, (since, through, ids)) in by_tenant {
            match pulse_insights::detect::detect(
                &self.metrics,
                &self.store,
                &tenant,
                since,
                through,
                (self.clock)(),
            )
            .await
            {
                Ok(d) => {
                    tracing::info!(%tenant, through, scored = d.scored, anomalies = d.anomalies.len(), raced = d.raced, "minutes scored");
                }
                Err(e) if e.is_retryable() => {
                    tracing::warn!(%tenant, error = %e, "detection failed; the notice comes again");
                    again.extend(ids);
                }
                Err(e) => {
                    tracing::error!(%tenant, error = %e, "detection failed for good; the notice is dropped");
                }
            }
        }
        BatchResponse::failed(again)
    }
}

#[cfg(test)]
mod tests;
