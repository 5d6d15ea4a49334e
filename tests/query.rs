//! `POST /api/v1/metrics/query` through the local cloud: answers from the live minute
//! buckets, tenants isolated, roles enforced per metric, bad queries precise.

use pulse_tests::cloud;
use serde_json::{Value, json};
use std::time::Duration;

async fn query(tenant: &str, role: &str, body: &Value) -> reqwest::Response {
    let c = cloud();
    reqwest::Client::new()
        .post(format!("{}/api/v1/metrics/query", c.http))
        .bearer_auth(c.token(tenant, role))
        .json(body)
        .send()
        .await
        .expect("response")
}

async fn send(tenant: &str, events: Value) {
    let c = cloud();
    let res = reqwest::Client::new()
        .post(format!("{}/api/v1/events", c.http))
        .bearer_auth(c.token(tenant, "admin"))
        .json(&json!({ "events": events }))
        .send()
        .await
        .expect("response");
    assert_eq!(res.status(), 202);
}

fn ago(secs: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::seconds(secs))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[tokio::test]
async fn a_query_groups_and_aggregates_the_tenants_own_requests() {
    // Given API requests of tenant q-a and one of tenant q-b, a few minutes ago
    let t = ago(240);
    send(
        "q-a",
        json!([
            {"kind": "api_request", "route": "/cart", "method": "GET", "status": 200, "latency_ms": 10.0, "timestamp": t},
            {"kind": "api_request", "route": "/cart", "method": "GET", "status": 200, "latency_ms": 30.0, "timestamp": t},
            {"kind": "api_request", "route": "/pay", "method": "POST", "status": 500, "latency_ms": 900.0, "timestamp": t}
        ]),
    )
    .await;
    send(
        "q-b",
        json!([{"kind": "api_request", "route": "/cart", "method": "GET", "status": 200, "latency_ms": 5000.0, "timestamp": t}]),
    )
    .await;
    let body = json!({"metric_name": "api_request", "time_range": "1h",
        "aggregations": ["count", "avg", "max"], "group_by": ["route"],
        "filters": {"status": {"neq": "500"}, "service": {"neq": "pulse"}}});
    // When tenant q-a's admin queries the last hour (once the stream has delivered)
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let answer = loop {
        let res = query("q-a", "admin", &body).await;
        if res.status() == 200 {
            let v: Value = res.json().await.expect("json");
            // The stream may deliver the batch's records over several invocations.
            if v["data"][0]["values"]["count"] == 2.0 {
                break v;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "no answer in time");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    // Then the minute holds q-a's two /cart requests only: the 500 is filtered out and q-b's
    // 5 s request is not there
    assert_eq!(answer["resolution"], "1m");
    let points = answer["data"].as_array().expect("points");
    assert_eq!(points.len(), 1, "{answer}");
    assert_eq!(points[0]["tags"], json!({"route": "/cart"}));
    assert_eq!(points[0]["values"]["count"], 2.0);
    assert_eq!(points[0]["values"]["avg"], 20.0);
    assert_eq!(points[0]["values"]["max"], 30.0);
    // And compared with the previous hour, which had none of them
    let mut compared = body.clone();
    compared["compare_to"] = json!("previous_period");
    let res = query("q-a", "admin", &compared).await;
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.expect("json");
    assert_eq!(v["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(v["comparison"]["data"], json!([]), "{v}");
    assert_eq!(v["comparison"]["resolution"], "1m");
}

#[tokio::test]
async fn roles_are_enforced_per_metric() {
    let business = json!({"metric_name": "order", "time_range": "24h", "aggregation": "sum"});
    let system = json!({"metric_name": "api_request", "time_range": "24h"});
    assert_eq!(query("q-roles", "viewer", &business).await.status(), 403);
    assert_eq!(query("q-roles", "analyst", &system).await.status(), 403);
    // Allowed, but nothing recorded yet: 404, not someone else's data
    assert_eq!(query("q-roles", "analyst", &business).await.status(), 404);
}

#[tokio::test]
async fn bad_queries_are_precise_problems() {
    let res = query(
        "q-bad",
        "admin",
        &json!({"metric_name": "api_request", "time_range": "30d", "interval": "1m", "aggregation": "median"}),
    )
    .await;
    assert_eq!(res.status(), 400);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let problem: Value = res.json().await.expect("json");
    let pointers: Vec<&str> = problem["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["pointer"].as_str())
        .collect();
    assert!(
        pointers.contains(&"#/interval") && pointers.contains(&"#/aggregation"),
        "{problem}"
    );
    let unknown = query(
        "q-bad",
        "admin",
        &json!({"metric_name": "never.sent", "time_range": "1h"}),
    )
    .await;
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn the_history_refuses_parameters_it_does_not_take() {
    let c = cloud();
    let get = |q: &'static str| {
        reqwest::Client::new()
            .get(format!("{}/api/v1/metrics/history?{q}", c.http))
            .bearer_auth(c.token("q-hist", "admin"))
            .send()
    };
    // Given a history call with a filter it does not take (a misspelt filter must not silently
    // return unfiltered data)
    for (q, pointer) in [
        ("metric=api_request&range=1h&route=/r1", "#/route"),
        ("metric=api_request&range=1h&filters=x", "#/filters"),
    ] {
        let res = get(q).await.expect("response");
        // Then it is a 400 naming the parameter
        assert_eq!(res.status(), 400, "{q}");
        let body: Value = res.json().await.expect("json");
        assert_eq!(body["errors"][0]["pointer"], pointer, "{body}");
    }
    // And multi-byte ranges are a 400, never a 500
    for range in ["1%C3%A9", "1%E2%82%AC", "%C3%A9"] {
        let url = format!(
            "{}/api/v1/metrics/history?metric=page_view&range={range}",
            c.http
        );
        let res = reqwest::Client::new()
            .get(url)
            .bearer_auth(c.token("q-hist", "admin"))
            .send()
            .await
            .expect("response");
        assert_eq!(res.status(), 400, "{range}");
    }
    // And the parameters it does take answer with the tenant's data, once the stream has
    // delivered it (not before: an unseen metric is a 404)
    send(
        "q-hist",
        json!([{"kind": "api_request", "route": "/h", "method": "GET", "status": 200,
            "latency_ms": 7.0, "timestamp": ago(120)}]),
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        // (grouped by route: Pulse's own calls to this tenant's API are api_requests too)
        let res = get("metric=api_request&range=1h&aggregation=count&group_by=route")
            .await
            .expect("response");
        let status = res.status();
        if status == 200 {
            let v: Value = res.json().await.expect("json");
            let points = v["data"].as_array().cloned().unwrap_or_default();
            if points
                .iter()
                .any(|p| p["tags"]["route"] == "/h" && p["values"]["count"] == 1.0)
            {
                break;
            }
        } else {
            assert_eq!(status, 404, "only an unseen metric may be refused");
        }
        assert!(tokio::time::Instant::now() < deadline, "no answer in time");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn catalog(tenant: &str, role: &str, query: &str) -> reqwest::Response {
    let c = cloud();
    reqwest::Client::new()
        .get(format!("{}/api/v1/metrics/catalog{query}", c.http))
        .bearer_auth(c.token(tenant, role))
        .send()
        .await
        .expect("response")
}

#[tokio::test]
async fn the_catalog_lists_what_each_role_may_chart_with_its_tags_and_units() {
    // Given page views, API requests and an order of tenant q-cat, and a page view of q-cat2
    let t = ago(120);
    send(
        "q-cat",
        json!([
            {"kind": "page_view", "path": "/", "visitor": "v1", "timestamp": t},
            {"kind": "page_view", "path": "/pricing", "visitor": "v2", "timestamp": t},
            {"kind": "api_request", "route": "/cart", "method": "GET", "status": 200, "latency_ms": 12.0, "timestamp": t},
            {"kind": "order", "order_id": "o-1", "revenue": 20.0, "currency": "EUR", "timestamp": t}
        ]),
    )
    .await;
    send(
        "q-cat2",
        json!([{"kind": "page_view", "path": "/other", "visitor": "x"}]),
    )
    .await;
    // When the admin asks for the catalog (once the stream has counted the events)
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let admin = loop {
        let res = catalog("q-cat", "admin", "").await;
        assert_eq!(res.status(), 200);
        let v: Value = res.json().await.expect("json");
        // (the stream may deliver the batch's records over several invocations)
        let counted = |name: &str, at_least: u64| {
            v["metrics"].as_array().is_some_and(|m| {
                m.iter().any(|x| {
                    x["name"] == name && x["events"].as_u64().is_some_and(|n| n >= at_least)
                })
            })
        };
        if counted("api_request", 1) && counted("order", 1) && counted("web.pages", 2) {
            break v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not listed in time: {v}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let metric = |v: &Value, name: &str| {
        v["metrics"]
            .as_array()
            .and_then(|m| m.iter().find(|x| x["name"] == name).cloned())
    };
    // Then each metric is listed with its events, unit, best aggregation and tags
    let pages = metric(&admin, "web.pages").expect("pages listed");
    assert_eq!(pages["events"], 2);
    assert_eq!(pages["unit"], Value::Null);
    assert_eq!(pages["aggregation"], "count");
    assert_eq!(pages["tags"]["path"]["values"], json!(["/", "/pricing"]));
    assert_eq!(pages["tags"]["path"]["more"], false);
    // (Pulse records its own API calls as the tenant's requests, service "pulse")
    let requests = metric(&admin, "api_request").expect("requests listed");
    assert_eq!(requests["unit"], "ms");
    assert_eq!(requests["aggregation"], "p95");
    let routes = requests["tags"]["route"]["values"].to_string();
    assert!(routes.contains("\"/cart\""), "{routes}");
    assert_eq!(metric(&admin, "order").expect("orders")["unit"], "currency");
    // And busiest first, with nothing of the other tenant
    let events: Vec<u64> = admin["metrics"]
        .as_array()
        .expect("metrics")
        .iter()
        .filter_map(|m| m["events"].as_u64())
        .collect();
    assert!(events.windows(2).all(|w| w[0] >= w[1]), "{events:?}");
    assert!(!admin.to_string().contains("/other"));
    // And a viewer sees neither the business nor the system metrics
    let viewer: Value = catalog("q-cat", "viewer", "")
        .await
        .json()
        .await
        .expect("json");
    assert!(metric(&viewer, "page_view").is_some());
    assert!(metric(&viewer, "api_request").is_none() && metric(&viewer, "order").is_none());
    // And a parameter it does not take is a 400 naming it; no role is a 403
    let res = catalog("q-cat", "admin", "?metric=x").await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["errors"][0]["pointer"], "#/metric");
    assert_eq!(catalog("q-cat", "nobody", "").await.status(), 403);
}

async fn goals_call(
    tenant: &str,
    role: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let c = cloud();
    let mut req = reqwest::Client::new()
        .request(method, format!("{}{path}", c.http))
        .bearer_auth(c.token(tenant, role));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.expect("response");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn an_admin_sets_goals_and_web_analytics_reports_each_goals_conversions() {
    let put = reqwest::Method::PUT;
    let goals = json!({"goals": [{"name": "Saw pricing", "path": "/pricing"}, {"name": "Signed up", "event": "signup"}, {"name": "Read docs", "path": "/docs/*"}]});
    // Given an analyst and a bad list, goals are refused with why
    let (status, _) = goals_call(
        "g-a",
        "analyst",
        put.clone(),
        "/api/v1/web/goals",
        Some(goals.clone()),
    )
    .await;
    assert_eq!(status, 403);
    let (status, body) = goals_call(
        "g-a",
        "admin",
        put.clone(),
        "/api/v1/web/goals",
        Some(json!({"goals": [{"name": "x", "path": "pricing"}]})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["errors"][0]["pointer"], "#/goals/0/path");
    // When an admin sets three goals, and four visitors come: all see /, two /pricing, one
    // /docs/setup, and one signs up
    let (status, body) = goals_call(
        "g-a",
        "admin",
        put,
        "/api/v1/web/goals",
        Some(goals.clone()),
    )
    .await;
    assert_eq!((status, &body), (200, &goals));
    let t = ago(120);
    let view = |v: &str, path: &str| json!({"kind": "page_view", "visitor": v, "path": path, "timestamp": t});
    send(
        "g-a",
        json!([view("v1", "/"), view("v2", "/"), view("v3", "/"), view("v4", "/"), view("v1", "/pricing"), view("v2", "/pricing"),
               view("v3", "/docs/setup"), {"kind": "event", "name": "signup", "visitor": "v1", "timestamp": t}]),
    )
    .await;
    // Then the goals view says each goal's visitors and conversion rate, once their minute is
    // sealed (a page goal counts from the breakdowns, like the top panels beside it)
    let mut answer = Value::Null;
    for _ in 0..75 {
        let _ = cloud().fire("RollupJobFunction", "EveryMinute").await;
        let (status, body) = goals_call(
            "g-a",
            "viewer",
            reqwest::Method::GET,
            "/api/v1/web/goals?range=1h",
            None,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        answer = body;
        if answer["visitors"] == 4 && answer["goals"][2]["visitors"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let rows: Vec<(String, u64, f64)> = answer["goals"]
        .as_array()
        .expect("goals")
        .iter()
        .map(|g| {
            (
                g["name"].as_str().unwrap_or_default().to_owned(),
                g["visitors"].as_u64().unwrap_or(0),
                g["conversion_rate"].as_f64().unwrap_or(-1.0),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("Saw pricing".to_owned(), 2, 0.5),
            ("Signed up".to_owned(), 1, 0.25),
            ("Read docs".to_owned(), 1, 0.25)
        ],
        "{answer}"
    );
    // And a filter is refused by name rather than ignored
    let (status, body) = goals_call(
        "g-a",
        "viewer",
        reqwest::Method::GET,
        "/api/v1/web/goals?range=1h&source=Google",
        None,
    )
    .await;
    assert_eq!(status, 400, "{body}");
}
