//! Predictions and anomalies through the local cloud: a history imported as CSV is in the
//! rollups when the import answers, `GET /api/v1/predictions/{metric}` forecasts from it and
//! `GET /api/v1/anomalies` finds what is unusual in it; a retrain requested through the API
//! runs in the retrain job and its fits are what predictions serve.

use pulse_tests::cloud;
use serde_json::Value;

/// Imports `days` days of API requests ending yesterday, with a weekly pattern (5 to 11 a day).
async fn import_history(tenant: &str, days: i64) {
    import_routes(tenant, days, &[("/cart", weekly)]).await;
}

/// 5 to 11 requests a day by weekday, for the day starting at `start`.
fn weekly(start: i64) -> i64 {
    5 + (start / 86_400) % 7
}

/// A route and its requests a day, by the day's start (epoch s).
type Route<'a> = (&'a str, fn(i64) -> i64);

/// Imports `days` days of API requests ending yesterday: each route's requests a day, a minute
/// apart from 01:00.
async fn import_routes(tenant: &str, days: i64, routes: &[Route<'_>]) {
    let today = chrono::Utc::now().timestamp().div_euclid(86_400) * 86_400;
    let mut csv = String::from("kind,route,method,status,latency_ms,timestamp\n");
    for d in 1..=days {
        let start = today - d * 86_400;
        for (route, per_day) in routes {
            for i in 0..per_day(start) {
                let at = chrono::DateTime::from_timestamp(start + 3_600 + i * 60, 0).expect("time");
                csv.push_str(&format!(
                    "api_request,{route},GET,200,{},{}\n",
                    10 + i,
                    at.to_rfc3339()
                ));
            }
        }
    }
    import_csv(tenant, csv).await;
}

/// Imports `csv` for `tenant` as an admin; the import must be accepted.
async fn import_csv(tenant: &str, csv: String) {
    let res = reqwest::Client::new()
        .post(format!("{}/api/v1/imports", cloud().http))
        .bearer_auth(cloud().token(tenant, "admin"))
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .expect("import");
    assert_eq!(
        res.status(),
        202,
        "{}",
        res.text().await.unwrap_or_default()
    );
}

async fn predict(tenant: &str, path: &str, role: &str) -> (u16, Value) {
    call("GET", tenant, path, role).await
}

async fn call(method: &str, tenant: &str, path: &str, role: &str) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let res = reqwest::Client::new()
        .request(method, format!("{}{path}", cloud().http))
        .bearer_auth(cloud().token(tenant, role))
        .send()
        .await
        .expect("predictions");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or_default())
}

#[tokio::test]
async fn an_imported_history_is_forecast_a_week_ahead_with_its_accuracy() {
    // Given ten weeks of a metric's history, imported
    import_history("insights-a", 70).await;
    // When an admin asks for its forecast
    let (status, body) = predict(
        "insights-a",
        "/api/v1/predictions/api_request?days=7",
        "admin",
    )
    .await;
    // Then it has seven days from today, each inside its intervals, near the weekly pattern
    assert_eq!(status, 200, "{body}");
    let points = body["points"].as_array().expect("points");
    assert_eq!(points.len(), 7);
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    assert_eq!(points[0]["date"], today.as_str());
    for p in points {
        let f = p["forecast"].as_f64().expect("forecast");
        assert!((4.0..=13.0).contains(&f), "{p}");
        assert!(
            p["lo95"].as_f64() <= Some(f) && Some(f) <= p["hi95"].as_f64(),
            "{p}"
        );
    }
    assert_eq!(body["history_days"], 70);
    assert_eq!(body["accuracy"]["cuts"], 8);
}

#[tokio::test]
async fn a_series_picked_by_its_tags_is_forecast_from_its_own_history() {
    // Given ten weeks of API requests on two routes: /cart 5 to 11 a day, /orders 3 a day
    import_routes("insights-s", 70, &[("/cart", weekly), ("/orders", |_| 3)]).await;
    // When an admin asks for the forecast of the /orders route
    let (status, body) = predict(
        "insights-s",
        "/api/v1/predictions/api_request?series=route=/orders",
        "admin",
    )
    .await;
    // Then it is that route's three a day, named by its tags
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["series"], "route=/orders");
    assert_eq!(body["history_days"], 70);
    for p in body["points"].as_array().expect("points") {
        let f = p["forecast"].as_f64().expect("forecast");
        assert!((2.5..=3.5).contains(&f), "{p}");
    }
    // And the whole metric's forecast is the sum of both routes
    let (_, total) = predict("insights-s", "/api/v1/predictions/api_request", "admin").await;
    let f = total["points"][0]["forecast"].as_f64().unwrap_or(0.0);
    assert!((7.0..=15.0).contains(&f), "{total}");
    // And a route with no requests is a 404
    let (status, _) = predict(
        "insights-s",
        "/api/v1/predictions/api_request?series=route=/nowhere",
        "admin",
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn no_data_is_404_too_little_is_422_and_a_system_metric_needs_an_admin() {
    import_history("insights-b", 10).await;
    let (status, _) = predict("insights-b", "/api/v1/predictions/page_view", "admin").await;
    assert_eq!(status, 404);
    let (status, body) = predict("insights-b", "/api/v1/predictions/api_request", "admin").await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["status"], 422);
    let (status, _) = predict("insights-b", "/api/v1/predictions/api_request", "viewer").await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn an_hour_of_unusual_traffic_in_an_imported_history_is_found_and_explained() {
    // Given ten days of hourly API requests (3 to 6 an hour), and 120 in one hour two days ago
    let hour = chrono::Utc::now().timestamp().div_euclid(3_600) * 3_600;
    let spike = hour - 48 * 3_600;
    let mut csv = String::from("kind,route,method,status,latency_ms,timestamp\n");
    for h in 1..=240 {
        let start = hour - h * 3_600;
        let n = if start == spike { 120 } else { 3 + h % 4 };
        for i in 0..n {
            let at = chrono::DateTime::from_timestamp(start + i * 20, 0).expect("time");
            csv.push_str(&format!(
                "api_request,/cart,GET,200,12,{}\n",
                at.to_rfc3339()
            ));
        }
    }
    import_csv("insights-c", csv).await;
    // When an admin asks for the last week's anomalies of the metric
    let (status, body) = predict(
        "insights-c",
        "/api/v1/anomalies?metric=api_request",
        "admin",
    )
    .await;
    // Then the spike's hour is anomalous, with an expected value and band far below it
    assert_eq!(status, 200, "{body}");
    let found = body["anomalies"].as_array().expect("anomalies");
    let at = chrono::DateTime::from_timestamp(spike, 0)
        .expect("time")
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let a = found
        .iter()
        .find(|a| a["timestamp"] == at.as_str())
        .unwrap_or_else(|| panic!("the spike at {at} was not found: {body}"));
    assert_eq!(a["value"], 120.0, "{a}");
    assert!(a["high"].as_f64().expect("high") < 120.0, "{a}");
    // And a viewer may not read a system metric's anomalies
    let (status, _) = predict(
        "insights-c",
        "/api/v1/anomalies?metric=api_request",
        "viewer",
    )
    .await;
    assert_eq!(status, 403);
}

/// Asks for a retrain as an admin and waits for its job to end (the retrain job reads the
/// queue); the job as it ended.
async fn retrain(tenant: &str) -> Value {
    let (status, job) = call("POST", tenant, "/api/v1/predictions/retrain", "admin").await;
    assert_eq!(status, 202, "{job}");
    assert_eq!(job["status"], "queued");
    let path = format!(
        "/api/v1/predictions/retrain/{}",
        job["id"].as_str().expect("id")
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (status, job) = call("GET", tenant, &path, "admin").await;
        assert_eq!(status, 200, "{job}");
        if job["status"] == "done" || job["status"] == "failed" {
            return job;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the job did not end: {job}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn a_requested_retrain_refits_every_metric_and_predictions_serve_its_new_version() {
    // Given ten weeks of a metric's history, imported, and a viewer
    import_history("insights-d", 70).await;
    let (status, _) = call(
        "POST",
        "insights-d",
        "/api/v1/predictions/retrain",
        "viewer",
    )
    .await;
    assert_eq!(status, 403, "a viewer may not retrain");
    // When an admin asks for a retrain, twice
    let first = retrain("insights-d").await;
    let second = retrain("insights-d").await;
    // Then each job ends done, fitting the metric by count and (its values being latencies) by sum
    for job in [&first, &second] {
        assert_eq!(job["status"], "done", "{job}");
        let fitted: Vec<&str> = job["fitted"]
            .as_array()
            .expect("fitted")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(
            fitted.contains(&"api_request/count") && fitted.contains(&"api_request/sum"),
            "{job}"
        );
    }
    // And a prediction serves the second fit as stored: version 2, made by the job
    let (status, body) = predict("insights-d", "/api/v1/predictions/api_request", "admin").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], 2, "{body}");
    assert!(
        body["trained_at"].as_str() <= second["finished_at"].as_str(),
        "{body} {second}"
    );
    // And the accuracy lists the metric with today's record
    let (status, body) = predict("insights-d", "/api/v1/predictions/accuracy", "admin").await;
    assert_eq!(status, 200, "{body}");
    let counted = body["metrics"]
        .as_array()
        .expect("metrics")
        .iter()
        .find(|m| m["metric"] == "api_request" && m["aggregation"] == "count")
        .unwrap_or_else(|| panic!("no accuracy of api_request: {body}"));
    assert_eq!(counted["latest"]["version"], 2);
    assert_eq!(counted["history"].as_array().map(Vec::len), Some(1));
    assert_eq!(counted["latest"]["accuracy"]["cuts"], 8);
}

#[tokio::test]
async fn sealed_minutes_reach_the_metrics_detector_within_the_rollups_next_tick() {
    // Given a tenant's events in a minute that has closed
    let minute = chrono::Utc::now().timestamp().div_euclid(60) * 60 - 120;
    let at = chrono::DateTime::from_timestamp(minute + 5, 0)
        .expect("time")
        .to_rfc3339();
    let events: Vec<Value> = (0..5)
        .map(|i| serde_json::json!({"kind": "metric", "name": "detect.me", "value": 1.0, "id": format!("d{i}"), "timestamp": at}))
        .collect();
    let res = reqwest::Client::new()
        .post(format!("{}/api/v1/events", cloud().http))
        .bearer_auth(cloud().token("insights-e", "admin"))
        .json(&serde_json::json!({ "events": events }))
        .send()
        .await
        .expect("events");
    assert_eq!(res.status(), 202);
    // When the rollup job seals it and tells the detect job
    let from = chrono::DateTime::from_timestamp(minute - 600, 0)
        .expect("time")
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let path = format!("/api/v1/anomalies?metric=detect.me&interval=1m&from={from}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(150);
    // Then the metric's detector has scored its minutes through that one
    loop {
        // (the rollup runs every minute; fired here so as not to wait for the tick)
        match cloud().fire("RollupJobFunction", "EveryMinute").await {
            Ok(_) => {}
            Err(e) if e.contains("reserved concurrency") => {}
            Err(e) => panic!("the rollup failed: {e}"),
        }
        let (status, body) = predict("insights-e", &path, "admin").await;
        assert_eq!(status, 200, "{body}");
        if body["points_scored"].as_i64().is_some_and(|n| n >= 1) {
            assert_eq!(body["interval"], "1m");
            assert!(
                body["anomalies"].as_array().is_some_and(Vec::is_empty),
                "one minute is no anomaly: {body}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the detector never scored the minute: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}
