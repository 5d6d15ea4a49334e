//! Store adapters against the emulator: what the functions' handler tests take on trust from
//! their in-memory stores.

use pulse_core::apikeys::{self, ApiKey};
use pulse_core::identity::TenantId;
use pulse_store::app::DynamoApp;
use pulse_store::{KeyLookup, KeyStore, TrackStore};
use pulse_tests::cloud;

fn app_table() -> String {
    cloud()
        .model
        .tables
        .iter()
        .find(|t| t.logical_id == "AppTable")
        .expect("AppTable")
        .name
        .clone()
}

#[tokio::test]
async fn api_keys_are_found_by_hash_listed_per_tenant_and_revoked() {
    let app = DynamoApp::new(&cloud().sdk().await, &app_table());
    let tenant = TenantId::parse("keys-a").expect("tenant");
    let key = apikeys::generate().expect("key");
    let stored = ApiKey {
        id: apikeys::id_of(&key),
        tenant: tenant.clone(),
        name: "ci".into(),
        scopes: vec![apikeys::SCOPE_INGEST.into()],
        created_at: "2026-11-22T10:00:00Z".into(),
    };
    app.put_key(&apikeys::hash(&key), &stored)
        .await
        .expect("stored");
    // Found by the hash of the key, never by the key itself.
    assert_eq!(
        app.key_by_hash(&apikeys::hash(&key)).await.expect("read"),
        Some(stored.clone())
    );
    assert_eq!(
        app.key_by_hash(&apikeys::hash("pulse_other"))
            .await
            .expect("read"),
        None
    );
    // Listed for its tenant only.
    assert_eq!(app.keys(&tenant).await.expect("list"), vec![stored.clone()]);
    assert!(
        app.keys(&TenantId::parse("keys-b").expect("tenant"))
            .await
            .expect("list")
            .is_empty()
    );
    // Another tenant cannot revoke it; its own tenant can, and then it no longer authenticates.
    assert!(
        !app.delete_key(&TenantId::parse("keys-b").expect("tenant"), &stored.id)
            .await
            .expect("delete")
    );
    assert!(app.delete_key(&tenant, &stored.id).await.expect("delete"));
    assert_eq!(
        app.key_by_hash(&apikeys::hash(&key)).await.expect("read"),
        None
    );
}

#[tokio::test]
async fn the_daily_salt_is_created_once_and_rate_counters_count() {
    let app = DynamoApp::new(&cloud().sdk().await, &app_table());
    let other = DynamoApp::new(&cloud().sdk().await, &app_table());
    // Two cold functions on the same day agree on the salt; another day has another.
    let a = app.daily_salt("2030-01-01").await.expect("salt");
    assert_eq!(other.daily_salt("2030-01-01").await.expect("salt"), a);
    assert_ne!(app.daily_salt("2030-01-02").await.expect("salt"), a);
    assert_eq!(a.len(), 32);
    for expected in 1..=3 {
        assert_eq!(
            app.count_request("client-x", 1_000_020, 60)
                .await
                .expect("counted"),
            expected
        );
    }
    assert_eq!(
        app.count_request("client-x", 1_000_080, 60)
            .await
            .expect("counted"),
        1,
        "a new window"
    );
}

#[tokio::test]
async fn the_series_cap_counts_each_series_once_even_under_concurrent_writers() {
    use pulse_metrics::aggregate::{OTHER_SERIES, SeriesKey};
    use pulse_store::metrics::DynamoMetrics;
    use pulse_store::{SeriesCatalog, SeriesRegistry};
    use std::collections::BTreeMap;
    let table = cloud().table("MetricsTable");
    let sdk = cloud().sdk().await;
    // Given two writers (say two stream shards) with their own caches, and a cap of 3
    let a = DynamoMetrics::new(&sdk, &table, Default::default());
    let b = DynamoMetrics::new(&sdk, &table, Default::default());
    let tenant = TenantId::parse("cap-a").expect("tenant");
    let series = |host: &str| {
        let tags = BTreeMap::from([("host".to_owned(), host.to_owned())]);
        (
            SeriesKey {
                tenant: tenant.clone(),
                metric: "cpu".into(),
                series: pulse_metrics::aggregate::series_id(&tags),
            },
            tags,
        )
    };
    let first = [series("h1"), series("h2")];
    // When both register the same two series at once, then a third and a fourth arrive
    let (ra, rb) = tokio::join!(a.register_series(&first, 3), b.register_series(&first, 3));
    assert!(ra.expect("a").is_empty() && rb.expect("b").is_empty());
    let third = a.register_series(&[series("h3")], 3).await.expect("third");
    let fourth = b.register_series(&[series("h4")], 3).await.expect("fourth");
    // Then the shared series counted once: the third fits, the fourth is refused
    assert!(third.is_empty(), "h1 and h2 were counted twice");
    assert_eq!(fourth.len(), 1);
    // And the catalog lists the three series and the overflow
    let listed = a.series(&tenant, "cpu").await.expect("catalog");
    let ids: Vec<&str> = listed.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(listed.len(), 4, "{ids:?}");
    assert!(ids.contains(&OTHER_SERIES));
}

#[tokio::test]
async fn writers_racing_for_the_last_room_under_the_cap_keep_exactly_the_cap() {
    use pulse_metrics::aggregate::{OTHER_SERIES, SeriesKey};
    use pulse_store::metrics::DynamoMetrics;
    use pulse_store::{SeriesCatalog, SeriesRegistry};
    use std::collections::BTreeMap;
    let table = cloud().table("MetricsTable");
    let sdk = cloud().sdk().await;
    // Given four writers with their own caches, each with six new series of one metric, and
    // a cap of 10 (room for fewer than they bring together)
    let tenant = TenantId::parse("cap-race").expect("tenant");
    let batches: Vec<Vec<_>> = (0..4)
        .map(|w| {
            (0..6)
                .map(|i| {
                    let tags = BTreeMap::from([("host".to_owned(), format!("w{w}-h{i}"))]);
                    let key = SeriesKey {
                        tenant: tenant.clone(),
                        metric: "mem".into(),
                        series: pulse_metrics::aggregate::series_id(&tags),
                    };
                    (key, tags)
                })
                .collect()
        })
        .collect();
    // When they register at the same moment
    let writers = batches.iter().map(|batch| {
        let store = DynamoMetrics::new(&sdk, &table, Default::default());
        async move { store.register_series(batch, 10).await }
    });
    let refused: usize = futures::future::join_all(writers)
        .await
        .into_iter()
        .map(|r| r.expect("registered").len())
        .sum();
    // Then exactly 10 of the 24 are kept and 14 folded, and the catalog holds the 10 kept
    // (a claim that lost the room was given back) and the overflow
    assert_eq!(refused, 14);
    let listed = DynamoMetrics::new(&sdk, &table, Default::default())
        .series(&tenant, "mem")
        .await
        .expect("catalog");
    let ids: Vec<&str> = listed.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(listed.len(), 11, "{ids:?}");
    assert!(ids.contains(&OTHER_SERIES));
}

#[tokio::test]
async fn concurrent_marks_of_one_minute_are_all_kept_as_dynamodb_keeps_atomic_adds() {
    use pulse_core::time::Resolution;
    use pulse_metrics::rollup::Pending;
    use pulse_store::PendingWindows;
    use pulse_store::metrics::DynamoMetrics;
    let table = cloud().table("MetricsTable");
    let sdk = cloud().sdk().await;
    // Given four writers (stream shards' batches) marking one new minute, far older than
    // any other test's, 48 times at once, each naming its own Events shard
    let tenant = TenantId::parse("marks-atomic").expect("tenant");
    let minute = 3;
    let writers: Vec<_> = (0..4u32)
        .map(|w| {
            let store = DynamoMetrics::new(&sdk, &table, Default::default());
            let marks: Vec<Pending> = (0..12u32)
                .map(|i| Pending::minute(tenant.clone(), minute, [w * 12 + i]))
                .collect();
            async move { store.mark(&marks).await }
        })
        .collect();
    // When they all land
    for sent in futures::future::join_all(writers).await {
        sent.expect("mark");
    }
    // Then the minute's mark counts all 48 and names every shard (an add lost to a
    // read-modify-write race would let sealing skip a shard's events for good)
    let reader = DynamoMetrics::new(&sdk, &table, Default::default());
    let pending = reader
        .pending(Resolution::Minute, (minute + 1) * 60, 10)
        .await
        .expect("pending");
    let ours: Vec<_> = pending.iter().filter(|p| p.tenant == tenant).collect();
    assert_eq!(ours.len(), 1, "{pending:?}");
    assert_eq!(ours[0].marks, 48);
    assert_eq!(ours[0].shards, (0..48).collect());
}

#[tokio::test]
async fn a_totals_read_of_some_metrics_carries_only_theirs() {
    use pulse_metrics::aggregate::{Bucket, SeriesKey, TOTAL_SERIES};
    use pulse_metrics::rollup::{BucketAt, Resolution};
    use pulse_store::metrics::DynamoMetrics;
    use pulse_store::{BucketWriter, Totals};
    let table = cloud().table("MetricsTable");
    let sdk = cloud().sdk().await;
    let store = DynamoMetrics::new(&sdk, &table, Default::default());
    let tenant = TenantId::parse("totals-of").expect("tenant");
    // Given three metrics' totals in two hours
    let hour = 1_800_000_000; // a whole hour (2027-01-15T08:00:00Z)
    for metric in ["a", "b", "c"] {
        for start in [hour, hour + 3_600] {
            let mut bucket = Bucket::default();
            bucket.add(1.0, None);
            let at = BucketAt {
                series: SeriesKey {
                    tenant: tenant.clone(),
                    metric: metric.into(),
                    series: TOTAL_SERIES.into(),
                },
                resolution: Resolution::Hour,
                start,
            };
            store.put_bucket(&at, &bucket).await.expect("put");
        }
    }
    // When the totals of a and c are read, and then every metric's
    let some = store
        .totals(&tenant, Resolution::Hour, hour, hour + 7_200, &["a", "c"])
        .await
        .expect("some");
    let all = store
        .totals(&tenant, Resolution::Hour, hour, hour + 7_200, &[])
        .await
        .expect("all");
    // Then the first holds a's and c's two hours only, the second all six
    let names = |rows: &[(String, i64, Bucket)]| {
        let mut n: Vec<String> = rows
            .iter()
            .map(|(m, s, _)| format!("{m}@{}", s - hour))
            .collect();
        n.sort();
        n
    };
    assert_eq!(names(&some), ["a@0", "a@3600", "c@0", "c@3600"]);
    assert_eq!(names(&all).len(), 6);
}

#[tokio::test]
async fn an_imports_boundary_is_the_one_of_its_first_send() {
    use pulse_store::HistoryWriter;
    use pulse_store::metrics::DynamoMetrics;
    let table = cloud().table("MetricsTable");
    let sdk = cloud().sdk().await;
    let store = DynamoMetrics::new(&sdk, &table, Default::default());
    let tenant = TenantId::parse("boundary-a").expect("tenant");
    // Given an import first sent when its live window began at 1,000
    let first = store
        .import_boundary(&tenant, "c0ffee", 1_000, 2_000_000_000)
        .await
        .expect("first");
    // When it is sent again later (its window would begin at 9,000), and another import is sent
    let again = store
        .import_boundary(&tenant, "c0ffee", 9_000, 2_000_000_000)
        .await
        .expect("again");
    let other = store
        .import_boundary(&tenant, "beef", 9_000, 2_000_000_000)
        .await
        .expect("other");
    // Then the resend splits where the first send did, and the other import where it is sent
    assert_eq!((first, again, other), (1_000, 1_000, 9_000));
}
