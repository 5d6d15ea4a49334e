//! Invariants every number of the dashboard keeps, checked through the API over traffic the
//! demo generator makes (a random draw each run, its seed printed): a card equals the sum of
//! the chart it summarises, totals never go down on a quiet system, funnel steps never grow,
//! every rate is within [0, 1], and current visitors never exceed today's. A failure names its
//! seed.

use pulse_tests::cloud;
use serde_json::Value;
use std::time::Duration;

async fn get(tenant: &str, path: &str) -> Value {
    let c = cloud();
    let res = reqwest::Client::new()
        .get(format!("{}{path}", c.http))
        .bearer_auth(c.token(tenant, "admin"))
        .send()
        .await
        .expect("response");
    assert_eq!(res.status(), 200, "{path}");
    res.json().await.expect("json")
}

async fn post(tenant: &str, events: &[Value]) {
    let c = cloud();
    let res = reqwest::Client::new()
        .post(format!("{}/api/v1/events", c.http))
        .bearer_auth(c.token(tenant, "admin"))
        .json(&serde_json::json!({ "events": events }))
        .send()
        .await
        .expect("events");
    assert_eq!(
        res.status(),
        202,
        "{}",
        res.text().await.unwrap_or_default()
    );
}

fn rate_ok(v: &Value) -> bool {
    v.is_null() || v.as_f64().is_some_and(|r| (0.0..=1.0).contains(&r))
}

/// Every `"…rate"` or `"conversion…"` number in `v`, with where it is.
fn rates<'a>(v: &'a Value, at: String, out: &mut Vec<(String, &'a Value)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let here = format!("{at}/{k}");
                if (k.ends_with("rate") || k.starts_with("conversion")) && !x.is_object() {
                    out.push((here.clone(), x));
                }
                if k.ends_with("rate") && x.is_object() {
                    for f in ["value", "previous", "previous_period", "previous_year"] {
                        if let Some(y) = x.get(f) {
                            out.push((format!("{here}/{f}"), y));
                        }
                    }
                }
                rates(x, here, out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                rates(x, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

fn card<'a>(cards: &'a Value, id: &str) -> &'a Value {
    cards["cards"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["id"] == id))
        .unwrap_or_else(|| panic!("no card {id}: {cards}"))
}

#[tokio::test]
async fn the_numbers_of_generated_traffic_agree_with_each_other() {
    // Given a minute of demo traffic for a fresh tenant (a random draw)
    let seed = fastrand::u64(..);
    let mut rng = fastrand::Rng::with_seed(seed);
    let tenant = "inv-a";
    let now = chrono::Utc::now();
    let events = pulse_local::demo::events(&mut rng, 300, now);
    let views = events.iter().filter(|e| e["kind"] == "page_view").count() as f64;
    for chunk in events.chunks(100) {
        post(tenant, chunk).await;
    }
    // When every page view is counted
    let mut cards = Value::Null;
    for _ in 0..300 {
        cards = get(tenant, "/api/v1/metrics").await;
        if card(&cards, "page_views_today")["value"].as_f64() == Some(views) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        card(&cards, "page_views_today")["value"].as_f64(),
        Some(views),
        "seed {seed}"
    );
    // Then a card is the sum of its sparkline, and current visitors are no more than today's
    let c = card(&cards, "page_views_today");
    let sum: f64 = c["sparkline"]
        .as_array()
        .expect("sparkline")
        .iter()
        .filter_map(Value::as_f64)
        .sum();
    assert_eq!(c["value"].as_f64(), Some(sum), "seed {seed}: {c}");
    let current = card(&cards, "current_visitors")["value"]
        .as_f64()
        .expect("current");
    let today = card(&cards, "unique_visitors_today")["value"]
        .as_f64()
        .expect("today");
    assert!(
        current <= today,
        "seed {seed}: current {current} > today {today}"
    );
    // And the web overview's pageviews are the sum of its chart
    let web = get(tenant, "/api/v1/web/overview?range=24h").await;
    let charted: f64 = web["timeseries"]
        .as_array()
        .expect("timeseries")
        .iter()
        .filter_map(|p| p["pageviews"].as_f64())
        .sum();
    assert_eq!(
        web["metrics"]["pageviews"]["value"].as_f64(),
        Some(charted),
        "seed {seed}"
    );
    assert_eq!(charted, views, "seed {seed}");
    // And every rate of every view is within [0, 1], and funnel steps never grow
    let mut found = Vec::new();
    let mut answers = Vec::new();
    for path in [
        "/api/v1/web/overview?range=24h",
        "/api/v1/web/sources?range=24h",
        "/api/v1/business/overview?range=24h",
        "/api/v1/business/products?range=24h",
        "/api/v1/business/collections?range=24h",
        "/api/v1/business/funnel?range=24h",
        "/api/v1/health/overview?range=24h",
        "/api/v1/ml/overview?range=24h",
        "/api/v1/metrics",
    ] {
        answers.push((path, get(tenant, path).await));
    }
    for (path, answer) in &answers {
        rates(answer, (*path).to_owned(), &mut found);
        if let Some(steps) = answer["steps"].as_array() {
            let visitors: Vec<u64> = steps
                .iter()
                .filter_map(|s| s["visitors"].as_u64())
                .collect();
            assert!(
                visitors.windows(2).all(|w| w[1] <= w[0]),
                "seed {seed}: {path} {visitors:?}"
            );
        }
    }
    assert!(found.len() >= 10, "{found:?}");
    for (at, v) in &found {
        assert!(rate_ok(v), "seed {seed}: {at} = {v}");
    }
    // And on a quiet system totals never go down
    let before = card(&cards, "page_views_today")["value"].as_f64();
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let again = get(tenant, "/api/v1/metrics").await;
        assert!(
            card(&again, "page_views_today")["value"].as_f64() >= before,
            "seed {seed}"
        );
    }
}

#[tokio::test]
async fn visits_agree_with_pageviews_once_their_minutes_are_sealed() {
    // Given a burst of demo traffic two and a half minutes ago for a fresh tenant (a random draw)
    let seed = fastrand::u64(..);
    let mut rng = fastrand::Rng::with_seed(seed);
    let tenant = "inv-visits";
    let at = chrono::Utc::now() - chrono::Duration::seconds(150);
    let mut events = pulse_local::demo::events(&mut rng, 200, at);
    let stamp = at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    for e in &mut events {
        e["timestamp"] = Value::String(stamp.clone());
    }
    let views = events.iter().filter(|e| e["kind"] == "page_view").count() as f64;
    post(tenant, &events).await;
    let c = cloud();
    // When the rollup job has sealed their minute
    let mut web = Value::Null;
    for _ in 0..60 {
        let _ = c.fire("RollupJobFunction", "EveryMinute").await;
        web = get(tenant, "/api/v1/web/overview?range=24h").await;
        if web["metrics"]["pageviews"]["value"].as_f64() == Some(views)
            && web["metrics"]["visits"]["value"].as_f64() > Some(0.0)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Then every page view is in a visit: visits × views per visit = pageviews, there are no
    // more visitors than visits (visitors is a HyperLogLog estimate: within its 2 %), and the
    // sources' visits add up to the visits
    let m = &web["metrics"];
    let visits = m["visits"]["value"].as_f64().expect("visits");
    let per_visit = m["views_per_visit"]["value"]
        .as_f64()
        .expect("views per visit");
    assert!(
        (visits * per_visit - views).abs() < 1e-6,
        "seed {seed}: {visits} × {per_visit} ≠ {views}"
    );
    let visitors = m["visitors"]["value"].as_f64().expect("visitors");
    assert!(visitors <= visits * 1.02 + 1.0, "seed {seed}: {m}");
    assert!(rate_ok(&m["bounce_rate"]["value"]), "seed {seed}: {m}");
    let sources = get(tenant, "/api/v1/web/sources?range=24h").await;
    let by_source: f64 = sources["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|r| r["visits"].as_f64())
        .sum();
    assert_eq!(by_source, visits, "seed {seed}: {sources}");
}
