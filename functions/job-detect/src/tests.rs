use super::*;
use pulse_insights::memory::{MemoryInsights, MemoryTotals};
use pulse_metrics::aggregate::Bucket;
use pulse_metrics::rollup::Resolution;
use pulse_store::stream::ItemFailure;

const T0: i64 = 1_795_392_000; // 2026-11-23T00:00:00Z

fn steady(minutes: i64) -> MemoryTotals {
    MemoryTotals::new(
        (0..minutes)
            .map(|m| {
                let b = Bucket {
                    count: 10,
                    sum: 10.0,
                    ..Bucket::default()
                };
                ("page_view".to_owned(), T0 + m * 60, b)
            })
            .collect(),
        Resolution::Minute,
    )
}

fn notices(bodies: &[String]) -> QueueBatch {
    let records: Vec<serde_json::Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| serde_json::json!({"messageId": format!("m{i}"), "body": b}))
        .collect();
    serde_json::from_value(serde_json::json!({ "Records": records })).expect("batch")
}

fn sealed(tenant: &str, through: i64) -> String {
    serde_json::to_string(&SealedThrough {
        tenant: TenantId::parse(tenant).expect("tenant"),
        from: through - 60,
        through,
    })
    .expect("json")
}

#[tokio::test]
async fn notices_of_a_tenant_are_merged_and_its_detector_advances_to_the_newest() {
    // Given a tenant's detector started at its first minute
    let job = Detect::new(steady(30), MemoryInsights::default()).with_clock(|| T0);
    let acme = TenantId::parse("acme").expect("tenant");
    assert!(
        job.handle(notices(&[sealed("acme", T0 + 60)]))
            .await
            .batch_item_failures
            .is_empty()
    );
    // When two notices of it arrive in one batch, with one that is not a notice
    let res = job
        .handle(notices(&[
            sealed("acme", T0 + 10 * 60),
            "nope".to_owned(),
            sealed("acme", T0 + 20 * 60),
        ]))
        .await;
    // Then nothing comes again and the detector has scored through the newest notice
    assert!(res.batch_item_failures.is_empty());
    let d = job.store.detectors(&acme).await.expect("read");
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].last_minute, T0 + 19 * 60);
}

#[tokio::test]
async fn a_notice_whose_detection_failed_on_storage_comes_again() {
    let job = Detect::new(
        MemoryTotals {
            rows: None,
            ..steady(0)
        },
        MemoryInsights::default(),
    );
    let res = job.handle(notices(&[sealed("acme", T0 + 60)])).await;
    assert_eq!(
        res.batch_item_failures,
        [ItemFailure {
            item_identifier: "m0".into()
        }]
    );
}
