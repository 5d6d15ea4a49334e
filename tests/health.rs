//! Health through the local cloud: 200 when every table is reachable, 503 naming the table
//! when one is not.

use pulse_tests::{cloud, start};
use serde_json::Value;

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
