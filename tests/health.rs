//! Health through the local cloud: 200 when every table is reachable, 503 naming the table
//! when one is not; the API calls Pulse answers reach the System health view.

use pulse_tests::{cloud, start};
use serde_json::Value;
use std::time::Duration;

fn routes(v: &Value) -> Vec<String> {
    v["rows"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter_map(|r| r["route"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn the_api_calls_pulse_answers_are_in_system_health_once_their_minute_is_sealed() {
    // Given a tenant whose viewer reads the key cards (a call Pulse records as its own service)
    let c = cloud();
    let tenant = "health-own";
    let (status, cards) = c.get(tenant, "viewer", "/api/v1/metrics").await;
    assert_eq!(status, 200, "{cards}");
    // When the rollup job has sealed the call's minute (breakdowns are read through the last
    // sealed minute)
    let deadline = tokio::time::Instant::now() + Duration::from_secs(150);
    loop {
        let _ = c.fire("RollupJobFunction", "EveryMinute").await;
        let (status, api) = c.get(tenant, "admin", "/api/v1/health/api?range=1h").await;
        assert_eq!(status, 200, "{api}");
        let requests = api["rows"]
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["route"] == "/api/v1/metrics"))
            .and_then(|r| r["requests"].as_f64());
        if requests.is_some_and(|n| n >= 1.0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no recorded request: {api}"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    // Then the health view lists the route, `service=pulse` keeps only Pulse's own calls and
    // `service=!pulse` leaves them out
    for (service, listed) in [("pulse", true), ("!pulse", false)] {
        let path = format!("/api/v1/health/api?range=1h&service={service}");
        let (status, v) = c.get(tenant, "admin", &path).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(
            routes(&v).iter().any(|r| r == "/api/v1/metrics"),
            listed,
            "service={service}: {v}"
        );
    }
}

#[tokio::test]
async fn health_is_200_with_every_table_ok() {
    let res = reqwest::get(format!("{}/api/v1/health", cloud().http))
        .await
        .expect("response");
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["status"], "ok");
    for table in ["events", "metrics", "app"] {
        assert_eq!(body["tables"][table]["status"], "ok", "{table}");
    }
}

#[tokio::test]
async fn an_unreachable_table_makes_health_503_not_a_panic() {
    // Given a local cloud of our own whose Metrics table is then deleted
    let cloud = start().await;
    let metrics = cloud
        .model()
        .tables
        .iter()
        .find(|t| t.logical_id == "MetricsTable")
        .expect("MetricsTable")
        .name
        .clone();
    aws_sdk_dynamodb::Client::new(cloud.sdk_config())
        .delete_table()
        .table_name(&metrics)
        .send()
        .await
        .expect("deleted");
    // When health is asked
    let res = reqwest::get(format!("{}/api/v1/health", cloud.http_url()))
        .await
        .expect("response");
    // Then it answers 503 naming the table, and the others stay ok
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["status"], "unhealthy");
    assert_eq!(body["tables"]["metrics"]["status"], "unreachable");
    assert_eq!(body["tables"]["metrics"]["reason"], "table not found");
    assert_eq!(body["tables"]["events"]["status"], "ok");
    cloud.stop().await;
}
