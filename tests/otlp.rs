//! OTLP/HTTP metrics from the real OpenTelemetry Python SDK (protobuf and JSON exporters)
//! land as the right metrics and tags.

use pulse_tests::cloud;
use serde_json::Value;
use std::collections::BTreeMap;

/// Runs `tests/otlp_export.py` with the venv's Python against the shared local cloud, sending
/// `credential` (a token or an API key) as the bearer.
fn export(encoding: &str, service: &str, credential: &str) {
    let c = cloud();
    let root = pulse_local::default_root();
    let out = std::process::Command::new(root.join(".venv/bin/python"))
        .arg(root.join("tests/otlp_export.py"))
        .args([c.http.as_str(), credential, encoding, service])
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "the {encoding} exporter failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `tenant`'s stored events by name.
async fn stored(tenant: &str) -> BTreeMap<String, Value> {
    cloud()
        .scan("EventsTable", Some(tenant))
        .await
        .iter()
        .filter_map(|i| serde_json::from_str::<Value>(i.get("data")?.as_s().ok()?).ok())
        .map(|e| (e["name"].as_str().unwrap_or("").to_owned(), e))
        .collect()
}

async fn check(encoding: &str) {
    let tenant = format!("otlp-{encoding}");
    let service = format!("svc-{encoding}");
    export(encoding, &service, &cloud().token(&tenant, "admin"));
    let events = stored(&tenant).await;
    let value = |name: &str| {
        events
            .get(name)
            .map(|e| e["value"].as_f64().expect("value"))
            .unwrap_or_else(|| panic!("{name} missing from {events:?}"))
    };
    assert_eq!(value("orders.created"), 5.0, "the cumulative sum");
    assert_eq!(value("queue.depth"), 7.0);
    assert_eq!(value("http.server.duration.count"), 3.0);
    assert_eq!(value("http.server.duration.sum"), 60.0);
    assert_eq!(value("http.server.duration.min"), 10.0);
    assert_eq!(value("http.server.duration.max"), 30.0);
    let orders = &events["orders.created"];
    assert_eq!(
        orders["tags"]["region"], "eu",
        "data-point attributes become tags"
    );
    assert_eq!(
        orders["tags"]["service.name"],
        service.as_str(),
        "resource attributes become tags"
    );
    assert_eq!(orders["unit"], "{orders}");
    assert_eq!(
        events["http.server.duration.sum"]["tags"]["http.route"],
        "/cart"
    );
}

#[tokio::test]
async fn the_python_sdks_protobuf_exporter_lands_as_metrics_and_tags() {
    check("protobuf").await;
}

#[tokio::test]
async fn the_python_sdks_json_exporter_lands_as_metrics_and_tags() {
    check("json").await;
}

#[tokio::test]
async fn an_api_key_authenticates_the_exporter_for_its_tenant() {
    // Given an ingest key of tenant otlp-key
    let c = cloud();
    let created: Value = reqwest::Client::new()
        .post(format!("{}/api/v1/api-keys", c.http))
        .bearer_auth(c.token("otlp-key", "admin"))
        .json(&serde_json::json!({"name": "collector"}))
        .send()
        .await
        .expect("response")
        .json()
        .await
        .expect("json");
    let key = created["secret"].as_str().expect("secret");
    // When the SDK exports with it
    export("protobuf", "svc-key", key);
    // Then the metrics are the key's tenant's
    let events = stored("otlp-key").await;
    assert_eq!(events["queue.depth"]["value"], 7.0);
    assert_eq!(events["queue.depth"]["tags"]["service.name"], "svc-key");
}

#[tokio::test]
async fn otlp_needs_credentials_and_a_known_encoding() {
    let c = cloud();
    let http = reqwest::Client::new();
    let anonymous = http
        .post(format!("{}/v1/metrics", c.http))
        .header("content-type", "application/x-protobuf")
        .body(vec![])
        .send()
        .await
        .expect("response");
    assert_eq!(anonymous.status(), 401);
    let text = http
        .post(format!("{}/v1/metrics", c.http))
        .bearer_auth(c.token("otlp-x", "admin"))
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .expect("response");
    assert_eq!(text.status(), 415);
}
