//! `/api/v1/metric-definitions` through the local cloud: admins define metrics, every role
//! reads them, ingest enforces their ranges, and a derived metric is queried like any other.

use pulse_tests::cloud;
use serde_json::{Value, json};
use std::time::Duration;

async fn call(
    method: &str,
    path: &str,
    tenant: &str,
    role: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let c = cloud();
    let http = reqwest::Client::new();
    let url = format!("{}{path}", c.http);
    let req = match method {
        "POST" => http.post(url),
        "PUT" => http.put(url),
        "DELETE" => http.delete(url),
        _ => http.get(url),
    };
    let req = match body {
        Some(b) => req.json(&b),
        None => req,
    };
    let res = req
        .bearer_auth(c.token(tenant, role))
        .send()
        .await
        .expect("response");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn admins_define_metrics_that_everyone_reads_and_ingest_enforces() {
    let defs = "/api/v1/metric-definitions";
    // Given an admin defines cpu as a percentage between 0 and 100
    let cpu = json!({"name": "def.cpu", "unit": "%", "description": "CPU use", "default_aggregation": "avg", "min": 0, "max": 100});
    let (status, created) = call("POST", defs, "def-a", "admin", Some(cpu.clone())).await;
    assert_eq!(status, 201, "{created}");
    // Then a viewer reads it, another tenant does not see it, and defining it again is a conflict
    let (_, list) = call("GET", defs, "def-a", "viewer", None).await;
    assert_eq!(list["definitions"][0]["unit"], "%", "{list}");
    let (_, other) = call("GET", defs, "def-b", "admin", None).await;
    assert_eq!(other["definitions"], json!([]), "{other}");
    assert_eq!(call("POST", defs, "def-a", "admin", Some(cpu)).await.0, 409);
    assert_eq!(
        call("POST", defs, "def-a", "viewer", Some(json!({"name": "x"})))
            .await
            .0,
        403
    );
    let (status, bad) = call(
        "POST",
        defs,
        "def-a",
        "admin",
        Some(json!({"name": "y", "min": 9, "max": 1})),
    )
    .await;
    assert_eq!(
        (status, bad["errors"][0]["pointer"].as_str()),
        (400, Some("#/max")),
        "{bad}"
    );
    // And ingest refuses a batch with a value out of range, naming it, and takes one in range
    let batch = |v: f64| json!([{"kind": "metric", "name": "def.cpu", "value": 50.0}, {"kind": "metric", "name": "def.cpu", "value": v}]);
    let (status, problem) = call(
        "POST",
        "/api/v1/events",
        "def-a",
        "admin",
        Some(json!({"events": batch(140.0)})),
    )
    .await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["errors"][0]["pointer"], "#/events/1/value");
    assert_eq!(
        call(
            "POST",
            "/api/v1/events",
            "def-a",
            "admin",
            Some(json!({"events": batch(99.0)}))
        )
        .await
        .0,
        202
    );
    // And another tenant's cpu is not bound by it
    assert_eq!(
        call(
            "POST",
            "/api/v1/events",
            "def-b",
            "admin",
            Some(json!({"events": batch(140.0)}))
        )
        .await
        .0,
        202
    );
    // And PUT replaces, GET reads one, DELETE removes
    let (status, put) = call(
        "PUT",
        &format!("{defs}/def.cpu"),
        "def-a",
        "admin",
        Some(json!({"unit": "%", "max": 200})),
    )
    .await;
    assert_eq!((status, &put["max"]), (200, &json!(200.0)), "{put}");
    assert_eq!(
        call("GET", &format!("{defs}/def.cpu"), "def-a", "viewer", None)
            .await
            .1["max"],
        200.0
    );
    assert_eq!(
        call("DELETE", &format!("{defs}/def.cpu"), "def-a", "admin", None)
            .await
            .0,
        204
    );
    assert_eq!(
        call("DELETE", &format!("{defs}/def.cpu"), "def-a", "admin", None)
            .await
            .0,
        404
    );
    assert_eq!(
        call("GET", &format!("{defs}/def.cpu"), "def-a", "admin", None)
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn a_derived_metric_is_the_ratio_of_its_two_metrics_per_point() {
    // Given error_rate = api_request.failed / api_request (counts), and four requests a
    // minute ago of which one failed
    let (status, def) = call(
        "POST",
        "/api/v1/metric-definitions",
        "def-c",
        "admin",
        Some(json!({"name": "error_rate", "unit": "ratio", "derived": {"op": "ratio", "of": ["api_request.failed", "api_request"], "aggregation": "count"}})),
    )
    .await;
    assert_eq!(status, 201, "{def}");
    let t = (chrono::Utc::now() - chrono::Duration::seconds(60)).to_rfc3339();
    let reqs: Vec<Value> = [200, 200, 503, 200]
        .iter()
        .map(|s| json!({"kind": "api_request", "route": "/a", "method": "GET", "status": s, "latency_ms": 5.0, "timestamp": t}))
        .collect();
    assert_eq!(
        call(
            "POST",
            "/api/v1/events",
            "def-c",
            "admin",
            Some(json!({"events": reqs}))
        )
        .await
        .0,
        202
    );
    // When it is queried over the last hour (once the stream has delivered)
    let body = json!({"metric_name": "error_rate", "time_range": "1h"});
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let answer = loop {
        let (status, v) = call(
            "POST",
            "/api/v1/metrics/query",
            "def-c",
            "admin",
            Some(body.clone()),
        )
        .await;
        assert_eq!(status, 200, "{v}");
        // The stream may deliver the four requests over several invocations.
        if v["data"]
            .as_array()
            .is_some_and(|d| d.iter().any(|p| p["value"] == 0.25))
        {
            break v;
        }
        assert!(tokio::time::Instant::now() < deadline, "no answer: {v}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    // Then its one point is 1 / 4
    let values: Vec<f64> = answer["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|p| p["value"].as_f64())
        .collect();
    assert_eq!(values, vec![0.25], "{answer}");
    // And a viewer may not see a ratio of system metrics; a comparison is refused
    assert_eq!(
        call(
            "POST",
            "/api/v1/metrics/query",
            "def-c",
            "viewer",
            Some(body)
        )
        .await
        .0,
        403
    );
    let compared =
        json!({"metric_name": "error_rate", "time_range": "1h", "compare_to": "previous_period"});
    assert_eq!(
        call(
            "POST",
            "/api/v1/metrics/query",
            "def-c",
            "admin",
            Some(compared)
        )
        .await
        .0,
        400
    );
}
