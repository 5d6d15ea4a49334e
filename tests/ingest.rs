//! `POST /api/v1/events` through the local cloud: batches become raw items in the Events
//! table, a retried batch is stored once, and a bad batch stores nothing and says exactly why.

use aws_sdk_dynamodb::types::AttributeValue;
use pulse_tests::cloud;
use serde_json::{Value, json};

fn now_rfc3339(offset_secs: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(offset_secs))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

async fn post(
    tenant: &str,
    role: &str,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    let c = cloud();
    reqwest::Client::new()
        .post(format!("{}/api/v1/events", c.http))
        .bearer_auth(c.token(tenant, role))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("response")
}

async fn post_json(tenant: &str, body: &Value) -> reqwest::Response {
    post(tenant, "admin", "application/json", body.to_string()).await
}

/// Every raw item of `tenant` in the Events table.
async fn stored(tenant: &str) -> Vec<pulse_tests::Item> {
    cloud().scan("EventsTable", Some(tenant)).await
}

fn s(item: &std::collections::HashMap<String, AttributeValue>, k: &str) -> String {
    item.get(k)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn a_batch_becomes_raw_items_with_keys_ttl_and_the_whole_event() {
    // Given a batch of three kinds
    let ts = now_rfc3339(-30);
    let batch = json!({"events": [
        {"kind": "metric", "name": "cpu.load", "value": 0.75, "id": "raw-1", "timestamp": ts, "tags": {"host": "web-1"}},
        {"kind": "api_request", "route": "/api/v1/me", "method": "GET", "status": 200, "latency_ms": 12.5, "id": "raw-2", "timestamp": ts},
        {"kind": "order", "order_id": "o-9", "revenue": 42.0, "currency": "EUR", "id": "raw-3", "timestamp": ts, "visitor": "v-1"}
    ]});
    // When it is posted
    let res = post_json("ingest-raw", &batch).await;
    assert_eq!(res.status(), 202);
    let answer: Value = res.json().await.expect("json");
    assert_eq!(answer["accepted"], 3);
    assert_eq!(answer["ids"], json!(["raw-1", "raw-2", "raw-3"]));
    // Then each is one item, keyed by tenant, minute and shard, expiring 7 days after it happened
    let items = stored("ingest-raw").await;
    assert_eq!(items.len(), 3);
    let metric = items
        .iter()
        .find(|i| s(i, "id") == "raw-1")
        .expect("raw-1 stored");
    let ts_ms: i64 = metric["ts"].as_n().expect("ts").parse().expect("number");
    assert!(s(metric, "pk").starts_with(&format!("ingest-raw#{}#", ts_ms / 60_000)));
    assert_eq!(s(metric, "sk"), format!("{ts_ms:013}#raw-1"));
    let expires: i64 = metric["expires_at"]
        .as_n()
        .expect("ttl")
        .parse()
        .expect("number");
    assert_eq!(expires, ts_ms / 1000 + 7 * 86_400);
    let data: Value = serde_json::from_str(&s(metric, "data")).expect("event JSON");
    assert_eq!(data["value"], 0.75);
    assert_eq!(data["tags"]["host"], "web-1");
    let order = items
        .iter()
        .find(|i| s(i, "id") == "raw-3")
        .expect("raw-3 stored");
    assert_eq!(
        s(order, "gsi1pk"),
        "ingest-raw#v#v-1",
        "visitor index for erasure"
    );
}

#[tokio::test]
async fn the_same_batch_sent_twice_is_stored_once() {
    let ts = now_rfc3339(-5);
    let batch = json!({"events": (0..30).map(|i| json!({"kind": "metric", "name": "retry", "value": i, "id": format!("r-{i}"), "timestamp": ts})).collect::<Vec<_>>()});
    assert_eq!(post_json("ingest-twice", &batch).await.status(), 202);
    assert_eq!(post_json("ingest-twice", &batch).await.status(), 202);
    assert_eq!(stored("ingest-twice").await.len(), 30);
}

#[tokio::test]
async fn an_invalid_batch_lists_every_bad_event_and_stores_nothing() {
    let old = now_rfc3339(-8 * 86_400);
    let tags: serde_json::Map<String, Value> =
        (0..33).map(|i| (format!("t{i}"), json!("v"))).collect();
    let batch = json!({"events": [
        {"kind": "metric", "name": "fine", "value": 1},
        {"kind": "metric", "name": "old", "value": 1, "timestamp": old},
        {"kind": "metric", "name": "tagged", "value": 1, "tags": tags},
        {"kind": "metric", "name": "typed", "value": "NaN"},
        {"kind": "page_view", "path": "no-slash"}
    ]});
    let res = post_json("ingest-invalid", &batch).await;
    assert_eq!(res.status(), 400);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let problem: Value = res.json().await.expect("json");
    let pointers: Vec<&str> = problem["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["pointer"].as_str())
        .collect();
    assert_eq!(
        pointers,
        [
            "#/events/1/timestamp",
            "#/events/2/tags",
            "#/events/3/value",
            "#/events/4/path"
        ]
    );
    assert!(
        problem["detail"]
            .as_str()
            .expect("detail")
            .contains("4 of 5 events are invalid")
    );
    assert!(
        stored("ingest-invalid").await.is_empty(),
        "nothing from a rejected batch is stored"
    );
}

#[tokio::test]
async fn limits_and_malformed_bodies_are_precise_4xx() {
    let too_many = json!({"events": (0..1001).map(|_| json!({"kind": "metric", "name": "x", "value": 1})).collect::<Vec<_>>()});
    assert_eq!(post_json("ingest-limits", &too_many).await.status(), 413);
    let padding = "x".repeat(1024 * 1024);
    let too_big =
        json!({"events": [{"kind": "event", "name": "big", "properties": {"p": padding}}]});
    assert_eq!(post_json("ingest-limits", &too_big).await.status(), 413);

    for body in [
        r#"{"events":[{"kind":"metric","name":"x","value":NaN}]}"#,
        r#"{"events":[{"kind":"metric","name":"x","value":Infinity}]}"#,
        r#"{"events": [ {"kind": "metric""#,
    ] {
        let res = post("ingest-limits", "admin", "application/json", body).await;
        assert_eq!(res.status(), 400, "{body}");
        let problem: Value = res.json().await.expect("json");
        assert!(
            problem["detail"]
                .as_str()
                .expect("detail")
                .contains("not valid JSON"),
            "{problem}"
        );
    }
    let wrong_type = post("ingest-limits", "admin", "text/plain", r#"{"events":[]}"#).await;
    assert_eq!(wrong_type.status(), 415);
    let viewer = post(
        "ingest-limits",
        "viewer",
        "application/json",
        r#"{"events":[]}"#,
    )
    .await;
    assert_eq!(viewer.status(), 403);
    assert!(stored("ingest-limits").await.is_empty());
}

/// The live 1-minute buckets of `tenant`'s `metric` in the Metrics table.
async fn live_buckets(
    tenant: &str,
    metric: &str,
) -> Vec<std::collections::HashMap<String, AttributeValue>> {
    let c = cloud();
    let table = c
        .model
        .tables
        .iter()
        .find(|t| t.logical_id == "MetricsTable")
        .expect("MetricsTable")
        .name
        .clone();
    let client = aws_sdk_dynamodb::Client::new(&c.sdk().await);
    client
        .scan()
        .table_name(&table)
        // The series' own buckets; the metric's total (series __total__) mirrors them.
        .filter_expression("tenant = :t AND metric = :m AND resolution = :r AND series <> :total")
        .expression_attribute_values(":total", AttributeValue::S("__total__".to_owned()))
        .expression_attribute_values(":t", AttributeValue::S(tenant.to_owned()))
        .expression_attribute_values(":m", AttributeValue::S(metric.to_owned()))
        .expression_attribute_values(":r", AttributeValue::S("1m".to_owned()))
        .send()
        .await
        .expect("scan")
        .items()
        .to_vec()
}

fn n(item: &std::collections::HashMap<String, AttributeValue>, k: &str) -> f64 {
    item.get(k)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

#[tokio::test]
async fn a_batch_becomes_a_live_minute_bucket_with_exact_count_sum_min_max_counted_once() {
    // Given four samples of one series in one minute
    let minute_start = (chrono::Utc::now().timestamp() / 60 - 1) * 60;
    let ts = chrono::DateTime::from_timestamp(minute_start + 10, 0)
        .expect("time")
        .to_rfc3339();
    let events: Vec<Value> = [5.0, 1.0, 9.0, 3.0]
        .iter()
        .enumerate()
        .map(|(i, v)| json!({"kind": "metric", "name": "latency", "value": v, "id": format!("live-{i}"), "timestamp": ts, "tags": {"host": "a"}}))
        .collect();
    let batch = json!({"events": events});
    // When they are ingested
    assert_eq!(post_json("ingest-live", &batch).await.status(), 202);
    // Then the stream aggregator writes one bucket with exact figures
    let mut bucket = None;
    for _ in 0..100 {
        let found = live_buckets("ingest-live", "latency").await;
        if found.first().is_some_and(|b| n(b, "count") == 4.0) {
            bucket = found.into_iter().next();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let bucket = bucket.expect("a bucket with all four samples within 10 s");
    assert_eq!(
        (
            n(&bucket, "count"),
            n(&bucket, "sum"),
            n(&bucket, "min"),
            n(&bucket, "max")
        ),
        (4.0, 18.0, 1.0, 9.0)
    );
    assert_eq!(
        s(&bucket, "sk"),
        format!("{minute_start:012}#{}", s(&bucket, "series"))
    );
    // And the same batch sent again changes nothing (retries overwrite: no INSERT records)
    assert_eq!(post_json("ingest-live", &batch).await.status(), 202);
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let again = live_buckets("ingest-live", "latency").await;
    assert_eq!(again.len(), 1);
    assert_eq!(n(&again[0], "count"), 4.0, "counted once");
}
