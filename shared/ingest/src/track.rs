//! Web analytics from the tracking script: a beacon body, enriched at the edge into a
//! `page_view` or custom `event`, privately.
//!
//! No cookies and no stored IP address: the visitor id is an HMAC-SHA256 of (site, IP, user
//! agent) keyed by a salt that rotates daily and is deleted after 48 hours, so a visitor is
//! recognisable within a day and never across days, and the id cannot be reversed to an IP.
//! The user agent becomes browser, OS and device class (woothee); the referrer becomes a
//! source; UTM parameters and CloudFront's viewer country become tags.

use crate::events::{Body, Event};
use pulse_core::error::ApiError;
use pulse_core::identity::TenantId;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Largest beacon body accepted.
pub const MAX_BEACON_BYTES: usize = 8 * 1024;

/// What the tracking script sends.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Beacon {
    /// The site id the script was installed with.
    pub site: String,
    /// `page_view` (default) or `event`.
    #[serde(default)]
    pub kind: Option<String>,
    /// The page URL (with query, for UTM parameters).
    pub url: String,
    #[serde(default)]
    pub referrer: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    /// A custom event's name.
    #[serde(default)]
    pub name: Option<String>,
    /// A custom event's properties.
    #[serde(default)]
    pub props: Option<Map<String, Value>>,
    /// A client id for the beacon, so a resent beacon is stored once.
    #[serde(default)]
    pub id: Option<String>,
}

/// A site: which tenant its traffic belongs to and which origins may send it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct Site {
    pub id: String,
    pub tenant: TenantId,
    pub domain: String,
    pub allowed_origins: Vec<String>,
}

impl Site {
    /// Whether a browser at `origin` may send this site's traffic.
    pub fn allows(&self, origin: &str) -> bool {
        let origin = origin.trim_end_matches('/');
        self.allowed_origins
            .iter()
            .any(|o| o.trim_end_matches('/').eq_ignore_ascii_case(origin))
    }
}

/// The request facts the enrichment needs; the IP is used for the hash and dropped.
#[derive(Debug, Clone)]
pub struct Client<'a> {
    pub ip: &'a str,
    pub user_agent: &'a str,
    pub country: Option<&'a str>,
}

/// What the user agent says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub browser: String,
    pub os: String,
    /// `desktop`, `mobile`, `tablet` or `other`.
    pub device: &'static str,
}

/// The user agent's browser, OS and device class, or `None` for a bot (crawlers, headless
/// browsers, HTTP libraries, and empty user agents).
pub fn agent(user_agent: &str) -> Option<Agent> {
    let ua = user_agent.trim();
    let lower = ua.to_ascii_lowercase();
    const BOT_TOKENS: &[&str] = &[
        "bot",
        "crawl",
        "spider",
        "slurp",
        "headless",
        "lighthouse",
        "curl/",
        "wget/",
        "python-",
        "go-http-client",
        "java/",
        "okhttp",
        "httpclient",
        "phantomjs",
        "puppeteer",
        "playwright",
        "preview",
        "monitor",
        "pingdom",
        "uptime",
    ];
    if ua.is_empty() || BOT_TOKENS.iter().any(|t| lower.contains(t)) {
        return None;
    }
    let parsed = woothee::parser::Parser::new().parse(ua)?;
    if parsed.category == "crawler" {
        return None;
    }
    let tablet = lower.contains("ipad")
        || lower.contains("tablet")
        || (lower.contains("android") && !lower.contains("mobile"));
    let device = match parsed.category {
        _ if tablet => "tablet",
        "pc" => "desktop",
        "smartphone" | "mobilephone" => "mobile",
        _ => "other",
    };
    Some(Agent {
        browser: parsed.name.to_owned(),
        os: parsed.os.to_owned(),
        device,
    })
}

/// The pseudonymous visitor id: HMAC-SHA256(salt, site | ip | user agent), 16 bytes hex.
pub fn visitor_id(salt: &[u8], site: &str, ip: &str, user_agent: &str) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, salt);
    let mut ctx = aws_lc_rs::hmac::Context::with_key(&key);
    for part in [site, ip, user_agent] {
        ctx.update(part.as_bytes());
        ctx.update(&[0]);
    }
    let tag = ctx.sign();
    tag.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The host of a URL, lower-cased and without `www.`.
fn host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let host = rest.split(['/', '?', '#']).next()?.split('@').next_back()?;
    let host = host.split(':').next()?.to_ascii_lowercase();
    Some(host.strip_prefix("www.").unwrap_or(&host).to_owned()).filter(|h| !h.is_empty())
}

/// Where a visit came from: `utm_source` if set, else the referrer's site (well-known ones by
/// name), else `Direct`. A referrer on the site itself is not a source.
pub fn source(referrer: Option<&str>, utm_source: Option<&str>, site_domain: &str) -> String {
    if let Some(utm) = utm_source.filter(|s| !s.is_empty()) {
        return utm.to_owned();
    }
    let site = site_domain
        .strip_prefix("www.")
        .unwrap_or(site_domain)
        .to_ascii_lowercase();
    match referrer.and_then(host) {
        None => "Direct".to_owned(),
        Some(h) if h == site || h.ends_with(&format!(".{site}")) => "Direct".to_owned(),
        Some(h) => {
            const KNOWN: &[(&str, &str)] = &[
                ("google.", "Google"),
                ("bing.com", "Bing"),
                ("duckduckgo.com", "DuckDuckGo"),
                ("yahoo.", "Yahoo"),
                ("news.ycombinator.com", "Hacker News"),
                ("reddit.com", "Reddit"),
                ("t.co", "Twitter"),
                ("twitter.com", "Twitter"),
                ("x.com", "Twitter"),
                ("facebook.com", "Facebook"),
                ("linkedin.com", "LinkedIn"),
                ("github.com", "GitHub"),
            ];
            KNOWN
                .iter()
                .find(|(pattern, _)| {
                    h == pattern.trim_end_matches('.')
                        || h.starts_with(pattern)
                        || h.ends_with(&format!(".{pattern}"))
                })
                .map_or(h.clone(), |(_, name)| (*name).to_owned())
        }
    }
}

/// The path and the UTM parameters of a page URL.
fn path_and_utm(url: &str) -> Result<(String, BTreeMap<String, String>), String> {
    let rest = url
        .split_once("://")
        .map(|(_, r)| r)
        .ok_or("url must be absolute (https://...)")?;
    let after_host = rest.find('/').map_or("/", |i| &rest[i..]);
    let (path, query) = after_host.split_once('?').unwrap_or((after_host, ""));
    let path = path.split('#').next().unwrap_or("/");
    let mut utm = BTreeMap::new();
    for pair in query.split('#').next().unwrap_or("").split('&') {
        if let Some((k, v)) = pair.split_once('=')
            && matches!(
                k,
                "utm_source" | "utm_medium" | "utm_campaign" | "utm_term" | "utm_content"
            )
            && !v.is_empty()
        {
            utm.insert(k.to_owned(), decode(v).chars().take(256).collect());
        }
    }
    Ok((
        if path.is_empty() {
            "/".to_owned()
        } else {
            path.chars().filter(|c| !c.is_control()).collect()
        },
        utm,
    ))
}

/// A query-string value: `+` is a space, then `%XX` escapes; control characters decoded from
/// escapes are dropped (they would reach tags, logs and exports).
fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .chars()
        .filter(|c| !c.is_control())
        .collect()
}

/// Free text from a beacon (a title, a referrer) without control characters, at most `max`.
fn text(s: String, max: usize) -> String {
    s.chars().filter(|c| !c.is_control()).take(max).collect()
}

/// Parses a beacon body.
pub fn parse_beacon(body: &[u8]) -> Result<Beacon, ApiError> {
    if body.len() > MAX_BEACON_BYTES {
        return Err(ApiError::PayloadTooLarge(format!(
            "a beacon is at most {MAX_BEACON_BYTES} bytes"
        )));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::Validation {
        detail: format!("the beacon is not valid: {e}"),
        errors: vec![pulse_core::problem::FieldError::at::<&str>(
            &[],
            e.to_string(),
        )],
    })
}

/// The event a beacon from `client` becomes for `site`, or why it is refused.
pub fn enrich(
    beacon: Beacon,
    site: &Site,
    client: &Client<'_>,
    agent: &Agent,
    visitor: String,
    now_ms: i64,
) -> Result<Event, ApiError> {
    let (path, utm) =
        path_and_utm(&beacon.url).map_err(|d| ApiError::invalid_field(&["url"], d))?;
    if path.chars().count() > 2048 {
        return Err(ApiError::invalid_field(
            &["url"],
            "the path is longer than 2048 characters",
        ));
    }
    let mut tags = BTreeMap::from([
        ("site".to_owned(), site.id.clone()),
        ("browser".to_owned(), agent.browser.clone()),
        ("os".to_owned(), agent.os.clone()),
        ("device".to_owned(), agent.device.to_owned()),
        (
            "source".to_owned(),
            source(
                beacon.referrer.as_deref(),
                utm.get("utm_source").map(String::as_str),
                &site.domain,
            ),
        ),
    ]);
    if let Some(c) = client
        .country
        .filter(|c| c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic()))
    {
        tags.insert("country".to_owned(), c.to_ascii_uppercase());
    }
    tags.extend(utm);
    let (name, body) = match beacon.kind.as_deref().unwrap_or("page_view") {
        "page_view" => (
            "page_view".to_owned(),
            Body::PageView {
                path,
                referrer: beacon
                    .referrer
                    .filter(|r| !r.is_empty())
                    .map(|r| text(r, 2048)),
                title: beacon.title.map(|t| text(t, 512)),
            },
        ),
        "event" => {
            let name = beacon.name.unwrap_or_default();
            // The same rule as `/api/v1/events`: a public beacon is no laxer than a token.
            crate::events::check_name(&name, 128).map_err(|detail| {
                ApiError::invalid_field(
                    &["name"],
                    format!("a custom event's name is 1 to 128 characters and {detail}"),
                )
            })?;
            tags.insert("path".to_owned(), path);
            let properties: Map<String, Value> = beacon
                .props
                .unwrap_or_default()
                .into_iter()
                .filter(|(_, v)| match v {
                    Value::String(_) | Value::Bool(_) => true,
                    Value::Number(n) => n.as_f64().is_some_and(crate::events::storable),
                    _ => false,
                })
                .take(32)
                .collect();
            (
                name,
                Body::Event {
                    value: None,
                    properties,
                },
            )
        }
        other => {
            return Err(ApiError::invalid_field(
                &["kind"],
                format!("{other:?} is not page_view or event"),
            ));
        }
    };
    let supplied = beacon.id.filter(|i| {
        (1..=64).contains(&i.len())
            && i.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
    });
    let supplied_id = supplied.is_some();
    let id = supplied.unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    Ok(Event {
        id,
        tenant: site.tenant.clone(),
        timestamp_ms: now_ms,
        name,
        tags,
        visitor: Some(visitor),
        correlation_id: None,
        supplied_id,
        imported: false,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
    const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
    const IPAD: &str = "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";

    fn site() -> Site {
        Site {
            id: "s1".into(),
            tenant: TenantId::parse("acme").expect("tenant"),
            domain: "example.com".into(),
            allowed_origins: vec![
                "https://example.com".into(),
                "https://www.example.com".into(),
            ],
        }
    }

    #[test]
    fn user_agents_become_browser_os_and_device_and_bots_are_dropped() {
        let c = agent(CHROME).expect("a browser");
        assert_eq!((c.browser.as_str(), c.device), ("Chrome", "desktop"));
        assert_eq!(agent(IPHONE).expect("a browser").device, "mobile");
        assert_eq!(agent(IPAD).expect("a browser").device, "tablet");
        for bot in [
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36",
            "curl/8.5.0",
            "",
        ] {
            assert!(agent(bot).is_none(), "{bot:?} is a bot");
        }
    }

    #[test]
    fn the_visitor_id_changes_with_the_salt_and_never_contains_the_ip() {
        let a = visitor_id(b"salt-monday", "s1", "203.0.113.9", CHROME);
        assert_eq!(
            a,
            visitor_id(b"salt-monday", "s1", "203.0.113.9", CHROME),
            "stable within a day"
        );
        assert_ne!(
            a,
            visitor_id(b"salt-tuesday", "s1", "203.0.113.9", CHROME),
            "unlinkable across days"
        );
        assert_ne!(
            a,
            visitor_id(b"salt-monday", "s2", "203.0.113.9", CHROME),
            "unlinkable across sites"
        );
        assert_eq!(a.len(), 32);
        assert!(!a.contains("203"));
    }

    #[test]
    fn sources_come_from_utm_then_referrer_then_direct() {
        assert_eq!(
            source(
                Some("https://www.google.com/search?q=x"),
                None,
                "example.com"
            ),
            "Google"
        );
        assert_eq!(
            source(
                Some("https://news.ycombinator.com/item?id=1"),
                None,
                "example.com"
            ),
            "Hacker News"
        );
        assert_eq!(
            source(Some("https://blog.other.org/post"), None, "example.com"),
            "blog.other.org"
        );
        assert_eq!(
            source(Some("https://example.com/pricing"), None, "example.com"),
            "Direct"
        );
        assert_eq!(source(None, None, "example.com"), "Direct");
        assert_eq!(
            source(
                Some("https://www.google.com/"),
                Some("newsletter"),
                "example.com"
            ),
            "newsletter"
        );
    }

    #[test]
    fn a_beacon_becomes_a_tagged_page_view_without_the_ip() {
        let beacon = parse_beacon(br#"{"site":"s1","url":"https://example.com/pricing?utm_source=mail&utm_campaign=black%20friday#top","referrer":"https://www.google.com/","title":"Pricing"}"#).expect("beacon");
        let client = Client {
            ip: "203.0.113.9",
            user_agent: CHROME,
            country: Some("de"),
        };
        let a = agent(CHROME).expect("browser");
        let e = enrich(
            beacon,
            &site(),
            &client,
            &a,
            "v123".into(),
            1_795_341_600_000,
        )
        .expect("event");
        assert_eq!(e.tenant.as_str(), "acme");
        assert!(matches!(e.body, Body::PageView { ref path, .. } if path == "/pricing"));
        assert_eq!(e.tags["source"], "mail", "utm_source wins");
        assert_eq!(e.tags["utm_campaign"], "black friday");
        assert_eq!(e.tags["country"], "DE");
        assert_eq!(e.tags["device"], "desktop");
        assert_eq!(e.visitor.as_deref(), Some("v123"));
        assert!(
            !serde_json::to_string(&e)
                .expect("json")
                .contains("203.0.113.9"),
            "no raw IP in the event"
        );
    }

    #[test]
    fn origins_must_be_allowed_exactly() {
        let s = site();
        assert!(s.allows("https://example.com"));
        assert!(s.allows("https://www.example.com/"));
        assert!(!s.allows("https://evil.example"));
        assert!(!s.allows("http://example.com"));
    }

    #[test]
    fn bad_beacons_are_precise_4xx() {
        assert_eq!(
            parse_beacon(b"{not json").expect_err("malformed").status(),
            400
        );
        assert_eq!(
            parse_beacon(br#"{"site":"s1","url":"/x","extra":1}"#)
                .expect_err("unknown field")
                .status(),
            400
        );
        assert_eq!(
            parse_beacon(&vec![b' '; MAX_BEACON_BYTES + 1])
                .expect_err("big")
                .status(),
            413
        );
        let b = parse_beacon(br#"{"site":"s1","url":"relative/path"}"#).expect("parses");
        let client = Client {
            ip: "1",
            user_agent: CHROME,
            country: None,
        };
        let a = agent(CHROME).expect("browser");
        assert_eq!(
            enrich(b, &site(), &client, &a, "v".into(), 0)
                .expect_err("relative url")
                .status(),
            400
        );
    }
}
