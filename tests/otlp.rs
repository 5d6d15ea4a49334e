//! OTLP/HTTP metrics from the real OpenTelemetry Python SDK (protobuf and JSON exporters)
//! land as the right metrics and tags.

use pulse_tests::cloud;
use serde_json::Value;
use std::collections::BTreeMap;

/// Runs `tests/otlp_export.py` with the venv's Python against the shared local cloud.
fn export(encoding: &str, service: &str, tenant: &str) {
    let c = cloud();
    let root = pulse_local::default_root();
    let out = std::process::Command::new(root.join(".venv/bin/python"))
        .arg(root.join("tests/otlp_export.py"))
        .args([&c.http, &c.token(tenant, "admin"), encoding, service])
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
    export(encoding, &service, &tenant);
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
