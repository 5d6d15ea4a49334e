//! `POST /api/v1/track`: the public endpoint of the tracking script.
//!
//! Keyed by a site id and refused (403) unless the browser's `Origin` is one of the site's
//! allowed origins. Bots are dropped (204, nothing stored). Each client IP may send
//! `TRACK_RATE_LIMIT` beacons a minute (429 with `Retry-After` past it), counted atomically
//! in DynamoDB under a salted hash of the IP. The raw IP is used for the visitor hash and the
//! rate-limit key and then dropped: it is never stored.

use lambda_http::http::StatusCode;
use lambda_http::http::header::{CONTENT_TYPE, ORIGIN, USER_AGENT};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use pulse_core::{ApiError, Config};
use pulse_http::{HttpHandler, empty, serve};
use pulse_ingest::track::{Client, agent, enrich, parse_beacon, visitor_id};
use pulse_store::app::DynamoApp;
use pulse_store::events::DynamoEvents;
use pulse_store::{EventWriter, Incomplete, SiteLookup, TrackStore};
use std::time::Duration;

/// The routes this crate serves (template.yaml routes them to this function, and a test
/// checks the two agree).
pub const ROUTES: &[&str] = &["POST /api/v1/track"];

const WINDOW_SECS: i64 = 60;
const WRITE_BUDGET: Duration = Duration::from_secs(4);

/// The tracking endpoint with its dependencies.
#[derive(Debug)]
pub struct Track<A, W> {
    app: A,
    writer: W,
    rate_limit: u64,
    clock: fn() -> i64,
}

/// Builds the handler from the function's configuration, as `main` and the local cloud do.
pub fn wire(config: &Config, aws: &aws_config::SdkConfig) -> Track<DynamoApp, DynamoEvents> {
    Track::new(
        DynamoApp::new(aws, &config.tables.app),
        DynamoEvents::new(aws, &config.tables.events, config.raw_retention_days)
            .with_claims(&config.tables.app),
        config.track_rate_limit,
    )
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl<A: SiteLookup + TrackStore, W: EventWriter> Track<A, W> {
    pub fn new(app: A, writer: W, rate_limit: u64) -> Self {
        Self {
            app,
            writer,
            rate_limit,
            clock: now_ms,
        }
    }

    /// The same endpoint reading time from `clock` (epoch ms), for tests.
    pub fn with_clock(self, clock: fn() -> i64) -> Self {
        Self { clock, ..self }
    }

    async fn respond(&self, req: Request) -> Result<Response<Body>, ApiError> {
        let header = |name| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
        };
        // sendBeacon posts text/plain (no CORS preflight); fetch may post JSON.
        let media = header(CONTENT_TYPE)
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if !matches!(media.as_str(), "text/plain" | "application/json" | "") {
            return Err(ApiError::UnsupportedMediaType(format!(
                "send the beacon as text/plain or application/json, not {media:?}"
            )));
        }
        // The limit comes first: every beacon of a client counts, refused ones too, so a
        // flood of bad beacons costs one counter write each and nothing more.
        let ip = match req.request_context_ref() {
            Some(RequestContext::ApiGatewayV2(ctx)) => {
                ctx.http.source_ip.clone().unwrap_or_default()
            }
            _ => String::new(),
        };
        let now_ms = (self.clock)();
        let day = chrono::DateTime::from_timestamp_millis(now_ms)
            .map(|t| t.format("%Y-%m-%d").to_string())
            .unwrap_or_default();
        let salt = self.app.daily_salt(&day).await?;
        let now_s = now_ms.div_euclid(1000);
        let window = now_s - now_s.rem_euclid(WINDOW_SECS);
        let client_key = visitor_id(&salt, "rate-limit", &ip, "");
        let hits = self
            .app
            .count_request(&client_key, window, WINDOW_SECS)
            .await?;
        if hits > self.rate_limit {
            return Err(ApiError::RateLimited {
                retry_after_secs: u64::try_from(window + WINDOW_SECS - now_s)
                    .unwrap_or(1)
                    .max(1),
            });
        }
        let bytes: &[u8] = match req.body() {
            Body::Text(t) => t.as_bytes(),
            Body::Binary(b) => b,
            _ => b"",
        };
        let beacon = parse_beacon(bytes)?;
        let site = self
            .app
            .site(&beacon.site)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no site {:?}", beacon.site)))?;
        let origin = header(ORIGIN);
        if !site.allows(origin) {
            return Err(ApiError::Forbidden(format!(
                "origin {origin:?} may not send traffic for this site"
            )));
        }
        let user_agent = header(USER_AGENT);
        let Some(agent) = agent(user_agent) else {
            tracing::debug!(site = %site.id, "bot dropped");
            return Ok(empty(StatusCode::NO_CONTENT));
        };
        let visitor = visitor_id(&salt, &site.id, &ip, user_agent);
        let client = Client {
            ip: &ip,
            user_agent,
            country: req
                .headers()
                .get("cloudfront-viewer-country")
                .and_then(|v| v.to_str().ok()),
        };
        let event = enrich(beacon, &site, &client, &agent, visitor, now_ms)?;
        let deadline = tokio::time::Instant::now() + WRITE_BUDGET;
        self.writer
            .write_events(std::slice::from_ref(&event), deadline)
            .await
            .map_err(
                |Incomplete {
                     stored,
                     unstored,
                     last_error,
                 }| ApiError::PartiallyStored {
                    stored,
                    unstored,
                    source: last_error.map(|e| Box::new(e) as _),
                },
            )?;
        Ok(empty(StatusCode::ACCEPTED))
    }
}

impl<A: SiteLookup + TrackStore + 'static, W: EventWriter + 'static> HttpHandler for Track<A, W> {
    async fn handle(&self, req: Request) -> Result<Response<Body>, lambda_http::Error> {
        serve(req, |req| self.respond(req)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pulse_core::identity::TenantId;
    use pulse_ingest::events::Event;
    use pulse_ingest::track::Site;
    use pulse_store::StoreError;
    use serde_json::json;
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    const CHROME: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

    #[derive(Default)]
    struct Memory {
        counts: Mutex<HashMap<(String, i64), u64>>,
    }

    /// Keeps what it writes where the test can read it.
    #[derive(Default, Clone)]
    struct Writer(Arc<Mutex<Vec<Event>>>);

    impl SiteLookup for Memory {
        async fn site(&self, id: &str) -> Result<Option<Site>, StoreError> {
            Ok((id == "s1").then(|| Site {
                id: "s1".into(),
                tenant: TenantId::parse("acme").expect("tenant"),
                domain: "example.com".into(),
                allowed_origins: vec!["https://example.com".into()],
            }))
        }
    }

    impl TrackStore for Memory {
        async fn daily_salt(&self, day: &str) -> Result<Vec<u8>, StoreError> {
            Ok(day.as_bytes().to_vec())
        }
        async fn count_request(
            &self,
            client: &str,
            window: i64,
            _: i64,
        ) -> Result<u64, StoreError> {
            let mut c = self.counts.lock().expect("lock");
            let n = c.entry((client.to_owned(), window)).or_default();
            *n += 1;
            Ok(*n)
        }
    }

    impl EventWriter for Writer {
        async fn write_events(
            &self,
            events: &[Event],
            _: tokio::time::Instant,
        ) -> Result<(), Incomplete> {
            self.0.lock().expect("lock").extend_from_slice(events);
            Ok(())
        }

        async fn write_imported(
            &self,
            _: &[Event],
            _: tokio::time::Instant,
        ) -> Result<(), Incomplete> {
            unreachable!("beacons are never imports")
        }
    }

    fn beacon(origin: &str, ua: &str, body: serde_json::Value) -> Request {
        let event = json!({
            "version": "2.0", "routeKey": "POST /api/v1/track", "rawPath": "/api/v1/track", "rawQueryString": "",
            "headers": {"content-type": "text/plain;charset=UTF-8", "origin": origin, "user-agent": ua, "cloudfront-viewer-country": "NL"},
            "requestContext": {
                "accountId": "1", "apiId": "a", "domainName": "d", "requestId": "r", "routeKey": "POST /api/v1/track",
                "stage": "$default", "time": "22/Nov/2026:10:00:00 +0000", "timeEpoch": 0,
                "http": {"method": "POST", "path": "/api/v1/track", "protocol": "HTTP/1.1", "sourceIp": "198.51.100.23", "userAgent": ua}
            },
            "body": body.to_string(), "isBase64Encoded": false
        });
        lambda_http::request::from_str(&event.to_string()).expect("HTTP API event")
    }

    fn track(limit: u64) -> Track<Memory, Writer> {
        Track::new(Memory::default(), Writer::default(), limit).with_clock(|| 1_795_341_630_000)
    }

    fn page() -> serde_json::Value {
        json!({"site": "s1", "url": "https://example.com/docs?utm_source=hn", "referrer": "https://news.ycombinator.com/"})
    }

    #[tokio::test]
    async fn a_page_view_is_stored_with_a_visitor_hash_and_no_ip() {
        let t = track(100);
        let res = t
            .handle(beacon("https://example.com", CHROME, page()))
            .await
            .expect("response");
        assert_eq!(res.status(), 202);
        let written = t.writer.0.lock().expect("lock");
        let e = &written[0];
        assert_eq!(e.tenant.as_str(), "acme");
        assert_eq!(e.tags["source"], "hn");
        assert_eq!(e.tags["country"], "NL");
        assert_eq!(e.visitor.as_deref().map(str::len), Some(32));
        assert!(
            !serde_json::to_string(e)
                .expect("json")
                .contains("198.51.100.23")
        );
    }

    #[tokio::test]
    async fn a_wrong_origin_is_403_and_an_unknown_site_404() {
        let t = track(100);
        assert_eq!(
            t.handle(beacon("https://evil.example", CHROME, page()))
                .await
                .expect("response")
                .status(),
            403
        );
        let mut other = page();
        other["site"] = json!("nope");
        assert_eq!(
            t.handle(beacon("https://example.com", CHROME, other))
                .await
                .expect("response")
                .status(),
            404
        );
        assert!(t.writer.0.lock().expect("lock").is_empty());
    }

    #[tokio::test]
    async fn bots_are_dropped_with_204_and_not_counted() {
        let t = track(100);
        let res = t
            .handle(beacon(
                "https://example.com",
                "Mozilla/5.0 (compatible; bingbot/2.0)",
                page(),
            ))
            .await
            .expect("response");
        assert_eq!(res.status(), 204);
        assert!(t.writer.0.lock().expect("lock").is_empty());
    }

    #[tokio::test]
    async fn past_the_rate_limit_is_429_with_retry_after() {
        let t = track(2);
        for _ in 0..2 {
            assert_eq!(
                t.handle(beacon("https://example.com", CHROME, page()))
                    .await
                    .expect("response")
                    .status(),
                202
            );
        }
        let res = t
            .handle(beacon("https://example.com", CHROME, page()))
            .await
            .expect("response");
        assert_eq!(res.status(), 429);
        assert_eq!(
            res.headers()["retry-after"],
            "30",
            "the clock is 30 s into its minute"
        );
        assert_eq!(t.writer.0.lock().expect("lock").len(), 2);
    }

    #[tokio::test]
    async fn refused_beacons_count_against_the_rate_limit_too() {
        // Given a limit of 2 and a client sending beacons from an origin the site refuses
        let t = track(2);
        for _ in 0..2 {
            let res = t
                .handle(beacon("https://evil.example", CHROME, page()))
                .await
                .expect("response");
            assert_eq!(res.status(), 403);
        }
        // When it goes on, with bad origins, unknown sites or malformed bodies
        for body in [
            page(),
            json!({"site": "nope", "url": "https://x/"}),
            json!("oops"),
        ] {
            let res = t
                .handle(beacon("https://evil.example", CHROME, body))
                .await
                .expect("response");
            // Then it is limited before any lookup
            assert_eq!(res.status(), 429);
        }
    }

    #[tokio::test]
    async fn a_custom_event_name_follows_the_api_rules() {
        let t = track(100);
        for name in [
            "x#y|z",
            "=HYPERLINK(\"http://evil.example\",\"x\")",
            "sign\u{0}up",
            "注册\nsignup",
            "page_view#1m#0000000000000000",
            "__totals__",
        ] {
            let body =
                json!({"site": "s1", "kind": "event", "name": name, "url": "https://example.com/"});
            let res = t
                .handle(beacon("https://example.com", CHROME, body))
                .await
                .expect("response");
            assert_eq!(res.status(), 400, "{name}");
        }
        assert!(
            t.writer.0.lock().expect("lock").is_empty(),
            "nothing stored"
        );
    }
}
