use super::*;
use pulse_insights::memory::{MemoryInsights, MemoryTotals};
use pulse_metrics::aggregate::Bucket;
use pulse_metrics::insights::Aggregation;
use pulse_metrics::rollup::Resolution;
use pulse_store::FitStore;

const NOW: i64 = 1_795_435_200; // 2026-11-23T12:00:00Z
const DAY: i64 = 86_400;

/// `days` days of page views of tenant `acme` up to yesterday (other tenants have none).
fn page_views(days: i64) -> MemoryTotals {
    let today = NOW.div_euclid(DAY) * DAY;
    let rows = (1..=days)
        .map(|d| {
            let start = today - d * DAY;
            let mut b = Bucket::default();
            for _ in 0..(50 + 10 * ((start / DAY) % 7)) {
                b.add(1.0, None);
            }
            ("page_view".to_owned(), start, b)
        })
        .collect();
    MemoryTotals {
        tenant: Some(tenant("acme")),
        ..MemoryTotals::new(rows, Resolution::Day)
    }
}

fn tenant(t: &str) -> TenantId {
    TenantId::parse(t).expect("ok")
}

fn job(id: &str) -> RetrainJob {
    RetrainJob {
        id: id.into(),
        tenant: tenant("acme"),
        status: JobStatus::Queued,
        requested_at: "2026-11-23T11:59:00Z".into(),
        finished_at: None,
        fitted: Vec::new(),
        skipped: Vec::new(),
        error: None,
    }
}

fn queued(bodies: &[String]) -> Trigger {
    let records: Vec<serde_json::Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| serde_json::json!({"messageId": format!("m{i}"), "body": b, "eventSource": "aws:sqs"}))
        .collect();
    serde_json::from_value(serde_json::json!({ "Records": records })).expect("ok")
}

fn request(id: &str) -> String {
    serde_json::to_string(&RetrainRequest {
        tenant: tenant("acme"),
        job: id.into(),
    })
    .expect("ok")
}

#[tokio::test]
async fn the_daily_run_refits_every_tenant_that_uses_forecasts_and_no_other() {
    // Given two tenants that used forecasts (one without data) and the schedule's event
    let store = MemoryInsights::default();
    store.note_use(&tenant("acme")).await.expect("ok");
    store.note_use(&tenant("quiet")).await.expect("ok");
    let job = Retrain::new(page_views(60), store).with_clock(|| NOW);
    let scheduled: Trigger = serde_json::from_value(serde_json::json!({
        "version": "0", "detail-type": "Scheduled Event", "source": "aws.events", "detail": {}
    }))
    .expect("ok");
    assert!(matches!(scheduled, Trigger::Scheduled(_)));
    // When it runs
    let report = job.handle(scheduled).await.expect("ok");
    // Then both were visited and the one with history got its fit, version 1
    assert_eq!(
        report,
        Report {
            tenants: 2,
            fitted: 1,
            skipped: 0,
            failed: 0
        }
    );
    let fit = job
        .store
        .fit(&tenant("acme"), "page_view", None, Aggregation::Count, 7)
        .await
        .expect("ok")
        .expect("ok");
    assert_eq!(
        (fit.version, fit.history_days, fit.points.len()),
        (1, 60, 7)
    );
    assert!(fit.is_current(NOW));
}

#[tokio::test]
async fn a_requested_job_runs_from_queued_to_done_and_says_what_it_fitted() {
    // Given a queued job of tenant acme
    let store = MemoryInsights::default();
    store.put_job(&job("j1")).await.expect("ok");
    let job_run = Retrain::new(page_views(60), store).with_clock(|| NOW);
    // When its request arrives twice (SQS delivers at least once)
    job_run.handle(queued(&[request("j1")])).await.expect("ok");
    let report = job_run.handle(queued(&[request("j1")])).await.expect("ok");
    // Then it is done, with its fit, and a second refit is the next version
    assert_eq!(report.fitted, 1);
    let done = job_run
        .store
        .job(&tenant("acme"), "j1")
        .await
        .expect("ok")
        .expect("ok");
    assert_eq!(done.status, JobStatus::Done);
    assert_eq!(done.fitted, ["page_view/count"]);
    assert_eq!(done.requested_at, "2026-11-23T11:59:00Z");
    assert_eq!(done.finished_at.as_deref(), Some("2026-11-23T12:00:00Z"));
    let fit = job_run
        .store
        .fit(&tenant("acme"), "page_view", None, Aggregation::Count, 7)
        .await
        .expect("ok")
        .expect("ok");
    assert_eq!(fit.version, 2);
}

#[tokio::test]
async fn a_refit_that_cannot_read_the_metrics_ends_its_job_failed_and_an_unreadable_request_is_dropped()
 {
    // Given storage that is down, a queued job and a request that is not one
    let store = MemoryInsights::default();
    store.put_job(&job("j2")).await.expect("ok");
    let job_run = Retrain::new(
        MemoryTotals {
            rows: None,
            ..page_views(0)
        },
        store,
    )
    .with_clock(|| NOW);
    // When both arrive
    let report = job_run
        .handle(queued(&["not json".to_owned(), request("j2")]))
        .await
        .expect("ok");
    // Then the job failed, saying why and that the admin may ask again
    assert_eq!(report.failed, 1);
    let failed = job_run
        .store
        .job(&tenant("acme"), "j2")
        .await
        .expect("ok")
        .expect("ok");
    assert_eq!(failed.status, JobStatus::Failed);
    assert!(
        failed
            .error
            .as_deref()
            .is_some_and(|e| e.contains("ask again")),
        "{failed:?}"
    );
}
