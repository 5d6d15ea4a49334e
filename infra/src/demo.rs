//! Demo traffic for `make dev`: realistic events through the real endpoints, so every view has
//! data moving. `PULSE_DEMO=off` disables it; `PULSE_DEMO_RATE` sets events per second
//! (default 5).
//!
//! It signs in as the `demo` tenant's admin with the local issuer, creates a demo site and three
//! goals (two pages and the order event), and then every second sends:
//! - beacons to `/api/v1/track` from browsers of several kinds (under the per-client rate
//!   limit: the local cloud's clients all share 127.0.0.1);
//! - a batch to `/api/v1/events`: page views over pages, sources and devices with visitor ids,
//!   API requests with lognormal latencies and occasional error bursts, shoppers' visits
//!   (product view → cart → checkout → order, each step by fewer of them, in order), ML jobs
//!   across providers, and host CPU metrics.
//!
//! The rate follows a daily curve (low at night, peaking in the afternoon) and a weekly one
//! (weekends quieter), in UTC, with incidents in the history ([`incident`]) and surges live
//! ([`surge`]) that the anomaly detectors find.
//!
//! First it imports [`HISTORY_DAYS`] days of history through `POST /api/v1/imports`, which
//! merges it into the rollups of every resolution as it answers, so every chart (and, later,
//! every forecast) has data within the first two minutes: a dozen events or so an hour, each
//! hour's events in one minute of it, so the hourly and daily rollups see the same
//! seasonality as live traffic.

use chrono::{Datelike, Timelike, Utc};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

const PAGES: &[&str] = &[
    "/",
    "/pricing",
    "/docs",
    "/docs/getting-started",
    "/blog",
    "/blog/serverless-analytics",
    "/about",
    "/signup",
];
const REFERRERS: &[&str] = &[
    "",
    "",
    "https://www.google.com/",
    "https://news.ycombinator.com/",
    "https://www.reddit.com/r/rust/",
    "https://t.co/x",
    "https://github.com/",
];
const AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
];
const COLLECTIONS: &[(&str, &[(&str, f64)])] = &[
    (
        "kitchen",
        &[("mug", 18.0), ("kettle", 79.0), ("grinder", 129.0)],
    ),
    ("desk", &[("lamp", 49.0), ("notebook", 12.0)]),
    ("outdoor", &[("bottle", 25.0), ("backpack", 149.0)]),
];
const PROVIDERS: &[&str] = &["openai", "anthropic", "bedrock", "self-hosted"];
const ROUTES: &[&str] = &[
    "/api/v1/orders",
    "/api/v1/orders/{id}",
    "/api/v1/cart",
    "/api/v1/search",
    "/api/v1/login",
];

/// Whether demo traffic is on (`PULSE_DEMO` is not `off`).
pub fn enabled() -> bool {
    !matches!(
        std::env::var("PULSE_DEMO").as_deref(),
        Ok("off" | "0" | "false")
    )
}

/// Events per second from `PULSE_DEMO_RATE` (default 5).
pub fn rate() -> f64 {
    std::env::var("PULSE_DEMO_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|r: &f64| *r > 0.0)
        .unwrap_or(5.0)
}

/// The traffic multiplier for this moment: daily and weekly seasonality.
pub fn seasonality(t: chrono::DateTime<Utc>) -> f64 {
    let hour = f64::from(t.hour()) + f64::from(t.minute()) / 60.0;
    // Lowest around 04:00, highest around 16:00.
    let daily = 1.0 + 0.6 * ((hour - 10.0) / 24.0 * std::f64::consts::TAU).sin();
    let weekly = if t.weekday().number_from_monday() >= 6 {
        0.6
    } else {
        1.0
    };
    daily * weekly
}

/// The live traffic's surges, for the detectors to find: every fourth hour, minutes :40 to
/// :42 bring six times the traffic.
pub fn surge(t: chrono::DateTime<Utc>) -> f64 {
    if t.hour() % 4 == 2 && (40..43).contains(&t.minute()) {
        6.0
    } else {
        1.0
    }
}

/// The history's incidents, for the detectors to find: a campaign 40 days before `now` (ten
/// times the traffic from 14:00 to 15:00) and a bigger one 6 days before (twenty times, from
/// 15:00: a level never seen, not the first campaign's again).
pub fn incident(t: chrono::DateTime<Utc>, now: chrono::DateTime<Utc>) -> f64 {
    let days_before = now.timestamp().div_euclid(86_400) - t.timestamp().div_euclid(86_400);
    match (days_before, t.hour()) {
        (40, 14) => 10.0,
        (6, 15) => 20.0,
        _ => 1.0,
    }
}

/// A lognormal latency in ms around a median of `median`.
fn latency(rng: &mut fastrand::Rng, median: f64) -> f64 {
    let (u1, u2) = (rng.f64().max(f64::MIN_POSITIVE), rng.f64());
    let normal = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    (median * (0.6 * normal).exp() * 100.0).round() / 100.0
}

/// One second of demo events for the `/api/v1/events` batch.
pub fn events(rng: &mut fastrand::Rng, count: usize, now: chrono::DateTime<Utc>) -> Vec<Value> {
    // An error burst a few minutes of every hour.
    let burst = now.minute() % 20 < 2;
    (0..count)
        .flat_map(|_| {
            vec![match rng.u32(0..100) {
            0..=24 => {
                let referrer = REFERRERS[rng.usize(..REFERRERS.len())];
                json!({
                    "kind": "page_view",
                    "path": PAGES[rng.usize(..PAGES.len())],
                    "referrer": referrer,
                    "visitor": format!("demo-visitor-{}", rng.u32(0..2000)),
                    "tags": {
                        "source": pulse_ingest::track::source(Some(referrer), None, "demo.pulse.local"),
                        "device": (["desktop", "mobile", "tablet"][rng.usize(..3)]),
                        "country": (["US", "DE", "GB", "FR", "IN", "BR"][rng.usize(..6)]),
                    },
                })
            }
            25..=59 => {
                let route = ROUTES[rng.usize(..ROUTES.len())];
                let error = rng.u32(0..100) < if burst { 25 } else { 2 };
                json!({
                    "kind": "api_request", "route": route,
                    "method": if route.ends_with("orders") || route.ends_with("login") { "POST" } else { "GET" },
                    "status": (if error { [500, 502, 503][rng.usize(..3)] } else { [200, 200, 200, 201, 404][rng.usize(..5)] }),
                    "latency_ms": latency(rng, if error { 900.0 } else { 45.0 }),
                    "tags": {"service": "shop-api"},
                })
            }
            60..=77 => return journey(rng, now),
            78..=82 => json!({
                "kind": "ml_job", "pipeline": (["embeddings", "summarise", "classify"][rng.usize(..3)]),
                "provider": PROVIDERS[rng.usize(..PROVIDERS.len())],
                "status": if rng.u32(0..100) < 5 { "failure" } else { "success" },
                "duration_ms": latency(rng, 1200.0), "cost": (rng.f64() * 0.05 * 1e4).round() / 1e4,
            }),
            _ => json!({
                "kind": "metric", "name": "host.cpu", "unit": "percent",
                "value": (35.0 + 25.0 * seasonality(now) * rng.f64()).min(100.0),
                "tags": {"host": format!("web-{}", rng.u32(1..5))},
            }),
        }]
        })
        .collect()
}

/// The pages a visit views after its first page view (`first`), each with its seconds after
/// the first: none for about 45 % of visits (a bounce), else one to three (each time half
/// the visits view one more), 5–30 s apart, by the same visitor with the same source, device
/// and country, each referred by the page before. So the demo's visits look like a real
/// site's (bounce rate near half, visits of half a minute or more) instead of one page each,
/// and a visit of the history stays within two minutes.
pub fn rest_of_visit(rng: &mut fastrand::Rng, first: &Value) -> Vec<(i64, Value)> {
    let mut pages = Vec::new();
    if first["kind"] != "page_view" || rng.u32(0..100) < 45 {
        return pages;
    }
    let (mut at, mut path) = (0, first["path"].as_str().unwrap_or("/").to_owned());
    loop {
        at += i64::from(rng.u32(5..=30));
        let mut page = first.clone();
        page["referrer"] = json!(format!("https://demo.pulse.local{path}"));
        path = PAGES[rng.usize(..PAGES.len())].to_owned();
        page["path"] = json!(path);
        pages.push((at, page));
        if pages.len() == 3 || rng.bool() {
            return pages;
        }
    }
}

/// A shopper's visit ending at `now`: a product view, and for some shoppers a cart, a checkout
/// and an order of that product, in that order, by the same visitor, ten seconds apart. So the
/// shop's funnel narrows step by step as a real shop's does (about 35 % add to cart, 45 % of
/// those check out, 75 % of those pay), instead of counting unrelated events.
fn journey(rng: &mut fastrand::Rng, now: chrono::DateTime<Utc>) -> Vec<Value> {
    let (collection, products) = COLLECTIONS[rng.usize(..COLLECTIONS.len())];
    let (product, price) = products[rng.usize(..products.len())];
    let visitor = format!("demo-visitor-{}", rng.u32(0..2000));
    let quantity = rng.u32(1..3);
    let item =
        json!({"product": product, "collection": collection, "quantity": quantity, "price": price});
    let mut steps = vec![
        json!({"kind": "product_view", "product": product, "collection": collection, "price": price, "visitor": visitor}),
    ];
    if rng.u32(0..100) < 35 {
        steps.push(json!({"kind": "add_to_cart", "product": product, "collection": collection, "quantity": quantity, "price": price, "visitor": visitor}));
        if rng.u32(0..100) < 45 {
            steps.push(json!({"kind": "checkout", "cart_value": price * f64::from(quantity), "items": [item], "visitor": visitor}));
            if rng.u32(0..100) < 75 {
                steps.push(json!({
                    "kind": "order", "order_id": format!("demo-{}", uuid::Uuid::new_v4().simple()),
                    "revenue": price * f64::from(quantity), "currency": "EUR",
                    "items": [item], "visitor": visitor,
                }));
            }
        }
    }
    let last = steps.len() as i64 - 1;
    for (i, step) in steps.iter_mut().enumerate() {
        let at = now - chrono::Duration::seconds((last - i as i64) * 10);
        step["timestamp"] = json!(stamp(at));
    }
    steps
}

/// Days of demo history imported at start.
pub const HISTORY_DAYS: i64 = 90;
/// Events per import request.
const IMPORT_CHUNK: usize = 10_000;

/// [`HISTORY_DAYS`] of demo events before `now`, each with its timestamp, oldest first.
pub fn history(rng: &mut fastrand::Rng, now: chrono::DateTime<Utc>) -> Vec<Value> {
    let last_hour = now.timestamp() / 3_600 * 3_600 - 3_600;
    let first_hour = last_hour - HISTORY_DAYS * 86_400 + 3_600;
    let mut out = Vec::new();
    for hour in (first_hour..=last_hour).step_by(3_600) {
        let Some(t) = chrono::DateTime::from_timestamp(hour + 17 * 60, 0) else {
            continue;
        };
        let count = (8.0 * seasonality(t) * incident(t, now)).round() as usize;
        for mut event in events(rng, count, t) {
            // A shopper's steps keep their order; the rest spread over the minute.
            if event.get("timestamp").is_none() {
                let rest = rest_of_visit(rng, &event);
                // A visit of several pages starts in the first half of the minute, so the
                // history keeps to a few minutes an hour.
                let within = if rest.is_empty() { 60_000 } else { 30_000 };
                let at = t + chrono::Duration::milliseconds(i64::from(rng.u32(0..within)));
                event["timestamp"] = json!(stamp(at));
                for (after, mut page) in rest {
                    page["timestamp"] = json!(stamp(at + chrono::Duration::seconds(after)));
                    out.push(page);
                }
            }
            out.push(event);
        }
    }
    // Stamps of one format order as their times do.
    out.sort_by(|a, b| a["timestamp"].as_str().cmp(&b["timestamp"].as_str()));
    out
}

fn stamp(at: chrono::DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Imports `events` in chunks; how many were accepted.
pub async fn import(http: &reqwest::Client, base: &str, token: &str, events: &[Value]) -> usize {
    let mut accepted = 0;
    for chunk in events.chunks(IMPORT_CHUNK) {
        let ndjson: String = chunk.iter().map(|e| format!("{e}\n")).collect();
        match http
            .post(format!("{base}/api/v1/imports"))
            .bearer_auth(token)
            .header("content-type", "application/x-ndjson")
            .body(ndjson)
            .send()
            .await
        {
            Ok(res) if res.status().is_success() => accepted += chunk.len(),
            Ok(res) => {
                let status = res.status();
                let detail = res.text().await.unwrap_or_default();
                tracing::warn!(%status, detail = %detail.chars().take(300).collect::<String>(), "demo history: import refused");
            }
            Err(e) => tracing::warn!(error = %e, "demo history: import not sent"),
        }
    }
    accepted
}

/// Runs demo traffic against the HTTP API at `base` until `shutdown` turns true.
pub fn spawn(
    base: String,
    admin_token: String,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let http = reqwest::Client::new();
        let site = match http
            .post(format!("{base}/api/v1/sites"))
            .bearer_auth(&admin_token)
            .json(&json!({"domain": "demo.pulse.local", "allowed_origins": ["https://demo.pulse.local"]}))
            .send()
            .await
        {
            Ok(res) if res.status().is_success() => res.json::<Value>().await.ok().and_then(|v| v["id"].as_str().map(str::to_owned)),
            Ok(res) => {
                tracing::warn!(status = %res.status(), "demo traffic: cannot create the demo site");
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "demo traffic: cannot reach the HTTP API");
                None
            }
        };
        // Goals, so web analytics' Goals panel has conversions to show.
        let goals = json!({"goals": [
            {"name": "Signed up", "path": "/signup"},
            {"name": "Read the blog", "path": "/blog*"},
            {"name": "Ordered", "event": "order"},
        ]});
        match http
            .put(format!("{base}/api/v1/web/goals"))
            .bearer_auth(&admin_token)
            .json(&goals)
            .send()
            .await
        {
            Ok(res) if res.status().is_success() => {}
            Ok(res) => tracing::warn!(status = %res.status(), "demo traffic: goals not set"),
            Err(e) => tracing::warn!(error = %e, "demo traffic: goals not set"),
        }
        let mut rng = fastrand::Rng::new();
        let past = history(&mut rng, Utc::now());
        let accepted = import(&http, &base, &admin_token, &past).await;
        tracing::info!(
            events = accepted,
            days = HISTORY_DAYS,
            "demo history imported and rolled up at every resolution"
        );
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut carry = 0.0;
        // Pages of visits under way, sent when their time comes (stamped on arrival, never
        // late): (when, page view).
        let mut visits: Vec<(chrono::DateTime<Utc>, Value)> = Vec::new();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
            let now = Utc::now();
            carry += rate() * seasonality(now) * surge(now);
            let count = carry.floor() as usize;
            carry -= count as f64;
            let mut batch = events(&mut rng, count, now);
            for first in &batch {
                for (after, page) in rest_of_visit(&mut rng, first) {
                    visits.push((now + chrono::Duration::seconds(after), page));
                }
            }
            let (due, later): (Vec<_>, Vec<_>) = visits.into_iter().partition(|(at, _)| *at <= now);
            visits = later;
            batch.extend(due.into_iter().map(|(_, page)| page));
            if !batch.is_empty() {
                let batch = json!({"events": batch});
                let sent = http
                    .post(format!("{base}/api/v1/events"))
                    .bearer_auth(&admin_token)
                    .json(&batch)
                    .send()
                    .await;
                if let Err(e) = sent {
                    tracing::warn!(error = %e, "demo traffic: events not sent");
                }
            }
            // One beacon a second stays under the per-client limit shared by every local client.
            if let Some(site) = &site {
                let beacon = json!({"site": site, "url": format!("https://demo.pulse.local{}", PAGES[rng.usize(..PAGES.len())]), "referrer": REFERRERS[rng.usize(..REFERRERS.len())]});
                let _ = http
                    .post(format!("{base}/api/v1/track"))
                    .header("origin", "https://demo.pulse.local")
                    .header("user-agent", AGENTS[rng.usize(..AGENTS.len())])
                    .header("content-type", "text/plain")
                    .body(beacon.to_string())
                    .send()
                    .await;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn afternoons_are_busier_than_nights_and_weekdays_than_weekends() {
        let at = |d, h| {
            Utc.with_ymd_and_hms(2026, 11, d, h, 0, 0)
                .single()
                .expect("time")
        };
        assert!(
            seasonality(at(23, 16)) > 2.0 * seasonality(at(23, 4)),
            "Monday 16:00 vs 04:00"
        );
        assert!(
            seasonality(at(23, 16)) > seasonality(at(22, 16)),
            "Monday vs Sunday"
        );
    }

    /// The moment the tests' history ends at.
    fn history_end() -> chrono::DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 10, 30, 0)
            .single()
            .expect("time")
    }

    #[test]
    fn the_streaming_detector_finds_the_incidents_of_the_demo_history_and_little_else() {
        use pulse_models::detect::{ALARM, Detector};
        let now = history_end();
        for seed in 1..=20 {
            // Given the history's hourly page views (one of 20 random draws), as the hourly
            // anomaly scan reads them
            let mut hours: std::collections::BTreeMap<i64, f64> = std::collections::BTreeMap::new();
            for e in history(&mut fastrand::Rng::with_seed(seed), now) {
                if e["kind"] == "page_view" {
                    let t = chrono::DateTime::parse_from_rfc3339(
                        e["timestamp"].as_str().expect("time"),
                    )
                    .expect("time")
                    .timestamp();
                    *hours.entry(t.div_euclid(3_600) * 3_600).or_default() += 1.0;
                }
            }
            let first = *hours.keys().next().expect("hours");
            let last = *hours.keys().last().expect("hours");
            // When the detector runs over every hour, in order, as the API's hourly scan does
            let mut detector = Detector::with_days(24);
            let (mut incidents, mut false_alarms) = (Vec::new(), 0);
            for hour in (first..=last).step_by(3_600) {
                let score = detector
                    .score(hours.get(&hour).copied().unwrap_or(0.0))
                    .score;
                let t = chrono::DateTime::from_timestamp(hour, 0).expect("time");
                if incident(t, now) > 1.0 {
                    incidents.push(score >= ALARM);
                } else if score >= ALARM {
                    false_alarms += 1;
                }
            }
            // Then it alarms on both incidents, and on few other hours of the 90 days
            assert_eq!(incidents, [true, true], "seed {seed}");
            assert!(
                false_alarms <= 10,
                "seed {seed}: {false_alarms} false alarms"
            );
        }
    }

    #[test]
    fn the_history_has_visits_of_several_pages_as_a_real_site_does() {
        let now = history_end();
        // Given the history's page views, grouped into visits per visitor (a new visit after
        // 30 minutes without a page, as sessions are counted)
        let mut last: std::collections::HashMap<String, (i64, usize)> = Default::default();
        let mut visits: Vec<(i64, usize)> = Vec::new();
        let mut previous = String::new();
        for e in history(&mut fastrand::Rng::with_seed(3), now) {
            let stamp = e["timestamp"].as_str().expect("time").to_owned();
            assert!(stamp >= previous, "oldest first");
            previous = stamp;
            if e["kind"] != "page_view" {
                continue;
            }
            let t = chrono::DateTime::parse_from_rfc3339(&previous)
                .expect("time")
                .timestamp();
            let visitor = e["visitor"].as_str().expect("visitor").to_owned();
            match last.get(&visitor) {
                Some((at, i)) if t - at < 1_800 => {
                    let i = *i;
                    visits[i].0 += t - at;
                    visits[i].1 += 1;
                    last.insert(visitor, (t, i));
                }
                _ => {
                    visits.push((0, 1));
                    last.insert(visitor, (t, visits.len() - 1));
                }
            }
        }
        // Then about half the visits bounce, and the others last half a minute or more
        let bounces = visits.iter().filter(|(_, pages)| *pages == 1).count();
        let rate = bounces as f64 / visits.len() as f64;
        assert!((0.35..0.6).contains(&rate), "bounce rate {rate}");
        let stayed: Vec<i64> = visits.iter().filter(|v| v.1 > 1).map(|v| v.0).collect();
        let mean = stayed.iter().sum::<i64>() as f64 / stayed.len() as f64;
        assert!((15.0..120.0).contains(&mean), "mean visit {mean} s");
    }

    #[test]
    fn ninety_days_of_history_pass_the_import_parser() {
        let now = history_end();
        let events = history(&mut fastrand::Rng::with_seed(1), now);
        assert!(events.len() > 90 * 24 * 4, "{}", events.len());
        let ndjson: String = events.iter().map(|e| format!("{e}\n")).collect();
        let tenant = pulse_core::identity::TenantId::parse("demo").expect("tenant");
        let limits = pulse_ingest::events::Limits {
            max_events: 100_000,
            max_body_bytes: 64 * 1024 * 1024,
            max_past_ms: 1825 * 86_400_000,
            ..Default::default()
        };
        let ctx = pulse_ingest::events::Context {
            tenant: &tenant,
            now_ms: now.timestamp_millis(),
            correlation_id: None,
            limits: &limits,
        };
        let parsed = pulse_ingest::imports::parse_import(
            ndjson.as_bytes(),
            pulse_ingest::imports::Format::Ndjson,
            &ctx,
        )
        .expect("valid history");
        let minutes: std::collections::BTreeSet<i64> =
            parsed.iter().map(|e| e.timestamp_ms / 60_000).collect();
        assert!(
            minutes.len() as i64 <= 3 * 90 * 24,
            "a minute an hour, the half minute before it for shoppers' earlier steps, and the \
             one after it for visits' later pages"
        );
        assert!(chunks_fit(&events));
        let rollups = pulse_metrics::history::History::of(&parsed)
            .rollups(&Default::default(), now.timestamp());
        let resolutions: std::collections::BTreeSet<_> =
            rollups.iter().map(|(at, _)| at.resolution).collect();
        assert_eq!(resolutions.len(), 4, "history at every resolution at once");
    }

    /// Every import chunk fits the endpoint's limits.
    fn chunks_fit(events: &[Value]) -> bool {
        events.chunks(IMPORT_CHUNK).all(|c| {
            let bytes: usize = c.iter().map(|e| e.to_string().len() + 1).sum();
            c.len() <= api_ingest::IMPORT_MAX_EVENTS && bytes <= api_ingest::IMPORT_MAX_BYTES
        })
    }

    #[test]
    fn every_shopper_views_before_carting_before_checking_out_before_paying() {
        // Given an hour of demo traffic
        let mut rng = fastrand::Rng::with_seed(7);
        let events = events(&mut rng, 5_000, Utc::now());
        // When its shop events are counted, and each shopper's visit read in time order
        // Then every step follows the one before it, and each step has fewer than the last
        let rank = |k: &str| {
            ["product_view", "add_to_cart", "checkout", "order"]
                .iter()
                .position(|x| *x == k)
        };
        let mut counts = [0usize; 4];
        for e in &events {
            if let Some(r) = e["kind"].as_str().and_then(rank) {
                counts[r] += 1;
            }
        }
        assert!(
            counts[0] > counts[1]
                && counts[1] > counts[2]
                && counts[2] > counts[3]
                && counts[3] > 0,
            "{counts:?}"
        );
        let journeys: Vec<Vec<&Value>> = events
            .chunk_by(|a, b| {
                a["visitor"] == b["visitor"]
                    && rank(b["kind"].as_str().unwrap_or_default()).is_some_and(|r| r > 0)
            })
            .filter(|c| c[0]["kind"] == "product_view")
            .map(|c| c.iter().collect())
            .collect();
        assert!(!journeys.is_empty());
        for j in journeys {
            let times: Vec<&str> = j.iter().filter_map(|e| e["timestamp"].as_str()).collect();
            assert!(times.windows(2).all(|w| w[0] < w[1]), "{times:?}");
            let ranks: Vec<usize> = j
                .iter()
                .filter_map(|e| e["kind"].as_str().and_then(rank))
                .collect();
            assert_eq!(ranks, (0..ranks.len()).collect::<Vec<_>>());
        }
    }

    #[test]
    fn generated_events_are_accepted_by_the_ingest_parser() {
        let mut rng = fastrand::Rng::with_seed(1);
        let now = Utc::now();
        let body = json!({"events": events(&mut rng, 500, now)}).to_string();
        let tenant = pulse_core::identity::TenantId::parse("demo").expect("tenant");
        let limits = pulse_ingest::events::Limits::default();
        let ctx = pulse_ingest::events::Context {
            tenant: &tenant,
            now_ms: now.timestamp_millis(),
            correlation_id: None,
            limits: &limits,
        };
        let parsed = pulse_ingest::events::parse_batch(body.as_bytes(), &ctx)
            .expect("every demo event is valid");
        let kinds: std::collections::BTreeSet<&str> = parsed.iter().map(|e| e.kind()).collect();
        assert!(
            kinds.is_superset(
                &[
                    "page_view",
                    "api_request",
                    "order",
                    "ml_job",
                    "metric",
                    "product_view",
                    "add_to_cart",
                    "checkout"
                ]
                .into_iter()
                .collect()
            )
        );
    }
}
