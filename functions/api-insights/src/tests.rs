use super::*;
use pulse_core::identity::TenantId;
use pulse_insights::memory::{MemoryInsights, MemorySeries, MemoryTotals};
use pulse_metrics::aggregate::Bucket;

const NOW: i64 = 1_795_435_200; // 2026-11-23T12:00:00Z

type Days = MemoryTotals;

fn bucket(count: u64) -> Bucket {
    let mut b = Bucket::default();
    for _ in 0..count {
        b.add(1.0, None);
    }
    b
}

/// `days` days of page views up to yesterday: a weekly pattern and a little variation.
fn page_views(days: i64) -> Days {
    let today = NOW.div_euclid(DAY) * DAY;
    MemoryTotals::new(
        (1..=days)
            .map(|d| {
                let start = today - d * DAY;
                let count = 100 + 40 * ((start / DAY) % 7) as u64 + (d % 5) as u64 * 3;
                ("page_view".to_owned(), start, bucket(count))
            })
            .collect(),
        Resolution::Day,
    )
}

/// 20 days of hourly page views up to the last whole hour: a daily wave with a little jitter,
/// and `spike` page views instead in the hour starting at `spike_at`.
fn hourly(spike_at: Option<i64>, spike: u64) -> Days {
    let hour = NOW.div_euclid(3_600) * 3_600;
    MemoryTotals::new(
        (1..=20 * 24)
            .map(|h| {
                let start = hour - h * 3_600;
                let phase = (start / 3_600 % 24) as f64 / 24.0 * std::f64::consts::TAU;
                let count = if Some(start) == spike_at {
                    spike
                } else {
                    (100.0 + 50.0 * phase.sin()).round() as u64 + (h % 3) as u64
                };
                ("page_view".to_owned(), start, bucket(count))
            })
            .collect(),
        Resolution::Hour,
    )
}

fn request(path_and_query: &str, role: &str) -> Request {
    request_as("GET", path_and_query, role, "acme")
}

fn request_as(method: &str, path_and_query: &str, role: &str, tenant: &str) -> Request {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let event = serde_json::json!({
        "version": "2.0",
        "routeKey": "GET /api/v1/predictions/{metric}",
        "rawPath": path,
        "rawQueryString": query,
        "queryStringParameters": query.split('&').filter(|p| !p.is_empty()).filter_map(|p| p.split_once('=')).map(|(k, v)| (k.to_owned(), serde_json::Value::String(v.to_owned()))).collect::<serde_json::Map<_, _>>(),
        "headers": {"host": "api.example.com"},
        "requestContext": {
            "accountId": "123456789012", "apiId": "api", "domainName": "api.example.com",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "192.0.2.1", "userAgent": "test"},
            "requestId": "r1", "routeKey": "GET /api/v1/predictions/{metric}", "stage": "$default",
            "time": "24/Nov/2026:12:00:00 +0000", "timeEpoch": 1795435200000i64,
            "authorizer": {"jwt": {"claims": {"sub": "u1", "custom:tenant": tenant, "cognito:groups": format!("[{role}]")}, "scopes": null}}
        },
        "isBase64Encoded": false
    });
    lambda_http::request::from_str(&event.to_string()).expect("request")
}

type Handler = Insights<Days, MemoryInsights, MemoryInsights>;

fn insights(days: Days, clock: fn() -> i64) -> Handler {
    Insights::new(
        days,
        MemoryInsights::default(),
        MemoryInsights::default(),
        ClaimNames::default(),
    )
    .with_clock(clock)
}

async fn call(days: Days, path: &str, role: &str) -> (u16, serde_json::Value) {
    send(&insights(days, || NOW), request(path, role)).await
}

async fn send(insights: &Handler, req: Request) -> (u16, serde_json::Value) {
    let res = insights.handle(req).await.expect("response");
    let status = res.status().as_u16();
    let body: serde_json::Value = serde_json::from_slice(res.body().as_ref()).unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn a_metric_with_months_of_history_gets_a_week_of_forecasts_with_their_accuracy() {
    let (status, body) = call(page_views(120), "/api/v1/predictions/page_view", "viewer").await;
    assert_eq!(status, 200, "{body}");
    let points = body["points"].as_array().expect("points");
    assert_eq!(points.len(), 7);
    assert_eq!(points[0]["date"], "2026-11-23");
    assert_eq!(points[6]["date"], "2026-11-29");
    for p in points {
        let (f, lo80, hi80, lo95, hi95) = (
            p["forecast"].as_f64().expect("f"),
            p["lo80"].as_f64().expect("l"),
            p["hi80"].as_f64().expect("h"),
            p["lo95"].as_f64().expect("l"),
            p["hi95"].as_f64().expect("h"),
        );
        assert!(
            lo95 <= lo80 && lo80 <= f && f <= hi80 && hi80 <= hi95,
            "{p}"
        );
        // The forecast follows the weekly pattern.
        let weekday =
            chrono::NaiveDate::parse_from_str(p["date"].as_str().expect("date"), "%Y-%m-%d")
                .expect("date");
        let expected = 100.0
            + 40.0
                * ((weekday
                    .and_hms_opt(0, 0, 0)
                    .expect("t")
                    .and_utc()
                    .timestamp()
                    / DAY)
                    % 7) as f64;
        assert!((f - expected).abs() / expected < 0.1, "{f} vs {expected}");
    }
    assert_eq!(body["history_days"], 120);
    assert_eq!(body["accuracy"]["cuts"], 8);
    assert!(body["accuracy"]["mase"].is_number());
    assert!(
        body["model"]
            .as_str()
            .is_some_and(|m| m.starts_with("ensemble("))
    );
}

#[tokio::test]
async fn days_choose_the_horizon_and_bad_parameters_are_refused_by_name() {
    let (status, body) = call(
        page_views(60),
        "/api/v1/predictions/page_view?days=30",
        "viewer",
    )
    .await;
    assert_eq!(
        (status, body["points"].as_array().map(Vec::len)),
        (200, Some(30))
    );
    for (query, pointer) in [
        ("days=0", "#/days"),
        ("days=31", "#/days"),
        ("days=x", "#/days"),
        ("aggregation=p95", "#/aggregation"),
        ("range=7d", "#/range"),
        ("days=7&days=8", "#/days"),
        ("series=a=1&series=b=2", "#/series"),
    ] {
        let (status, body) = call(
            page_views(60),
            &format!("/api/v1/predictions/page_view?{query}"),
            "viewer",
        )
        .await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["errors"][0]["pointer"], pointer, "{query}");
    }
}

/// Asserts that a viewer's `path` answers `status` with a detail that says `says`.
async fn problem(days: Days, path: &str, status: u16, says: &str) {
    let (got, body) = call(days, path, "viewer").await;
    assert_eq!(got, status, "{body}");
    assert!(
        body["detail"].as_str().is_some_and(|d| d.contains(says)),
        "{body}"
    );
}

#[tokio::test]
async fn an_unknown_metric_is_404_and_too_little_history_is_422() {
    let path = "/api/v1/predictions/nothing_here";
    problem(page_views(60), path, 404, "no data for metric nothing_here").await;
    let path = "/api/v1/predictions/page_view";
    problem(page_views(20), path, 422, "20 complete days, 28 needed").await;
}

/// Page views (`page_views(days)` as the total) and three of their series over the same days:
/// Twitter on mobile (10 a day) and on desktop (20 a day, from `twitter_desktop_days` days
/// back), and Google on desktop (1,000 a day).
fn page_views_by_source(days: i64, twitter_desktop_days: i64) -> Days {
    let today = NOW.div_euclid(DAY) * DAY;
    let series = |id: &str, tags: &[(&str, &str)], per_day: u64, days: i64| MemorySeries {
        metric: "page_view".into(),
        id: id.into(),
        tags: tags
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        buckets: (1..=days)
            .map(|d| (today - d * DAY, bucket(per_day)))
            .collect(),
    };
    MemoryTotals {
        series: vec![
            series(
                "s1",
                &[("source", "Twitter"), ("device", "mobile")],
                10,
                days,
            ),
            series(
                "s2",
                &[("source", "Twitter"), ("device", "desktop")],
                20,
                twitter_desktop_days,
            ),
            series(
                "s3",
                &[("source", "Google"), ("device", "desktop")],
                1_000,
                days,
            ),
        ],
        ..page_views(days)
    }
}

#[tokio::test]
async fn a_series_forecast_sums_the_series_its_tags_pick() {
    let handler = insights(page_views_by_source(90, 90), || NOW);
    // When Twitter's page views are predicted, tags written in any order and spacing
    let (status, body) = send(
        &handler,
        request(
            "/api/v1/predictions/page_view?series=source=Twitter",
            "viewer",
        ),
    )
    .await;
    // Then the forecast is of Twitter's 30 a day (mobile and desktop), named as asked
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["series"], "source=Twitter");
    assert_eq!(body["history_days"], 90);
    for p in body["points"].as_array().expect("points") {
        let f = p["forecast"].as_f64().expect("forecast");
        assert!((f - 30.0).abs() < 1.0, "{p}");
    }
    // And one tag more picks one series
    let (_, mobile) = send(
        &handler,
        request(
            "/api/v1/predictions/page_view?series=device=mobile,%20source=Twitter",
            "viewer",
        ),
    )
    .await;
    assert_eq!(mobile["series"], "device=mobile,source=Twitter");
    let f = mobile["points"][0]["forecast"].as_f64().unwrap_or(f64::NAN);
    assert!((f - 10.0).abs() < 1.0, "{mobile}");
    // And the metric's total is a fit of its own, not the series' (the total has no series)
    let (_, total) = send(&handler, request("/api/v1/predictions/page_view", "viewer")).await;
    assert!(total.get("series").is_none(), "{total}");
    assert!(
        total["points"][0]["forecast"].as_f64().unwrap_or(0.0) > 90.0,
        "{total}"
    );
    assert_eq!(
        (total["version"].clone(), body["version"].clone()),
        (1.into(), 1.into())
    );
    // And the accuracy lists the series beside the metric
    let (_, accuracy) = send(&handler, request("/api/v1/predictions/accuracy", "viewer")).await;
    let listed: Vec<(String, String)> = accuracy["metrics"]
        .as_array()
        .expect("metrics")
        .iter()
        .map(|m| {
            (
                m["metric"].as_str().unwrap_or_default().to_owned(),
                m["series"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("page_view".to_owned(), String::new()),
            (
                "page_view".to_owned(),
                "device=mobile,source=Twitter".to_owned()
            ),
            ("page_view".to_owned(), "source=Twitter".to_owned()),
        ]
    );
}

#[tokio::test]
async fn a_series_no_tags_pick_is_404_a_short_one_422_and_a_malformed_one_400() {
    // Given Twitter's desktop page views of the last 20 days only
    let days = || page_views_by_source(90, 20);
    // Then a tag value no series has is a 404 naming the series
    let path = "/api/v1/predictions/page_view?series=source=Bing";
    problem(days(), path, 404, "series source=Bing").await;
    // And a series with 20 days of history is a 422 saying so
    let path = "/api/v1/predictions/page_view?series=source=Twitter,device=desktop";
    problem(days(), path, 422, "20 complete days, 28 needed").await;
    // And a selector that is not tag=value pairs is a 400 pointing at it
    for bad in ["source", "source=", "source=a,source=b", "bad%20key=x"] {
        let (status, body) = call(
            days(),
            &format!("/api/v1/predictions/page_view?series={bad}"),
            "viewer",
        )
        .await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["errors"][0]["pointer"], "#/series", "{bad}");
    }
}

#[tokio::test]
async fn a_business_metric_needs_an_analyst() {
    let mut days = page_views(60);
    for (m, _, _) in days.rows.iter_mut().flatten() {
        *m = "order".to_owned();
    }
    let (status, body) = call(days, "/api/v1/predictions/order", "viewer").await;
    assert_eq!(status, 403);
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("analyst")),
        "{body}"
    );
}

#[tokio::test]
async fn a_spike_in_the_range_is_an_anomaly_explained_by_its_expected_value_and_band() {
    // Given 20 days of hourly page views with a daily wave, and 1,000 in one hour yesterday
    let spike_at = NOW.div_euclid(3_600) * 3_600 - 30 * 3_600;
    // When the last 7 days are scanned
    let (status, body) = call(
        hourly(Some(spike_at), 1_000),
        "/api/v1/anomalies?metric=page_view",
        "viewer",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // Then that hour is the one anomaly, critical, far above what was expected
    let found = body["anomalies"].as_array().expect("anomalies");
    assert_eq!(found.len(), 1, "{body}");
    let a = &found[0];
    assert_eq!(a["timestamp"], pulse_models::series::format_time(spike_at));
    assert_eq!(a["value"], 1_000.0);
    assert_eq!(a["feature"], "new_level");
    assert_eq!(a["severity"], "critical");
    assert!(a["high"].as_f64().expect("high") < 300.0, "{a}");
    assert!(a["expected"].as_f64().expect("expected") < 200.0, "{a}");
    // And it opens a one-hour window; the week's whole hours were scored
    assert_eq!(body["windows"][0]["points"], 1, "{body}");
    assert_eq!(body["interval"], "1h");
    assert_eq!(body["points_scored"], 7 * 24, "{body}");
}

#[tokio::test]
async fn a_day_of_usual_values_in_an_unusual_shape_is_an_anomaly_of_its_part_of_the_day() {
    // Given 20 days of hourly page views on a daily wave, and yesterday with half the swing
    // (every hour's value one the series has had)
    let today = NOW.div_euclid(DAY) * DAY;
    let mut days = hourly(None, 0);
    for (_, start, b) in days.rows.iter_mut().flatten() {
        if (today - DAY..today).contains(start) {
            let phase = (*start / 3_600 % 24) as f64 / 24.0 * std::f64::consts::TAU;
            *b = bucket((100.0 + 25.0 * phase.sin()).round() as u64);
        }
    }
    // When the last 7 days are scanned
    let (status, body) = call(days, "/api/v1/anomalies?metric=page_view", "viewer").await;
    assert_eq!(status, 200, "{body}");
    // Then yesterday holds a day-shape anomaly: a third of the day, its mean against its usual
    let shaped: Vec<&serde_json::Value> = body["anomalies"]
        .as_array()
        .expect("anomalies")
        .iter()
        .filter(|a| a["feature"] == "day_shape")
        .collect();
    assert_eq!(shaped.len(), 1, "{body}");
    let a = shaped[0];
    let at = a["timestamp"]
        .as_str()
        .and_then(pulse_models::series::parse_time);
    assert!(at.is_some_and(|t| (today - DAY..today).contains(&t)), "{a}");
    let (value, expected) = (a["value"].as_f64(), a["expected"].as_f64());
    assert!(
        value
            .zip(expected)
            .is_some_and(|(v, e)| (v - e).abs() > 5.0),
        "{a}"
    );
    // (this series repeats itself exactly: its usual difference, and so its band, is nil)
    assert!(
        a["low"].as_f64() <= expected && expected <= a["high"].as_f64(),
        "{a}"
    );
    // And its window is the third of the day it ends
    let window = body["windows"]
        .as_array()
        .expect("windows")
        .iter()
        .find(|w| {
            w["end"].as_str().and_then(pulse_models::series::parse_time) == at.map(|t| t + 3_600)
        })
        .expect("its window");
    assert_eq!(window["points"], 8, "{window}");
}

#[tokio::test]
async fn a_series_doing_what_it_always_does_has_no_anomaly() {
    // Given the same daily wave with no spike
    let (status, body) = call(
        hourly(None, 0),
        "/api/v1/anomalies?metric=page_view",
        "viewer",
    )
    .await;
    // Then nothing is anomalous
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["anomalies"], serde_json::json!([]), "{body}");
}

#[tokio::test]
async fn anomaly_queries_are_checked_by_name_role_and_data() {
    for (query, role, status, pointer) in [
        ("", "viewer", 400, Some("#/metric")),
        (
            "metric=page_view&from=yesterday",
            "viewer",
            400,
            Some("#/from"),
        ),
        (
            "metric=page_view&from=2026-01-01T00:00:00Z",
            "viewer",
            400,
            Some("#/from"),
        ),
        (
            "metric=page_view&colour=red",
            "viewer",
            400,
            Some("#/colour"),
        ),
        (
            "metric=page_view&metric=order",
            "viewer",
            400,
            Some("#/metric"),
        ),
        ("metric=order", "viewer", 403, None),
        ("metric=signup", "viewer", 404, None),
    ] {
        let (got, body) = call(hourly(None, 0), &format!("/api/v1/anomalies?{query}"), role).await;
        assert_eq!(got, status, "{query}: {body}");
        if let Some(pointer) = pointer {
            assert_eq!(body["errors"][0]["pointer"], pointer, "{query}");
        }
    }
}

#[tokio::test]
async fn a_fit_made_today_is_served_as_stored_and_tomorrow_is_refitted() {
    // Given a metric with months of history, predicted once today
    let handler = insights(page_views(120), || NOW);
    let (status, first) = send(&handler, request("/api/v1/predictions/page_view", "viewer")).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["version"], 1);
    // When it is predicted again today
    let (_, again) = send(&handler, request("/api/v1/predictions/page_view", "viewer")).await;
    // Then the stored fit answers: the same version, time and points
    assert_eq!(again, first);
    // And a longer horizon is a fit of its own
    let (_, month) = send(
        &handler,
        request("/api/v1/predictions/page_view?days=30", "viewer"),
    )
    .await;
    assert_eq!(month["points"].as_array().map(Vec::len), Some(30));
    assert_eq!(month["version"], 1);
    // When tomorrow comes (the same store, a day later)
    let tomorrow = Insights {
        clock: || NOW + DAY,
        ..handler
    };
    let (_, next) = send(
        &tomorrow,
        request("/api/v1/predictions/page_view", "viewer"),
    )
    .await;
    // Then the metric is fitted again, as the next version, from tomorrow
    assert_eq!(next["version"], 2);
    assert_eq!(next["points"][0]["date"], "2026-11-24");
}

#[tokio::test]
async fn an_admin_queues_a_retrain_and_follows_its_job_and_others_cannot() {
    let handler = insights(page_views(60), || NOW);
    // Given a viewer and an analyst, a retrain is refused
    for role in ["viewer", "analyst"] {
        let (status, body) = send(
            &handler,
            request_as("POST", "/api/v1/predictions/retrain", role, "acme"),
        )
        .await;
        assert_eq!(status, 403, "{role}: {body}");
    }
    assert!(handler.queue.requests.lock().expect("ok").is_empty());
    // When an admin asks for one
    let (status, job) = send(
        &handler,
        request_as("POST", "/api/v1/predictions/retrain", "admin", "acme"),
    )
    .await;
    // Then it is accepted, queued for the retrain job, and its status can be read
    assert_eq!(status, 202, "{job}");
    assert_eq!(job["status"], "queued");
    let id = job["id"].as_str().expect("id").to_owned();
    let sent = handler.queue.requests.lock().expect("ok").clone();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].tenant.as_str(), sent[0].job.as_str()),
        ("acme", id.as_str())
    );
    let path = format!("/api/v1/predictions/retrain/{id}");
    let (status, read) = send(&handler, request_as("GET", &path, "admin", "acme")).await;
    assert_eq!((status, &read), (200, &job));
    // And another tenant's admin does not see it, nor does anyone see a made-up job
    let (status, _) = send(&handler, request_as("GET", &path, "admin", "other")).await;
    assert_eq!(status, 404);
    let (status, _) = send(
        &handler,
        request_as("GET", "/api/v1/predictions/retrain/nope", "admin", "acme"),
    )
    .await;
    assert_eq!(status, 404);
    let long = format!("/api/v1/predictions/retrain/{}", "a".repeat(2_000));
    let (status, body) = send(&handler, request_as("GET", &long, "admin", "acme")).await;
    assert_eq!(status, 404);
    assert!(
        !body.to_string().contains("aaaa"),
        "the id is not echoed: {body}"
    );
    // And a second request while the first still waits is the same job, queued once
    let (status, again) = send(
        &handler,
        request_as("POST", "/api/v1/predictions/retrain", "admin", "acme"),
    )
    .await;
    assert_eq!((status, &again["id"]), (202, &job["id"]));
    assert_eq!(handler.queue.requests.lock().expect("ok").len(), 1);
    // And once it is done, a new request is a new job
    let mut done: RetrainJob = serde_json::from_value(job.clone()).expect("job");
    done.status = JobStatus::Done;
    handler.fits.put_job(&done).await.expect("ok");
    let (status, next) = send(
        &handler,
        request_as("POST", "/api/v1/predictions/retrain", "admin", "acme"),
    )
    .await;
    assert_eq!(status, 202);
    assert_ne!(next["id"], job["id"]);
    // And the tenant is now refitted daily
    assert_eq!(handler.fits.tenants().await.expect("ok").len(), 1);
}

#[tokio::test]
async fn accuracy_lists_each_fitted_metric_with_its_history_and_hides_what_the_role_cannot_read() {
    // Given page views and orders fitted on two days
    let mut days = page_views(90);
    let orders = page_views(90).rows.into_iter().flatten();
    days.rows
        .get_or_insert_default()
        .extend(orders.map(|(_, s, b)| ("order".to_owned(), s, b)));
    let handler = insights(days, || NOW);
    for path in ["/api/v1/predictions/page_view", "/api/v1/predictions/order"] {
        assert_eq!(send(&handler, request(path, "analyst")).await.0, 200);
    }
    let later = Insights {
        clock: || NOW + DAY,
        ..handler
    };
    assert_eq!(
        send(&later, request("/api/v1/predictions/page_view", "analyst"))
            .await
            .0,
        200
    );
    // When an analyst reads the accuracy
    let (status, body) = send(&later, request("/api/v1/predictions/accuracy", "analyst")).await;
    // Then each metric has its latest figures and its history, oldest first
    assert_eq!(status, 200, "{body}");
    let metrics = body["metrics"].as_array().expect("metrics");
    let names: Vec<&str> = metrics
        .iter()
        .filter_map(|m| m["metric"].as_str())
        .collect();
    assert_eq!(names, ["order", "page_view"]);
    let views = &metrics[1];
    let dates: Vec<&str> = views["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|h| h["date"].as_str())
        .collect();
    assert_eq!(dates, ["2026-11-23", "2026-11-24"]);
    assert_eq!(views["latest"]["version"], 2);
    assert!(views["latest"]["accuracy"]["mase"].is_number());
    // And a viewer does not see the business metric's
    let (_, body) = send(&later, request("/api/v1/predictions/accuracy", "viewer")).await;
    let names: Vec<&str> = body["metrics"]
        .as_array()
        .expect("metrics")
        .iter()
        .filter_map(|m| m["metric"].as_str())
        .collect();
    assert_eq!(names, ["page_view"]);
}

#[tokio::test]
async fn minutes_found_anomalous_as_they_sealed_are_answered_with_how_far_the_detector_got() {
    use pulse_metrics::insights::{DetectedAnomaly, DetectorState};
    use pulse_store::{AnomalyLog, DetectorStates};
    // Given a detector that scored page views through 11:30 and found 11:00 anomalous
    let handler = insights(page_views(1), || NOW);
    let acme = TenantId::parse("acme").expect("tenant");
    let eleven = NOW - 3_600;
    handler
        .fits
        .put_detector(
            &acme,
            &DetectorState {
                metric: "page_view".into(),
                last_minute: eleven + 30 * 60,
                state: Vec::new(),
            },
            None,
        )
        .await
        .expect("stored");
    let found = DetectedAnomaly {
        metric: "page_view".into(),
        minute: eleven,
        value: 500.0,
        score: 0.95,
        expected: 40.0,
        low: 20.0,
        high: 60.0,
        feature: "new_level".into(),
        detected_at: eleven + 90,
    };
    handler
        .fits
        .record(&acme, std::slice::from_ref(&found))
        .await
        .expect("recorded");
    // When the last two hours' anomalies by minute are asked for
    let path = "/api/v1/anomalies?metric=page_view&interval=1m&from=2026-11-23T10:00:00Z";
    let (status, body) = send(&handler, request(path, "viewer")).await;
    // Then the minute is there, explained, and 91 minutes of the range were scored
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["interval"], "1m");
    assert_eq!(body["points_scored"], 91);
    assert_eq!(body["anomalies"][0]["timestamp"], "2026-11-23T11:00:00Z");
    assert_eq!(body["anomalies"][0]["severity"], "critical");
    assert_eq!(body["anomalies"][0]["expected"], 40.0);
    // And a minute range beyond a week, or of sums, is refused by name
    for bad in [
        "interval=1m&from=2026-11-01T00:00:00Z",
        "interval=1m&aggregation=sum",
        "interval=5m",
    ] {
        let (status, body) = send(
            &handler,
            request(
                &format!("/api/v1/anomalies?metric=page_view&{bad}"),
                "viewer",
            ),
        )
        .await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["errors"][0]["pointer"], "#/interval", "{bad}: {body}");
    }
}

#[tokio::test]
async fn what_cannot_be_a_metric_name_is_refused_before_any_lookup() {
    let handler = insights(page_views(60), || NOW);
    let long = "m".repeat(2_000);
    for path in [
        format!("/api/v1/predictions/{long}"),
        "/api/v1/predictions/__totals__".to_owned(),
        format!("/api/v1/anomalies?metric={long}"),
        "/api/v1/anomalies?metric=a%23b".to_owned(),
    ] {
        let (status, body) = send(&handler, request(&path, "admin")).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["errors"][0]["pointer"], "#/metric", "{path}: {body}");
    }
}
