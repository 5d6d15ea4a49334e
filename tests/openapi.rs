//! docs/openapi.yaml is kept true: every route of template.yaml is documented (and nothing
//! else), and real responses of the local cloud — successes and problems — have a status the
//! document lists for the operation, its content type, and a body its schema accepts.

use pulse_tests::cloud;
use serde_json::{Value, json};
use std::collections::BTreeSet;

fn document() -> Value {
    let path = pulse_local::default_root().join("docs/openapi.yaml");
    let text = std::fs::read_to_string(path).expect("docs/openapi.yaml");
    serde_yaml_ng::from_str(&text).expect("YAML")
}

/// Follows a local `$ref` (`#/components/...`) in `doc`.
fn deref<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => doc
            .pointer(r.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("unresolved {r}")),
        None => v,
    }
}

/// Checks one real response against the operation `method path` of the document.
async fn conforms(doc: &Value, method: &str, path: &str, res: reqwest::Response) {
    let status = res.status().as_u16();
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .to_owned();
    let text = res.text().await.expect("body");
    let op = &doc["paths"][path][method.to_ascii_lowercase()];
    assert!(op.is_object(), "{method} {path} is not documented");
    let response = op["responses"]
        .get(status.to_string())
        .map(|r| deref(doc, r))
        .unwrap_or_else(|| {
            panic!("{method} {path} answered {status}, which is not documented: {text}")
        });
    let Some(content) = response.get("content").and_then(Value::as_object) else {
        assert!(
            text.is_empty(),
            "{method} {path} {status}: undocumented body {text}"
        );
        return;
    };
    let media = content.get(&content_type).unwrap_or_else(|| {
        panic!("{method} {path} {status}: content type {content_type} not documented")
    });
    if !content_type.ends_with("json") {
        return;
    }
    let body: Value = serde_json::from_str(&text).expect("JSON body");
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": doc["components"],
        "allOf": [media["schema"]],
    });
    let validator = jsonschema::validator_for(&schema)
        .unwrap_or_else(|e| panic!("{method} {path} {status}: bad schema: {e}"));
    let errors: Vec<String> = validator
        .iter_errors(&body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {path} {status}: {errors:?}\n{body}"
    );
}

#[test]
fn every_route_is_documented_and_every_documented_route_exists() {
    let doc = document();
    let documented: BTreeSet<String> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .into_iter()
                .flatten()
                .filter(|(m, _)| ["get", "post", "put", "delete", "patch"].contains(&m.as_str()))
                .map(move |(m, _)| format!("{} {path}", m.to_ascii_uppercase()))
        })
        .collect();
    let served: BTreeSet<String> = cloud().model.routes.iter().map(|r| r.key()).collect();
    assert_eq!(documented, served);
}

#[tokio::test]
async fn real_responses_match_the_document() {
    let doc = document();
    let c = cloud();
    let http = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", c.http);
    let admin = c.token("oas", "admin");
    let viewer = c.token("oas", "viewer");

    let res = http
        .get(url("/api/v1/health"))
        .send()
        .await
        .expect("health");
    conforms(&doc, "GET", "/api/v1/health", res).await;
    let res = http
        .get(url("/api/v1/me"))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("me");
    conforms(&doc, "GET", "/api/v1/me", res).await;
    let res = http.get(url("/api/v1/me")).send().await.expect("me");
    conforms(&doc, "GET", "/api/v1/me", res).await;
    let res = http
        .get(url("/api/v1/predictions/page_view?days=7"))
        .bearer_auth(&viewer)
        .send()
        .await
        .expect("predictions");
    conforms(&doc, "GET", "/api/v1/predictions/{metric}", res).await;
    let res = http
        .get(url("/api/v1/predictions/accuracy"))
        .bearer_auth(&viewer)
        .send()
        .await
        .expect("accuracy");
    conforms(&doc, "GET", "/api/v1/predictions/accuracy", res).await;
    let res = http
        .post(url("/api/v1/predictions/retrain"))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("retrain");
    let location = res
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .expect("a job's location");
    conforms(&doc, "POST", "/api/v1/predictions/retrain", res).await;
    for path in [location.as_str(), "/api/v1/predictions/retrain/nope"] {
        let res = http
            .get(url(path))
            .bearer_auth(&admin)
            .send()
            .await
            .expect("job");
        conforms(&doc, "GET", "/api/v1/predictions/retrain/{job}", res).await;
    }
    for query in ["metric=page_view", "metric=page_view&from=nope"] {
        let res = http
            .get(url(&format!("/api/v1/anomalies?{query}")))
            .bearer_auth(&viewer)
            .send()
            .await
            .expect("anomalies");
        conforms(&doc, "GET", "/api/v1/anomalies", res).await;
    }

    let now = chrono::Utc::now().to_rfc3339();
    let batch = json!({"events": [{"kind": "api_request", "route": "/x", "method": "GET", "status": 200, "latency_ms": 3.0, "timestamp": now}]});
    let res = http
        .post(url("/api/v1/events"))
        .bearer_auth(&admin)
        .json(&batch)
        .send()
        .await
        .expect("events");
    conforms(&doc, "POST", "/api/v1/events", res).await;
    let res = http
        .post(url("/api/v1/events"))
        .bearer_auth(&admin)
        .json(&json!({"events": [{"kind": "nope"}]}))
        .send()
        .await
        .expect("events");
    conforms(&doc, "POST", "/api/v1/events", res).await;
    let res = http
        .post(url("/api/v1/events"))
        .bearer_auth(&admin)
        .header("content-type", "text/plain")
        .body("x")
        .send()
        .await
        .expect("events");
    conforms(&doc, "POST", "/api/v1/events", res).await;

    let res = http
        .post(url("/api/v1/imports"))
        .bearer_auth(&admin)
        .header("content-type", "text/csv")
        .body(format!(
            "kind,name,value,timestamp\nmetric,oas.cpu,1,{now}\n"
        ))
        .send()
        .await
        .expect("imports");
    conforms(&doc, "POST", "/api/v1/imports", res).await;

    // A 200 with data, once the stream has delivered the event sent above.
    let query = json!({"metric_name": "api_request", "time_range": "1h", "aggregations": ["count", "p95"], "compare_to": "previous_period"});
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    let res = loop {
        let res = http
            .post(url("/api/v1/metrics/query"))
            .bearer_auth(&admin)
            .json(&query)
            .send()
            .await
            .expect("query");
        if res.status() == 200 || tokio::time::Instant::now() > deadline {
            break res;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    };
    assert_eq!(res.status(), 200);
    conforms(&doc, "POST", "/api/v1/metrics/query", res).await;
    let res = http
        .get(url("/api/v1/metrics/history?metric=api_request&range=1h&aggregation=count,p95&group_by=route"))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("history");
    assert_eq!(res.status(), 200);
    conforms(&doc, "GET", "/api/v1/metrics/history", res).await;
    for q in ["", "?range=7d"] {
        let res = http
            .get(url(&format!("/api/v1/metrics/catalog{q}")))
            .bearer_auth(&admin)
            .send()
            .await
            .expect("catalog");
        assert_eq!(res.status(), if q.is_empty() { 200 } else { 400 });
        conforms(&doc, "GET", "/api/v1/metrics/catalog", res).await;
    }
    let res = http
        .get(url(
            "/api/v1/metrics/history?metric=api_request&range=30d&interval=1m",
        ))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("history");
    assert_eq!(res.status(), 400);
    conforms(&doc, "GET", "/api/v1/metrics/history", res).await;
    for (token, body) in [
        (&viewer, json!({"metric_name": "order", "time_range": "1h"})),
        (
            &admin,
            json!({"metric_name": "api_request", "time_range": "nope"}),
        ),
        (
            &admin,
            json!({"metric_name": "never.sent", "time_range": "1h"}),
        ),
    ] {
        let res = http
            .post(url("/api/v1/metrics/query"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("query");
        conforms(&doc, "POST", "/api/v1/metrics/query", res).await;
    }

    // Every view, the cards and the summary, answered and refused.
    let views = [
        (
            "/api/v1/web/{view}",
            "web",
            &[
                "overview",
                "pages",
                "sources",
                "devices",
                "countries",
                "realtime",
                "goals",
            ][..],
        ),
        (
            "/api/v1/business/{view}",
            "business",
            &["overview", "sales", "products", "collections", "funnel"][..],
        ),
        (
            "/api/v1/health/{view}",
            "health",
            &["overview", "api", "timeseries"][..],
        ),
        ("/api/v1/ml/{view}", "ml", &["overview", "providers"][..]),
    ];
    for (documented, area, names) in views {
        for name in names {
            let res = http
                .get(url(&format!("/api/v1/{area}/{name}?range=24h")))
                .bearer_auth(&admin)
                .send()
                .await
                .expect("view");
            assert_eq!(res.status(), 200, "{area}/{name}");
            conforms(&doc, "GET", documented, res).await;
        }
        for (token, path) in [
            (&admin, format!("/api/v1/{area}/nope")),
            (&admin, format!("/api/v1/{area}/overview?range=soon")),
        ] {
            let res = http
                .get(url(&path))
                .bearer_auth(token)
                .send()
                .await
                .expect("view");
            conforms(&doc, "GET", documented, res).await;
        }
    }
    // The tenant's settings: read by anyone, changed by an admin, a bad code refused
    let settings = |token: &String, body: Option<Value>| {
        let call = match body {
            Some(b) => http.put(url("/api/v1/settings")).json(&b),
            None => http.get(url("/api/v1/settings")),
        };
        call.bearer_auth(token).send()
    };
    let res = settings(&admin, Some(json!({"currency": "EUR"})))
        .await
        .expect("settings");
    conforms(&doc, "PUT", "/api/v1/settings", res).await;
    let res = settings(&viewer, None).await.expect("settings");
    let kept: Value = res.json().await.expect("json");
    assert_eq!(kept["currency"], "EUR", "{kept}");
    for (token, body, status) in [
        (&admin, json!({"currency": "euro"}), 400),
        (&viewer, json!({"currency": "USD"}), 403),
    ] {
        let res = settings(token, Some(body)).await.expect("settings");
        assert_eq!(res.status(), status);
        conforms(&doc, "PUT", "/api/v1/settings", res).await;
    }
    let res = settings(&viewer, None).await.expect("settings");
    conforms(&doc, "GET", "/api/v1/settings", res).await;
    // The web overview without its panels (the dashboard's overview page) has no top or goals
    let res = http
        .get(url("/api/v1/web/overview?range=24h&top=false"))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("view");
    let bare: Value = res.json().await.expect("json");
    assert!(
        bare["metrics"].is_object() && bare.get("top").is_none() && bare.get("goals").is_none(),
        "{bare}"
    );
    let res = http
        .get(url("/api/v1/business/overview"))
        .bearer_auth(&viewer)
        .send()
        .await
        .expect("view");
    assert_eq!(res.status(), 403);
    conforms(&doc, "GET", "/api/v1/business/{view}", res).await;
    for body in [
        json!({"steps": [{"path": "/"}, {"event": "signup"}], "window": "1h", "time_range": "7d"}),
        json!({"steps": [{"path": "/"}]}),
    ] {
        let res = http
            .post(url("/api/v1/funnels/query"))
            .bearer_auth(&viewer)
            .json(&body)
            .send()
            .await
            .expect("funnel");
        conforms(&doc, "POST", "/api/v1/funnels/query", res).await;
    }
    let defs = url("/api/v1/metric-definitions");
    for (token, body) in [
        (
            &admin,
            json!({"name": "oas.cpu", "unit": "%", "min": 0, "max": 100, "default_aggregation": "avg"}),
        ),
        (&admin, json!({"name": "oas.cpu"})),
        (
            &admin,
            json!({"name": "oas.ratio", "derived": {"op": "ratio", "of": ["a", "b"]}}),
        ),
        (&admin, json!({"name": "bad", "max": "high"})),
        (&viewer, json!({"name": "oas.x"})),
    ] {
        let res = http
            .post(&defs)
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("definition");
        conforms(&doc, "POST", "/api/v1/metric-definitions", res).await;
    }
    let res = http
        .get(&defs)
        .bearer_auth(&viewer)
        .send()
        .await
        .expect("definitions");
    conforms(&doc, "GET", "/api/v1/metric-definitions", res).await;
    let one = url("/api/v1/metric-definitions/oas.cpu");
    let res = http
        .get(&one)
        .bearer_auth(&viewer)
        .send()
        .await
        .expect("definition");
    conforms(&doc, "GET", "/api/v1/metric-definitions/{name}", res).await;
    for body in [json!({"unit": "ratio", "max": 1}), json!({"min": []})] {
        let res = http
            .put(&one)
            .bearer_auth(&admin)
            .json(&body)
            .send()
            .await
            .expect("definition");
        conforms(&doc, "PUT", "/api/v1/metric-definitions/{name}", res).await;
    }
    for _ in 0..2 {
        let res = http
            .delete(&one)
            .bearer_auth(&admin)
            .send()
            .await
            .expect("definition");
        conforms(&doc, "DELETE", "/api/v1/metric-definitions/{name}", res).await;
    }
    for (token, body) in [
        (
            &admin,
            json!({"cards": ["page_views_today", "current_visitors"]}),
        ),
        (&admin, json!({"cards": ["nope"]})),
        (&viewer, json!({"cards": ["page_views_today"]})),
    ] {
        let res = http
            .put(url("/api/v1/metrics/cards"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("cards");
        conforms(&doc, "PUT", "/api/v1/metrics/cards", res).await;
    }
    for path in [
        "/api/v1/metrics",
        "/api/v1/metrics?cards=revenue_today,api_p95_latency,ml_success_rate,visits_today",
        "/api/v1/metrics?cards=nope",
    ] {
        let res = http
            .get(url(path))
            .bearer_auth(&admin)
            .send()
            .await
            .expect("cards");
        conforms(&doc, "GET", "/api/v1/metrics", res).await;
    }
    for path in [
        "/api/v1/dashboard/summary",
        "/api/v1/dashboard/summary?range=30d&sections=web,ml",
        "/api/v1/dashboard/summary?range=1y",
    ] {
        let res = http
            .get(url(path))
            .bearer_auth(&admin)
            .send()
            .await
            .expect("summary");
        conforms(&doc, "GET", "/api/v1/dashboard/summary", res).await;
    }

    let res = http
        .post(url("/api/v1/sites"))
        .bearer_auth(&admin)
        .json(&json!({"domain": "oas.example"}))
        .send()
        .await
        .expect("sites");
    let site: Value = res.json().await.expect("site");
    let id = site["id"].as_str().expect("id").to_owned();
    let res = http
        .get(url("/api/v1/sites"))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("sites");
    conforms(&doc, "GET", "/api/v1/sites", res).await;
    let res = http
        .get(url(&format!("/api/v1/sites/{id}")))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("site");
    conforms(&doc, "GET", "/api/v1/sites/{id}", res).await;
    let res = http
        .get(url("/api/v1/sites/s_missing"))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("site");
    conforms(&doc, "GET", "/api/v1/sites/{id}", res).await;
    let beacon = json!({"site": id, "url": "https://evil.example/"});
    let res = http
        .post(url("/api/v1/track"))
        .header("origin", "https://evil.example")
        .header("content-type", "text/plain")
        .body(beacon.to_string())
        .send()
        .await
        .expect("track");
    conforms(&doc, "POST", "/api/v1/track", res).await;
    let res = http
        .delete(url(&format!("/api/v1/sites/{id}")))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("site");
    conforms(&doc, "DELETE", "/api/v1/sites/{id}", res).await;

    let res = http
        .post(url("/api/v1/api-keys"))
        .bearer_auth(&admin)
        .json(&json!({"name": "oas"}))
        .send()
        .await
        .expect("key");
    let key: Value = res.json().await.expect("key");
    let res = http
        .get(url("/api/v1/api-keys"))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("keys");
    conforms(&doc, "GET", "/api/v1/api-keys", res).await;
    let res = http
        .post(url("/api/v1/api-keys"))
        .bearer_auth(&admin)
        .json(&json!({"name": ""}))
        .send()
        .await
        .expect("key");
    conforms(&doc, "POST", "/api/v1/api-keys", res).await;
    let path = format!("/api/v1/api-keys/{}", key["id"].as_str().expect("id"));
    let res = http
        .delete(url(&path))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("revoke");
    conforms(&doc, "DELETE", "/api/v1/api-keys/{id}", res).await;
}
