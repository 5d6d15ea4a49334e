//! The WebSocket API through the local cloud (issue #5): `$connect` checks the JWT in the
//! `token` query parameter; frames are answered on the connection; roles bound subscriptions;
//! the stream pushes updates at each subscription's interval, by metric or by query;
//! `$disconnect` forgets the connection.

use futures::{SinkExt, StreamExt};
use pulse_local::LocalCloud;
use pulse_tests::{scan, start};
use serde_json::Value;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

async fn next_text(
    ws: &mut (impl StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin),
) -> Value {
    let frame = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("a frame within 5 s")
        .expect("open")
        .expect("frame");
    serde_json::from_str(frame.to_text().expect("text")).expect("json")
}

fn app_table(cloud: &LocalCloud) -> String {
    cloud
        .model()
        .tables
        .iter()
        .find(|t| t.logical_id == "AppTable")
        .expect("AppTable")
        .name
        .clone()
}

async fn connections(cloud: &LocalCloud, tenant: &str) -> usize {
    scan(cloud.sdk_config(), &app_table(cloud), Some(tenant))
        .await
        .iter()
        .filter(|i| {
            i.get("pk")
                .and_then(|v| v.as_s().ok())
                .is_some_and(|pk| pk.starts_with("conn#"))
        })
        .count()
}

/// Waits until `tenant` has no connection item, failing after `secs`.
async fn until_no_connections(cloud: &LocalCloud, tenant: &str, secs: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while connections(cloud, tenant).await > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{tenant}'s connection item stayed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_connection_needs_a_valid_token_answers_frames_and_is_forgotten_on_close() {
    let cloud = start().await;
    let url = cloud
        .ws_url()
        .expect("the template declares a WebSocket API");
    // Given no token, a forged one and another issuer's audience: refused with 401
    for query in ["", "?token=", "?token=eyJhbGciOiJSUzI1NiJ9.e30.c2ln"] {
        let refused = tokio_tungstenite::connect_async(format!("{url}/{query}")).await;
        let Err(tokio_tungstenite::tungstenite::Error::Http(res)) = refused else {
            panic!("{query}: the upgrade should be refused")
        };
        assert_eq!(res.status(), 401, "{query}");
    }
    // Given a page view a moment ago, once the stream has counted it
    let admin = cloud.token("live-a", "admin").expect("token");
    let res = reqwest::Client::new()
        .post(format!("{}/api/v1/events", cloud.http_url()))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"events": [{"kind": "page_view", "path": "/", "visitor": "v1"}]}))
        .send()
        .await
        .expect("ingest");
    assert_eq!(res.status(), 202);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let cards = reqwest::Client::new()
            .get(format!(
                "{}/api/v1/metrics?cards=page_views_today",
                cloud.http_url()
            ))
            .bearer_auth(&admin)
            .send()
            .await
            .expect("cards")
            .json::<Value>()
            .await
            .expect("json");
        if cards["cards"][0]["value"].as_f64() >= Some(1.0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not counted: {cards}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // When a viewer connects with a valid token
    let token = cloud.token("live-a", "viewer").expect("token");
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{url}/?token={token}"))
        .await
        .expect("connected");
    assert_eq!(connections(&cloud, "live-a").await, 1);
    // Then ping is answered, a malformed frame gets an error frame and the socket stays open
    ws.send(Message::text(r#"{"action":"ping","id":"p1"}"#))
        .await
        .expect("sent");
    assert_eq!(next_text(&mut ws).await["type"], "pong");
    ws.send(Message::text("{oops")).await.expect("sent");
    let bad = next_text(&mut ws).await;
    assert_eq!(
        (bad["type"].as_str(), bad["status"].as_u64()),
        (Some("error"), Some(400))
    );
    // And business metrics are refused to a viewer, page views acknowledged
    ws.send(Message::text(
        r#"{"action":"subscribe","id":"c1","metrics":["order"],"interval":"5s"}"#,
    ))
    .await
    .expect("sent");
    let refused = next_text(&mut ws).await;
    assert_eq!(
        (refused["status"].as_u64(), refused["id"].as_str()),
        (Some(403), Some("c1"))
    );
    ws.send(Message::text(
        r#"{"action":"subscribe","id":"c2","metrics":["page_view"],"interval":"1s"}"#,
    ))
    .await
    .expect("sent");
    let ack = next_text(&mut ws).await;
    assert_eq!(
        (ack["type"].as_str(), ack["subscription"].as_str()),
        (Some("ack"), Some("s1"))
    );
    // And a snapshot of the current values follows at once, today's page view included
    let snapshot = next_text(&mut ws).await;
    assert_eq!(
        (snapshot["type"].as_str(), snapshot["seq"].as_u64()),
        (Some("snapshot"), Some(1)),
        "{snapshot}"
    );
    assert!(
        snapshot["data"]["page_view"]["today"]["count"].as_u64() >= Some(1),
        "{snapshot}"
    ); // And closing the socket removes the connection and its subscriptions
    ws.close(None).await.expect("closed");
    until_no_connections(&cloud, "live-a", 5).await;
    cloud.stop().await;
}

async fn connect(
    url: &str,
    token: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    tokio_tungstenite::connect_async(format!("{url}/?token={token}"))
        .await
        .expect("connected")
        .0
}

async fn subscribe(
    ws: &mut (
             impl SinkExt<Message>
             + StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
             + Unpin
         ),
    interval: &str,
) {
    let frame = format!(
        r#"{{"action":"subscribe","id":"c","metrics":["page_view"],"interval":"{interval}"}}"#
    );
    let _ = ws.send(Message::text(frame)).await;
    assert_eq!(next_text(ws).await["type"], "ack");
    assert_eq!(next_text(ws).await["type"], "snapshot");
}

async fn view(cloud: &LocalCloud, tenant: &str) {
    let res = reqwest::Client::new()
        .post(format!("{}/api/v1/events", cloud.http_url()))
        .bearer_auth(cloud.token(tenant, "admin").expect("token"))
        .json(&serde_json::json!({"events": [{"kind": "page_view", "path": "/live", "visitor": "v9"}]}))
        .send()
        .await
        .expect("ingest");
    assert_eq!(res.status(), 202);
}

/// The next frame within `secs`, if any.
async fn frame_within(
    ws: &mut (impl StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin),
    secs: u64,
) -> Option<Value> {
    let frame = tokio::time::timeout(Duration::from_secs(secs), ws.next())
        .await
        .ok()??;
    serde_json::from_str(frame.ok()?.to_text().ok()?).ok()
}

/// The first `metrics_update` after a snapshot (seq 2), which must arrive within 2 s.
async fn first_update(
    ws: &mut (impl StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin),
) -> Value {
    let update = frame_within(ws, 2).await.expect("an update within 2 s");
    assert_eq!(
        (update["type"].as_str(), update["seq"].as_u64()),
        (Some("metrics_update"), Some(2)),
        "{update}"
    );
    update
}

#[tokio::test]
async fn a_new_event_reaches_subscribers_of_its_tenant_at_their_interval() {
    let cloud = start().await;
    let url = cloud.ws_url().expect("a WebSocket API");
    // Given a 1 s and a 30 s subscriber of tenant push-a, and a 1 s subscriber of push-b
    let mut fast = connect(&url, &cloud.token("push-a", "viewer").expect("token")).await;
    subscribe(&mut fast, "1s").await;
    let mut slow = connect(&url, &cloud.token("push-a", "viewer").expect("token")).await;
    subscribe(&mut slow, "30s").await;
    let mut other = connect(&url, &cloud.token("push-b", "viewer").expect("token")).await;
    subscribe(&mut other, "1s").await;
    // When a page view of push-a is ingested, a second after the snapshots
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let sent = std::time::Instant::now();
    view(&cloud, "push-a").await;
    // Then the 1 s subscriber gets an update within 2 s, counting it
    let update = first_update(&mut fast).await;
    // (`count` is the current minute's: the view may have been counted in the minute before)
    assert!(
        update["data"]["page_view"]["today"]["count"].as_u64() >= Some(1),
        "{update}"
    );
    assert!(sent.elapsed() < Duration::from_secs(2));
    // And the 30 s subscriber, whose snapshot was a second ago, gets nothing yet
    assert!(
        frame_within(&mut slow, 2).await.is_none(),
        "a 30 s subscription took a 1 s update"
    );
    // And push-b's subscriber never sees push-a's updates
    assert!(
        frame_within(&mut other, 1).await.is_none(),
        "another tenant's update leaked"
    );
    cloud.stop().await;
}

#[tokio::test]
async fn a_connection_gone_without_closing_is_forgotten_at_the_next_push() {
    let cloud = start().await;
    // Given a connection item whose socket no longer exists (a client that vanished), with a
    // 1 s subscription to page views
    let app = pulse_store::app::DynamoApp::new(cloud.sdk_config(), &app_table(&cloud));
    let ghost = pulse_metrics::live::Connection {
        id: "ghost-connection".into(),
        tenant: pulse_core::identity::TenantId::parse("push-g").expect("tenant"),
        subject: "u".into(),
        roles: vec![pulse_core::identity::Role::Viewer],
        connected_at: chrono::Utc::now().timestamp(),
        subscriptions: vec![pulse_metrics::live::Subscription {
            id: "s1".into(),
            metrics: vec!["page_view".into()],
            query: None,
            interval: pulse_metrics::live::Interval::OneSecond,
            seq: 1,
            sent_ms: 0,
        }],
        version: 0,
    };
    use pulse_store::ConnectionStore;
    app.put_connection(&ghost).await.expect("stored");
    assert_eq!(connections(&cloud, "push-g").await, 1);
    // When an event of its tenant is ingested
    view(&cloud, "push-g").await;
    // Then the post answers 410 and the connection item is deleted
    until_no_connections(&cloud, "push-g", 10).await;
    cloud.stop().await;
}

#[tokio::test]
async fn a_query_subscription_gets_the_new_points_of_its_groups() {
    let cloud = start().await;
    let url = cloud.ws_url().expect("a WebSocket API");
    // Given a subscriber to page views by path (`web.pages`) over the last hour, by minute
    let mut ws = connect(&url, &cloud.token("push-q", "viewer").expect("token")).await;
    let frame = r#"{"action":"subscribe","id":"q","interval":"1s","query":{"metric_name":"web.pages","time_range":"1h","interval":"1m","aggregation":"count","group_by":["path"]}}"#;
    ws.send(Message::text(frame)).await.expect("sent");
    assert_eq!(next_text(&mut ws).await["type"], "ack");
    let snapshot = next_text(&mut ws).await;
    assert_eq!(snapshot["type"], "snapshot", "{snapshot}");
    assert_eq!(
        snapshot["data"]["data"],
        serde_json::json!([]),
        "no views yet"
    );
    // When a page view of /live is ingested
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    view(&cloud, "push-q").await;
    // Then an update within 2 s carries the current minute's point of /live, from `since` on
    let update = first_update(&mut ws).await;
    let data = &update["data"];
    let since = data["since"].as_str().expect("an update says since when");
    let points = data["data"].as_array().expect("points");
    assert!(!points.is_empty(), "{update}");
    for p in points {
        assert_eq!(p["tags"]["path"], "/live");
        assert!(p["timestamp"].as_str() >= Some(since), "{p} before {since}");
    }
    let total: f64 = points.iter().filter_map(|p| p["value"].as_f64()).sum();
    assert!(total >= 1.0, "{update}");
    assert!(data["range"]["start"].as_str() < Some(since));
    cloud.stop().await;
}

#[tokio::test]
async fn a_change_inside_the_interval_reaches_the_subscriber_when_the_interval_ends() {
    let cloud = start().await;
    let url = cloud.ws_url().expect("a WebSocket API");
    // Given a 5 s subscriber whose snapshot has just been sent
    let mut ws = connect(&url, &cloud.token("push-i", "viewer").expect("token")).await;
    subscribe(&mut ws, "5s").await;
    let subscribed = std::time::Instant::now();
    // When a page view is ingested at once, and nothing follows it
    view(&cloud, "push-i").await;
    // Then it arrives when the interval ends (not before it, and at most a second or two after)
    let update = frame_within(&mut ws, 9)
        .await
        .expect("the change within the interval + delivery");
    let waited = subscribed.elapsed();
    assert_eq!(
        (update["type"].as_str(), update["seq"].as_u64()),
        (Some("metrics_update"), Some(2)),
        "{update}"
    );
    // (`count` is the current minute's: the view may have been counted in the minute before)
    assert!(
        update["data"]["page_view"]["today"]["count"].as_u64() >= Some(1),
        "{update}"
    );
    assert!(
        waited >= Duration::from_millis(4_000) && waited < Duration::from_secs(8),
        "waited {waited:?}"
    );
    // And it is sent once: nothing else follows without a new change
    assert!(frame_within(&mut ws, 6).await.is_none());
    cloud.stop().await;
}

#[tokio::test]
async fn a_message_over_the_limit_closes_the_socket_with_1009() {
    let cloud = start().await;
    let url = cloud.ws_url().expect("a WebSocket API");
    let mut ws = connect(&url, &cloud.token("push-big", "viewer").expect("token")).await;
    // When a client sends a 200 KB frame
    let big = format!(r#"{{"action":"ping","id":"{}"}}"#, "x".repeat(200 * 1024));
    let _ = ws.send(Message::text(big)).await;
    // Then the socket is closed with 1009, as API Gateway does
    let mut code = None;
    while let Ok(Some(frame)) = tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
        match frame {
            Ok(Message::Close(Some(c))) => {
                code = Some(u16::from(c.code));
                break;
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    assert_eq!(code, Some(1009));
    cloud.stop().await;
}

#[tokio::test]
async fn a_subscription_flood_is_refused_cheaply_and_pings_are_still_answered() {
    let cloud = start().await;
    let url = cloud.ws_url().expect("a WebSocket API");
    let mut ws = connect(&url, &cloud.token("push-flood", "viewer").expect("token")).await;
    // When a client sends 200 subscribes, then a ping
    for i in 0..200 {
        let frame = format!(
            r#"{{"action":"subscribe","id":"f{i}","metrics":["page_view"],"interval":"1s"}}"#
        );
        ws.send(Message::text(frame)).await.expect("sent");
    }
    ws.send(Message::text(r#"{"action":"ping","id":"still-there"}"#))
        .await
        .expect("sent");
    // Then 20 are acknowledged, every other one is refused with 409 naming its id, and the
    // ping is answered
    let started = std::time::Instant::now();
    let (mut acks, mut refused) = (0, 0);
    loop {
        let frame = frame_within(&mut ws, 30).await.expect("frames keep coming");
        match (frame["type"].as_str(), frame["status"].as_u64()) {
            (Some("ack"), _) => acks += 1,
            (Some("error"), Some(409)) => {
                assert!(frame["id"].as_str().is_some_and(|id| id.starts_with('f')));
                refused += 1;
            }
            (Some("pong"), _) => break,
            _ => {}
        }
    }
    assert_eq!((acks, refused), (20, 180));
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    cloud.stop().await;
}
