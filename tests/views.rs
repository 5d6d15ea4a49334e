//! The read views through the local cloud, on a small fixed event set whose every figure is
//! computed by hand: events posted to the ingest API, sealed, sessionized and rolled up by the
//! rollup job, then read from the web, business, health and ML views, the dashboard summary
//! and the key cards. Roles see only their views; tenants only their own data.

use pulse_local::LocalCloud;
use pulse_tests::start;
use serde_json::{Value, json};
use std::time::Duration;

/// Two days ago, 00:00 UTC.
fn day() -> i64 {
    (chrono::Utc::now().timestamp() / 86_400 - 2) * 86_400
}

fn at(secs: i64) -> String {
    chrono::DateTime::from_timestamp(day() + secs, 0)
        .expect("time")
        .to_rfc3339()
}

const H10: i64 = 10 * 3_600;
const MIN: i64 = 60;

async fn post(cloud: &LocalCloud, tenant: &str, events: Value) {
    let res = reqwest::Client::new()
        .post(format!("{}/api/v1/events", cloud.http_url()))
        .bearer_auth(cloud.token(tenant, "admin").expect("token"))
        .json(&json!({ "events": events }))
        .send()
        .await
        .expect("response");
    assert_eq!(
        res.status(),
        202,
        "{}",
        res.text().await.unwrap_or_default()
    );
}

async fn get(cloud: &LocalCloud, tenant: &str, role: &str, path: &str) -> (u16, Value) {
    let res = reqwest::Client::new()
        .get(format!("{}{path}", cloud.http_url()))
        .bearer_auth(cloud.token(tenant, role).expect("token"))
        .send()
        .await
        .expect("response");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

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

fn view(id: &str, visitor: &str, secs: i64, path: &str, source: &str, device: &str) -> Value {
    json!({"kind": "page_view", "id": id, "visitor": visitor, "timestamp": at(secs), "path": path,
        "tags": {"source": source, "device": device, "country": "DE"}})
}

/// Visitor A: a 25-minute visit from Google in three views. B: one view (a bounce). C: a visit
/// from Twitter at 10:50 going on to 11:05. A and C shop; the API serves four requests; three
/// ML jobs run.
fn fixture() -> Value {
    let shop = |kind: &str, id: &str, visitor: &str, secs: i64, extra: Value| {
        let mut e = json!({"kind": kind, "id": id, "visitor": visitor, "timestamp": at(secs)});
        e.as_object_mut()
            .expect("object")
            .extend(extra.as_object().expect("object").clone());
        e
    };
    json!([
        view("a1", "A", H10, "/", "Google", "desktop"),
        view("a2", "A", H10 + 10 * MIN, "/pricing", "Direct", "desktop"),
        view("a3", "A", H10 + 25 * MIN, "/signup", "Direct", "desktop"),
        view("b1", "B", H10 + 5 * MIN, "/", "Direct", "mobile"),
        view("c1", "C", H10 + 50 * MIN, "/blog", "Twitter", "mobile"),
        view("c2", "C", H10 + 65 * MIN, "/blog/post", "Direct", "mobile"),
        shop("product_view", "p1", "A", H10 + 11 * MIN, json!({"product": "shoe", "collection": "summer", "price": 30.0})),
        shop("product_view", "p2", "A", H10 + 12 * MIN, json!({"product": "shoe", "collection": "summer", "price": 30.0})),
        shop("product_view", "p3", "C", H10 + 51 * MIN, json!({"product": "shoe", "collection": "summer", "price": 30.0})),
        shop("product_view", "p4", "C", H10 + 52 * MIN, json!({"product": "hat", "collection": "winter", "price": 35.0})),
        shop("add_to_cart", "k1", "A", H10 + 13 * MIN, json!({"product": "shoe", "collection": "summer", "quantity": 1, "price": 30.0})),
        shop("add_to_cart", "k2", "C", H10 + 53 * MIN, json!({"product": "hat", "collection": "winter", "quantity": 2, "price": 35.0})),
        shop("checkout", "x1", "A", H10 + 14 * MIN, json!({"cart_value": 30.0})),
        shop("checkout", "x2", "C", H10 + 54 * MIN, json!({"cart_value": 70.0})),
        shop("order", "o1", "A", H10 + 15 * MIN, json!({"order_id": "1", "revenue": 30.0, "currency": "EUR",
            "items": [{"product": "shoe", "collection": "summer", "quantity": 1, "price": 30.0}]})),
        shop("order", "o2", "C", H10 + 55 * MIN, json!({"order_id": "2", "revenue": 70.0, "currency": "EUR",
            "items": [{"product": "hat", "collection": "winter", "quantity": 2, "price": 35.0}]})),
        {"kind": "api_request", "id": "r1", "timestamp": at(H10), "route": "/cart", "method": "GET", "status": 200, "latency_ms": 10.0},
        {"kind": "api_request", "id": "r2", "timestamp": at(H10 + 1), "route": "/cart", "method": "GET", "status": 200, "latency_ms": 20.0},
        {"kind": "api_request", "id": "r3", "timestamp": at(H10 + 2), "route": "/cart", "method": "GET", "status": 200, "latency_ms": 30.0},
        {"kind": "api_request", "id": "r4", "timestamp": at(H10 + 3), "route": "/pay", "method": "POST", "status": 503, "latency_ms": 900.0},
        {"kind": "error", "id": "e1", "timestamp": at(H10 + 3), "message": "payment provider down"},
        {"kind": "ml_job", "id": "m1", "timestamp": at(H10), "pipeline": "forecast", "provider": "openai", "status": "success", "duration_ms": 1000.0, "cost": 0.5},
        {"kind": "ml_job", "id": "m2", "timestamp": at(H10), "pipeline": "forecast", "provider": "openai", "status": "failed", "duration_ms": 3000.0, "cost": 0.25},
        {"kind": "ml_job", "id": "m3", "timestamp": at(H10), "pipeline": "forecast", "provider": "bedrock", "status": "success", "duration_ms": 2000.0, "cost": 0.25}
    ])
}

fn row<'a>(v: &'a Value, key: &str, value: &str) -> &'a Value {
    v["rows"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r[key] == value))
        .unwrap_or_else(|| panic!("no row {key}={value} in {v}"))
}

fn close(a: &Value, b: f64) -> bool {
    a.as_f64().is_some_and(|a| (a - b).abs() < 1e-9)
}

#[tokio::test]
async fn views_show_the_hand_computed_figures_to_the_roles_that_may_see_them() {
    let cloud = start().await;
    // Given the fixed events of tenant views-a two days ago, and one page view of views-b
    post(&cloud, "views-a", fixture()).await;
    post(
        &cloud,
        "views-b",
        json!([view("z1", "Z", H10, "/", "Google", "desktop")]),
    )
    .await;
    // When the stream has delivered them and the rollup job has run
    let range = format!(
        "start={}&end={}",
        at(0).replace('+', "%2B"),
        at(86_400).replace('+', "%2B")
    );
    let overview = format!("/api/v1/web/overview?{range}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let web = loop {
        run_job(&cloud).await;
        let (status, v) = get(&cloud, "views-a", "viewer", &overview).await;
        assert_eq!(status, 200, "{v}");
        if close(&v["metrics"]["visits"]["value"], 3.0)
            && close(&v["metrics"]["pageviews"]["value"], 6.0)
        {
            break v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never rolled up: {v}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // Then the overview counts 3 visitors, 3 visits, 6 views, one bounce in three visits and
    // (1,500 s + 900 s) / 3 visits of duration
    let m = &web["metrics"];
    assert!(close(&m["visitors"]["value"], 3.0), "{web}");
    assert!(close(&m["views_per_visit"]["value"], 2.0), "{web}");
    assert!(close(&m["bounce_rate"]["value"], 1.0 / 3.0), "{web}");
    assert!(close(&m["visit_duration"]["value"], 800.0), "{web}");
    assert_eq!(web["range"]["interval"], "1h");
    let hours: Vec<&Value> = web["timeseries"]
        .as_array()
        .expect("timeseries")
        .iter()
        .filter(|p| p["pageviews"].as_u64() > Some(0))
        .collect();
    assert_eq!(hours.len(), 2, "views at 10:00 and 11:00: {web}");
    assert_eq!(
        (hours[0]["pageviews"].as_u64(), hours[0]["visits"].as_u64()),
        (Some(5), Some(3))
    );

    // And sources count visits by their entry: A's later Direct views stay Google's
    let (_, sources) = get(
        &cloud,
        "views-a",
        "viewer",
        &format!("/api/v1/web/sources?{range}"),
    )
    .await;
    let google = row(&sources, "source", "Google");
    assert!(
        close(&google["visits"], 1.0) && close(&google["visit_duration"], 1500.0),
        "{sources}"
    );
    assert!(
        close(&row(&sources, "source", "Direct")["bounce_rate"], 1.0),
        "{sources}"
    );
    assert!(
        close(&row(&sources, "source", "Twitter")["visit_duration"], 900.0),
        "{sources}"
    );
    let (_, devices) = get(
        &cloud,
        "views-a",
        "viewer",
        &format!("/api/v1/web/devices?{range}"),
    )
    .await;
    assert!(
        close(&row(&devices, "device", "mobile")["visits"], 2.0),
        "{devices}"
    );
    // And a filter narrows the overview to mobile visits
    let (_, mobile) = get(
        &cloud,
        "views-a",
        "viewer",
        &format!("/api/v1/web/overview?{range}&device=mobile"),
    )
    .await;
    assert!(
        close(&mobile["metrics"]["visits"]["value"], 2.0),
        "{mobile}"
    );
    assert!(
        close(&mobile["metrics"]["pageviews"]["value"], 3.0),
        "{mobile}"
    );
    // And the overview brings its top panels: the sources and devices views' rows, and under
    // a device filter no pages panel (pages cannot be split by device)
    assert_eq!(web["top"]["sources"], sources["rows"], "{web}");
    assert_eq!(web["top"]["devices"], devices["rows"], "{web}");
    let panels: Vec<&String> = mobile["top"].as_object().expect("top").keys().collect();
    assert_eq!(panels, ["countries", "devices", "sources"], "{mobile}");
    // And pages count views and visitors per path
    let (_, pages) = get(
        &cloud,
        "views-a",
        "viewer",
        &format!("/api/v1/web/pages?{range}"),
    )
    .await;
    let home = row(&pages, "path", "/");
    assert!(
        close(&home["pageviews"], 2.0) && close(&home["visitors"], 2.0),
        "{pages}"
    );
    assert_eq!(pages["total_rows"], 5);

    // And the funnel / → /pricing → /signup: A and B enter, only A goes on, and within 20
    // minutes A's sign-up (25 minutes in) no longer counts
    for (window, expected) in [("1h", vec![2, 1, 1]), ("20m", vec![2, 1, 0])] {
        let res = reqwest::Client::new()
            .post(format!("{}/api/v1/funnels/query", cloud.http_url()))
            .bearer_auth(cloud.token("views-a", "viewer").expect("token"))
            .json(
                &json!({"steps": [{"path": "/"}, {"path": "/pricing"}, {"path": "/signup"}],
                "window": window, "time_range": {"start": at(0), "end": at(86_400)}}),
            )
            .send()
            .await
            .expect("funnel");
        assert_eq!(res.status(), 200);
        let funnel: Value = res.json().await.expect("json");
        let reached: Vec<u64> = funnel["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .filter_map(|s| s["visitors"].as_u64())
            .collect();
        assert_eq!(reached, expected, "{window}: {funnel}");
    }

    // And business: 100 EUR in two orders from three visits; per product views, carts, sales
    let (status, biz) = get(
        &cloud,
        "views-a",
        "analyst",
        &format!("/api/v1/business/overview?{range}"),
    )
    .await;
    assert_eq!(status, 200, "{biz}");
    let b = &biz["metrics"];
    assert!(close(&b["revenue"]["value"], 100.0), "{biz}");
    assert!(close(&b["orders"]["value"], 2.0), "{biz}");
    assert!(close(&b["average_order_value"]["value"], 50.0), "{biz}");
    assert!(close(&b["conversion_rate"]["value"], 2.0 / 3.0), "{biz}");
    assert!(close(&b["product_views"]["value"], 4.0), "{biz}");
    assert!(close(&b["revenue"]["previous_year"], 0.0), "{biz}");
    let (_, products) = get(
        &cloud,
        "views-a",
        "analyst",
        &format!("/api/v1/business/products?{range}"),
    )
    .await;
    let shoe = row(&products, "product", "shoe");
    assert!(
        close(&shoe["views"], 3.0) && close(&shoe["purchases"], 1.0),
        "{products}"
    );
    assert!(
        close(&shoe["revenue"], 30.0) && close(&shoe["conversion_rate"], 0.5),
        "{products}"
    );
    // (the hat: one viewer, who bought two; a share of viewers, never 200 %)
    assert!(
        close(&row(&products, "product", "hat")["conversion_rate"], 1.0),
        "{products}"
    );
    assert!(
        close(&row(&products, "product", "hat")["revenue"], 70.0),
        "{products}"
    );
    let (_, collections) = get(
        &cloud,
        "views-a",
        "analyst",
        &format!("/api/v1/business/collections?{range}"),
    )
    .await;
    assert!(
        close(
            &row(&collections, "collection", "winter")["add_to_carts"],
            1.0
        ),
        "{collections}"
    );
    let (_, funnel) = get(
        &cloud,
        "views-a",
        "analyst",
        &format!("/api/v1/business/funnel?{range}"),
    )
    .await;
    // (A and C each view, cart, check out and order in that order)
    let steps = funnel["steps"].as_array().expect("steps");
    let visitors: Vec<u64> = steps
        .iter()
        .filter_map(|s| s["visitors"].as_u64())
        .collect();
    assert_eq!(visitors, vec![2, 2, 2, 2], "{funnel}");
    assert!(close(&funnel["conversion_rate"], 1.0), "{funnel}");

    // And health: four requests, one failed; the error event counted. The four share a
    // minute that the stream may deliver in two batches, sealed and rolled again after the
    // second: wait for the rollup job to have caught up with it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let health = loop {
        let (status, health) = get(
            &cloud,
            "views-a",
            "admin",
            &format!("/api/v1/health/overview?{range}"),
        )
        .await;
        assert_eq!(status, 200, "{health}");
        if close(&health["metrics"]["requests"]["value"], 4.0) {
            break health;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never rolled up: {health}"
        );
        run_job(&cloud).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(
        close(&health["metrics"]["requests"]["value"], 4.0),
        "{health}"
    );
    assert!(
        close(&health["metrics"]["error_rate"]["value"], 0.25),
        "{health}"
    );
    assert!(
        close(&health["metrics"]["errors"]["value"], 1.0),
        "{health}"
    );
    let (_, api) = get(
        &cloud,
        "views-a",
        "admin",
        &format!("/api/v1/health/api?{range}"),
    )
    .await;
    assert!(
        close(&row(&api, "route", "/pay")["error_rate"], 1.0),
        "{api}"
    );
    assert!(
        close(&row(&api, "route", "/cart")["requests"], 3.0),
        "{api}"
    );

    // And ML: three jobs, two succeeded, 1.00 spent; per provider
    let (_, ml) = get(
        &cloud,
        "views-a",
        "admin",
        &format!("/api/v1/ml/overview?{range}"),
    )
    .await;
    assert!(close(&ml["metrics"]["jobs"]["value"], 3.0), "{ml}");
    assert!(
        close(&ml["metrics"]["success_rate"]["value"], 2.0 / 3.0),
        "{ml}"
    );
    assert!(close(&ml["metrics"]["cost"]["value"], 1.0), "{ml}");
    let (_, providers) = get(
        &cloud,
        "views-a",
        "admin",
        &format!("/api/v1/ml/providers?{range}"),
    )
    .await;
    assert!(
        close(&row(&providers, "provider", "openai")["success_rate"], 0.5),
        "{providers}"
    );

    // And the 7-day summary shows each role its sections only, from the same figures
    let (status, summary) = get(
        &cloud,
        "views-a",
        "admin",
        "/api/v1/dashboard/summary?range=7d",
    )
    .await;
    assert_eq!(status, 200, "{summary}");
    let s = &summary["sections"];
    assert!(close(&s["web"]["visits"]["value"], 3.0), "{summary}");
    assert!(
        close(&s["business"]["revenue"]["value"], 100.0),
        "{summary}"
    );
    // (Pulse records this test's own API calls as api_request events: count what is fixed)
    assert!(close(&s["health"]["errors"]["value"], 1.0), "{summary}");
    assert!(
        s["health"]["requests"]["value"].as_f64() >= Some(4.0),
        "{summary}"
    );
    assert!(close(&s["ml"]["cost"]["value"], 1.0), "{summary}");
    let (_, viewer) = get(
        &cloud,
        "views-a",
        "viewer",
        "/api/v1/dashboard/summary?range=7d",
    )
    .await;
    let mut sections: Vec<&String> = viewer["sections"]
        .as_object()
        .expect("sections")
        .keys()
        .collect();
    sections.sort();
    assert_eq!(sections, vec!["web"], "{viewer}");
    let (_, analyst) = get(
        &cloud,
        "views-a",
        "analyst",
        "/api/v1/dashboard/summary?range=7d&sections=web,business,health",
    )
    .await;
    let mut sections: Vec<&String> = analyst["sections"]
        .as_object()
        .expect("sections")
        .keys()
        .collect();
    sections.sort();
    assert_eq!(sections, vec!["business", "web"], "{analyst}");

    // And a viewer gets 403 from business, health and ML views; tenant B sees only its visitor
    for path in [
        "/api/v1/business/overview",
        "/api/v1/health/overview",
        "/api/v1/ml/overview",
    ] {
        let (status, problem) = get(&cloud, "views-a", "viewer", path).await;
        assert_eq!(status, 403, "{path}: {problem}");
    }
    let (_, other) = get(&cloud, "views-b", "viewer", &overview).await;
    assert!(
        close(&other["metrics"]["pageviews"]["value"], 1.0),
        "{other}"
    );
    cloud.stop().await;
}

#[tokio::test]
async fn cards_show_a_visitor_arriving_now_and_bad_view_requests_are_precise() {
    let cloud = start().await;
    // Given one visitor viewing two pages now
    let now = chrono::Utc::now().to_rfc3339();
    post(
        &cloud,
        "cards-a",
        json!([
            {"kind": "page_view", "visitor": "V", "path": "/", "timestamp": now},
            {"kind": "page_view", "visitor": "V", "path": "/about", "timestamp": now}
        ]),
    )
    .await;
    // When the cards are read (once the stream has delivered)
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let cards = loop {
        let (status, v) = get(&cloud, "cards-a", "viewer", "/api/v1/metrics").await;
        assert_eq!(status, 200, "{v}");
        let card = |id: &str| {
            v["cards"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["id"] == id))
                .cloned()
                .unwrap_or(Value::Null)
        };
        // The two views may be aggregated by two concurrent batches (they sit in different
        // partitions): wait for both.
        if close(&card("current_visitors")["value"], 1.0)
            && close(&card("page_views_today")["value"], 2.0)
        {
            break v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no visitor in time: {v}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    // Then a viewer sees the visitor-facing cards, with today's two views, but not API errors
    let ids: Vec<&str> = cards["cards"]
        .as_array()
        .expect("cards")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(
        ids,
        vec![
            "current_visitors",
            "page_views_today",
            "unique_visitors_today",
            "bounce_rate",
            "avg_session_duration"
        ]
    );
    let views = &cards["cards"][1];
    assert!(close(&views["value"], 2.0), "{cards}");
    assert_eq!(
        cards["cards"][0]["sparkline"].as_array().map(Vec::len),
        Some(30)
    );
    // And an admin's choice of cards is what the tenant sees by default
    let res = reqwest::Client::new()
        .put(format!("{}/api/v1/metrics/cards", cloud.http_url()))
        .bearer_auth(cloud.token("cards-a", "admin").expect("token"))
        .json(&json!({"cards": ["page_views_today", "current_visitors", "api_error_rate"]}))
        .send()
        .await
        .expect("cards");
    assert_eq!(res.status(), 200);
    let (_, chosen) = get(&cloud, "cards-a", "viewer", "/api/v1/metrics").await;
    let ids: Vec<&str> = chosen["cards"]
        .as_array()
        .expect("cards")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(
        ids,
        vec!["page_views_today", "current_visitors"],
        "a viewer sees no API card"
    );
    // And the realtime view shows the visitor and the two pages
    let (_, live) = get(&cloud, "cards-a", "viewer", "/api/v1/web/realtime").await;
    assert!(close(&live["visitors_now"], 1.0), "{live}");
    assert_eq!(live["pages"].as_array().map(Vec::len), Some(2), "{live}");
    // And bad requests are precise problems
    for (path, status, pointer) in [
        ("/api/v1/web/nope", 404, None),
        ("/api/v1/web/overview?range=1y", 400, Some("#/time_range")),
        ("/api/v1/web/pages?colour=red", 400, Some("#/colour")),
        (
            "/api/v1/web/pages?source=Google",
            400,
            Some("#/filters/source"),
        ),
        ("/api/v1/metrics?cards=nope", 400, Some("#/cards")),
        (
            "/api/v1/dashboard/summary?sections=nope",
            400,
            Some("#/sections"),
        ),
        ("/api/v1/dashboard/summary?range=2d", 400, Some("#/range")),
    ] {
        let (got, problem) = get(&cloud, "cards-a", "admin", path).await;
        assert_eq!(got, status, "{path}: {problem}");
        if let Some(p) = pointer {
            assert_eq!(problem["errors"][0]["pointer"], p, "{path}: {problem}");
        }
    }
    cloud.stop().await;
}

#[tokio::test]
async fn the_current_hours_visits_count_as_soon_as_their_minute_is_sealed() {
    let cloud = start().await;
    // Given page views of the open hour, two and a half minutes ago: visitor A twice, B once
    let now = chrono::Utc::now().timestamp();
    let ago = |secs: i64| {
        chrono::DateTime::from_timestamp(now - secs, 0)
            .expect("time")
            .to_rfc3339()
    };
    post(
        &cloud,
        "open-hour",
        json!([
            {"kind": "page_view", "id": "o1", "visitor": "A", "path": "/", "timestamp": ago(160), "tags": {"source": "Google"}},
            {"kind": "page_view", "id": "o2", "visitor": "A", "path": "/pricing", "timestamp": ago(150)},
            {"kind": "page_view", "id": "o3", "visitor": "B", "path": "/", "timestamp": ago(155)}
        ]),
    )
    .await;
    // When the rollup job has sealed their minutes (long before the hour is 30 minutes past)
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let web = loop {
        run_job(&cloud).await;
        let (status, v) = get(
            &cloud,
            "open-hour",
            "viewer",
            "/api/v1/web/overview?range=24h",
        )
        .await;
        assert_eq!(status, 200, "{v}");
        if close(&v["metrics"]["visits"]["value"], 2.0) {
            break v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "visits never counted: {v}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // Then the overview has two visits, one a bounce so far, 10 s of A's visit, and no note
    // that visits lag
    let m = &web["metrics"];
    assert!(close(&m["pageviews"]["value"], 3.0), "{web}");
    assert!(close(&m["bounce_rate"]["value"], 0.5), "{web}");
    assert!(close(&m["visit_duration"]["value"], 5.0), "{web}");
    let through =
        chrono::DateTime::parse_from_rfc3339(web["sessions_through"].as_str().expect("through"))
            .expect("time")
            .timestamp();
    assert!(now - through <= 150, "{web}");
    // And the sources view counts A's visit as Google's
    let (_, sources) = get(
        &cloud,
        "open-hour",
        "viewer",
        "/api/v1/web/sources?range=24h",
    )
    .await;
    assert!(
        close(&row(&sources, "source", "Google")["visits"], 1.0),
        "{sources}"
    );
}
