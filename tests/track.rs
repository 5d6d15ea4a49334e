//! Web analytics through the local cloud: sites managed by admins, beacons from the tracking
//! script checked against the site's origins, bots dropped, clients rate-limited, and no raw
//! IP address stored anywhere.

use pulse_tests::cloud;
use serde_json::{Value, json};

const CHROME: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

async fn create_site(http: &str, token: &str, domain: &str) -> Value {
    let res = reqwest::Client::new()
        .post(format!("{http}/api/v1/sites"))
        .bearer_auth(token)
        .json(&json!({"domain": domain, "allowed_origins": [format!("https://{domain}")]}))
        .send()
        .await
        .expect("response");
    assert_eq!(res.status(), 201);
    res.json().await.expect("json")
}

async fn beacon(http: &str, origin: &str, ua: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{http}/api/v1/track"))
        .header("origin", origin)
        .header("user-agent", ua)
        .header("content-type", "text/plain;charset=UTF-8")
        .body(body.to_string())
        .send()
        .await
        .expect("response")
}

#[tokio::test]
async fn admins_manage_their_sites_and_other_tenants_cannot_see_them() {
    let c = cloud();
    let http = reqwest::Client::new();
    let admin = c.token("sites-a", "admin");
    let site = create_site(&c.http, &admin, "shop.example").await;
    let id = site["id"].as_str().expect("id").to_owned();
    let list: Value = http
        .get(format!("{}/api/v1/sites", c.http))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert!(
        list["sites"]
            .as_array()
            .expect("sites")
            .iter()
            .any(|s| s["id"] == id.as_str())
    );
    // Another tenant's admin sees nothing of it.
    let other = c.token("sites-b", "admin");
    let foreign = http
        .get(format!("{}/api/v1/sites/{id}", c.http))
        .bearer_auth(&other)
        .send()
        .await
        .expect("read");
    assert_eq!(foreign.status(), 404);
    assert_eq!(
        http.delete(format!("{}/api/v1/sites/{id}", c.http))
            .bearer_auth(&other)
            .send()
            .await
            .expect("delete")
            .status(),
        404
    );
    // A viewer may not manage sites; a bad origin is a precise 400.
    let viewer = c.token("sites-a", "viewer");
    assert_eq!(
        http.get(format!("{}/api/v1/sites", c.http))
            .bearer_auth(&viewer)
            .send()
            .await
            .expect("list")
            .status(),
        403
    );
    let bad = http
        .put(format!("{}/api/v1/sites/{id}", c.http))
        .bearer_auth(&admin)
        .json(&json!({"domain": "shop.example", "allowed_origins": ["https://shop.example/path"]}))
        .send()
        .await
        .expect("put");
    assert_eq!(bad.status(), 400);
    let problem: Value = bad.json().await.expect("json");
    assert_eq!(problem["errors"][0]["pointer"], "#/allowed_origins/0");
    // Replace, then delete.
    let replaced = http
        .put(format!("{}/api/v1/sites/{id}", c.http))
        .bearer_auth(&admin)
        .json(&json!({"domain": "shop.example", "allowed_origins": ["https://shop.example", "https://m.shop.example"]}))
        .send()
        .await
        .expect("put");
    assert_eq!(replaced.status(), 200);
    assert_eq!(
        http.delete(format!("{}/api/v1/sites/{id}", c.http))
            .bearer_auth(&admin)
            .send()
            .await
            .expect("delete")
            .status(),
        204
    );
    assert_eq!(
        http.get(format!("{}/api/v1/sites/{id}", c.http))
            .bearer_auth(&admin)
            .send()
            .await
            .expect("read")
            .status(),
        404
    );
}

#[tokio::test]
async fn beacons_are_stored_for_the_sites_tenant_bots_dropped_wrong_origins_refused_and_no_ip_kept()
{
    let c = cloud();
    let site = create_site(&c.http, &c.token("track-t", "admin"), "blog.example").await;
    let id = site["id"].as_str().expect("id");
    let page = json!({"site": id, "url": "https://blog.example/posts/1?utm_source=newsletter", "referrer": "https://www.google.com/", "title": "Post"});
    // A browser on the site's origin is counted.
    assert_eq!(
        beacon(&c.http, "https://blog.example", CHROME, &page)
            .await
            .status(),
        202
    );
    // Another origin is refused; a bot is dropped without being stored.
    assert_eq!(
        beacon(&c.http, "https://evil.example", CHROME, &page)
            .await
            .status(),
        403
    );
    let bot = beacon(
        &c.http,
        "https://blog.example",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        &page,
    )
    .await;
    assert_eq!(bot.status(), 204);
    let stored: Vec<Value> = c
        .scan("EventsTable", Some("track-t"))
        .await
        .iter()
        .filter_map(|i| serde_json::from_str(i.get("data")?.as_s().ok()?).ok())
        .collect();
    assert_eq!(
        stored.len(),
        1,
        "one page view; the bot and the foreign origin stored nothing"
    );
    assert_eq!(stored[0]["path"], "/posts/1");
    assert_eq!(stored[0]["tags"]["source"], "newsletter");
    assert_eq!(stored[0]["tags"]["device"], "desktop");
    assert_eq!(stored[0]["visitor"].as_str().map(str::len), Some(32));
    // No table holds the client's raw IP address.
    for table in &c.model.tables {
        for item in c.scan(&table.logical_id, None).await {
            let text = format!("{item:?}");
            assert!(
                !text.contains("127.0.0.1"),
                "{} holds a raw IP: {text}",
                table.logical_id
            );
        }
    }
}

#[tokio::test]
async fn past_the_rate_limit_a_client_gets_429_with_retry_after() {
    // A local cloud of its own, with the template parameter TrackRateLimit set to 3.
    let state = tempfile::tempdir().expect("tempdir").keep();
    let mut opts = pulse_local::Options::ephemeral(state);
    opts.parameters.insert("TrackRateLimit".into(), "3".into());
    let own = pulse_local::LocalCloud::start(opts)
        .await
        .expect("local cloud");
    let token = own.token("rate-t", "admin").expect("token");
    let site = create_site(&own.http_url(), &token, "rate.example").await;
    let page = json!({"site": site["id"], "url": "https://rate.example/"});
    // Seven beacons with a limit of three: even if a minute window rolls over between two of
    // them, one window holds at least four, so a 429 must come.
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..7 {
        let res = beacon(&own.http_url(), "https://rate.example", CHROME, &page).await;
        statuses.push(res.status().as_u16());
        if let Some(v) = res
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
        {
            retry_after = Some(v.to_owned());
        }
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 202 || *s == 429),
        "{statuses:?}"
    );
    let secs: u64 = retry_after
        .expect("Retry-After on the 429")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&secs), "{secs}");
    own.stop().await;
}
