//! The rollup job through the local cloud: events posted to the ingest API are sealed into
//! exact minute buckets and rolled up to 5m, 1h and 1d with their resolution's TTL; running
//! the job again changes nothing; one tenant's rollups never hold another's events.

use pulse_local::LocalCloud;
use pulse_tests::{Item, scan, start};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

fn n(item: &Item, k: &str) -> f64 {
    item.get(k)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

fn s(item: &Item, k: &str) -> String {
    item.get(k)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default()
}

fn metrics_table(cloud: &LocalCloud) -> String {
    cloud
        .model()
        .tables
        .iter()
        .find(|t| t.logical_id == "MetricsTable")
        .expect("MetricsTable")
        .name
        .clone()
}

/// The buckets of `tenant`'s metric `name`, by resolution: (start, count, sum, min, max, ttl).
async fn buckets(
    cloud: &LocalCloud,
    tenant: &str,
    name: &str,
) -> BTreeMap<String, Vec<(i64, f64, f64, f64, f64, i64)>> {
    let mut out: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for item in scan(cloud.sdk_config(), &metrics_table(cloud), Some(tenant)).await {
        // Totals are checked by the views tests; here each series' own buckets.
        if s(&item, "metric") != name
            || s(&item, "resolution").is_empty()
            || s(&item, "series") == "__total__"
        {
            continue;
        }
        out.entry(s(&item, "resolution")).or_default().push((
            // A series bucket's sort key is `{start}#{series}`.
            s(&item, "sk")
                .split('#')
                .next()
                .and_then(|start| start.parse().ok())
                .expect("start"),
            n(&item, "count"),
            n(&item, "sum"),
            n(&item, "min"),
            n(&item, "max"),
            n(&item, "expires_at") as i64,
        ));
    }
    for v in out.values_mut() {
        v.sort_by_key(|b| b.0);
    }
    out
}

/// Runs the rollup job once, as its schedule would; a tick of the schedule itself may be
/// running (the job's reserved concurrency is 1), so a throttled call waits and tries again.
async fn run_job(cloud: &LocalCloud) {
    for _ in 0..100 {
        match cloud.fire("RollupJobFunction", "EveryMinute").await {
            Ok(_) => return,
            Err(e) if e.contains("reserved concurrency") => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the job failed: {e}"),
        }
    }
    panic!("the job stayed throttled");
}

async fn post(cloud: &LocalCloud, tenant: &str, events: serde_json::Value) {
    let token = cloud.token(tenant, "admin").expect("token");
    let res = reqwest::Client::new()
        .post(format!("{}/api/v1/events", cloud.http_url()))
        .bearer_auth(token)
        .json(&json!({ "events": events }))
        .send()
        .await
        .expect("response");
    assert_eq!(res.status(), 202);
}

#[tokio::test]
async fn posted_events_are_sealed_and_rolled_up_exactly_and_idempotently() {
    let cloud = start().await;
    // Given five latencies two days ago in one minute for tenant roll-a, posted twice (an
    // SDK retry), and one for tenant roll-b in the same minute
    let day = (chrono::Utc::now().timestamp() / 86_400 - 2) * 86_400;
    let minute = day + 10 * 3_600 + 17 * 60;
    let at = |s: i64| {
        chrono::DateTime::from_timestamp(minute + s, 0)
            .expect("time")
            .to_rfc3339()
    };
    let batch = json!([
        {"kind": "metric", "name": "roll.latency", "value": 12.0, "id": "r1", "timestamp": at(1), "tags": {"route": "/cart"}},
        {"kind": "metric", "name": "roll.latency", "value": 30.0, "id": "r2", "timestamp": at(9), "tags": {"route": "/cart"}},
        {"kind": "metric", "name": "roll.latency", "value": 7.0, "id": "r3", "timestamp": at(20), "tags": {"route": "/cart"}},
        {"kind": "metric", "name": "roll.latency", "value": 50.0, "id": "r4", "timestamp": at(41), "tags": {"route": "/cart"}},
        {"kind": "metric", "name": "roll.latency", "value": 1.0, "id": "r5", "timestamp": at(59), "tags": {"route": "/cart"}}
    ]);
    post(&cloud, "roll-a", batch.clone()).await;
    post(&cloud, "roll-a", batch).await;
    post(&cloud, "roll-b", json!([{"kind": "metric", "name": "roll.latency", "value": 1000.0, "id": "b1", "timestamp": at(30)}])).await;
    // When the stream has delivered them (minutes this old are marked for sealing, not
    // merged live) and the job has run until nothing is left
    // (The stream may deliver the minute's records in two batches: the minute is then sealed
    // from the shards the first named and again from all of them, and each reseal rolls up
    // one resolution per run, so wait for the day to hold every value.)
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    for (tenant, want) in [("roll-a", 5.0), ("roll-b", 1.0)] {
        while !buckets(&cloud, tenant, "roll.latency")
            .await
            .get("1d")
            .is_some_and(|d| d.iter().map(|b| b.1).sum::<f64>() == want)
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{tenant}'s day never held its values: {:?}",
                buckets(&cloud, tenant, "roll.latency").await
            );
            run_job(&cloud).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    run_job(&cloud).await;
    // Then every resolution holds the minute's five values exactly, with its own TTL
    let first = buckets(&cloud, "roll-a", "roll.latency").await;
    let days = BTreeMap::from([("1m", 7), ("5m", 30), ("1h", 365), ("1d", 1825)]);
    for (resolution, keep_days) in &days {
        let b = first
            .get(*resolution)
            .unwrap_or_else(|| panic!("no {resolution} bucket in {first:?}"));
        assert_eq!(b.len(), 1, "{resolution}");
        let (start, count, sum, min, max, ttl) = b[0];
        assert_eq!(
            (count, sum, min, max),
            (5.0, 100.0, 1.0, 50.0),
            "{resolution}"
        );
        let secs = match *resolution {
            "1m" => 60,
            "5m" => 300,
            "1h" => 3_600,
            _ => 86_400,
        };
        assert_eq!(
            start,
            minute - minute.rem_euclid(secs),
            "{resolution} window start"
        );
        assert_eq!(ttl, start + secs + keep_days * 86_400, "{resolution} TTL");
    }
    // And tenant roll-b's rollups hold only its own event
    let other = buckets(&cloud, "roll-b", "roll.latency").await;
    assert_eq!(other["1d"][0].1, 1.0);
    assert_eq!(other["1d"][0].2, 1000.0);
    // And running the job again changes nothing
    run_job(&cloud).await;
    assert_eq!(buckets(&cloud, "roll-a", "roll.latency").await, first);
    cloud.stop().await;
}

#[tokio::test]
async fn an_imported_csv_history_is_in_its_hours_and_days_when_the_import_answers() {
    let cloud = start().await;
    // Given API requests of 40 days ago as CSV
    let day = (chrono::Utc::now().timestamp() / 86_400 - 40) * 86_400;
    let at = |s: i64| {
        chrono::DateTime::from_timestamp(day + s, 0)
            .expect("time")
            .to_rfc3339()
    };
    let csv = format!(
        "kind,route,method,status,latency_ms,timestamp\n\
         api_request,/cart,GET,200,10,{}\n\
         api_request,/cart,GET,200,30,{}\n\
         api_request,/cart,GET,200,20,{}\n",
        at(3_600),
        at(3_630),
        at(7 * 3_600)
    );
    let token = cloud.token("roll-import", "admin").expect("token");
    // When an admin imports them, and then sends the same import again
    for _ in 0..2 {
        let res = reqwest::Client::new()
            .post(format!("{}/api/v1/imports", cloud.http_url()))
            .bearer_auth(&token)
            .header("content-type", "text/csv")
            .body(csv.clone())
            .send()
            .await
            .expect("response");
        assert_eq!(res.status(), 202);
        let answer: serde_json::Value = res.json().await.expect("json");
        assert_eq!(answer["accepted"], 3);
        assert_eq!(answer["minutes"], 2);
    }
    // Then, with no rollup run, the day holds all three exactly once, two hours hold theirs,
    // and no minute or 5-minute bucket was written (their retention is long over)
    let b = buckets(&cloud, "roll-import", "api_request").await;
    let d: Vec<_> = b["1d"].iter().filter(|m| m.0 == day).collect();
    assert_eq!(d.len(), 1);
    assert_eq!(
        (d[0].0, d[0].1, d[0].2, d[0].3, d[0].4),
        (day, 3.0, 60.0, 10.0, 30.0)
    );
    assert_eq!(b["1h"].iter().filter(|m| m.0 < day + 86_400).count(), 2);
    // (Pulse's record of the import requests themselves are buckets of today.)
    for fine in ["1m", "5m"] {
        assert!(
            b.get(fine)
                .is_none_or(|v| v.iter().all(|m| m.0 > day + 86_400)),
            "{fine}: {:?}",
            b.get(fine)
        );
    }
    // And the rollup job, run now, changes none of it
    run_job(&cloud).await;
    assert_eq!(
        buckets(&cloud, "roll-import", "api_request").await["1d"],
        b["1d"]
    );
    cloud.stop().await;
}
