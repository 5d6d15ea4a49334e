//! The function in-process against an in-memory connection store (tokens are verified against
//! a real issuer in `tests/live.rs`, through the local cloud).

use super::*;
use pulse_core::identity::{Role, TenantId};
use pulse_metrics::aggregate::{Bucket, SeriesKey};

use std::collections::BTreeMap;
use std::sync::Mutex;

/// 2026-11-22T10:00:30Z.
const NOW: i64 = 1_795_341_630;

/// Metric totals: two page views in the current minute and five earlier today.
#[derive(Debug, Default)]
struct Totals;

impl pulse_store::Totals for Totals {
    async fn totals(
        &self,
        _: &TenantId,
        resolution: Resolution,
        from: i64,
        to: i64,
        _: &[&str],
    ) -> Result<Vec<(String, i64, Bucket)>, StoreError> {
        let bucket = |n: usize| {
            let mut b = Bucket::default();
            for i in 0..n {
                b.add(1.0, Some(&format!("v{i}")));
            }
            b
        };
        let all = match resolution {
            Resolution::Minute => vec![("page_view".to_owned(), NOW - 30, bucket(2))],
            Resolution::Hour => vec![("page_view".to_owned(), NOW - 30 - 3_600, bucket(5))],
            _ => vec![],
        };
        Ok(all
            .into_iter()
            .filter(|(_, s, _)| (from..to).contains(s))
            .collect())
    }
}

/// Page views by minute: path `/a` 3 at 09:58 and 1 at 10:00, path `/b` 2 at 09:59; the
/// total series holds their sum. `api_request` and `api_request.failed`: 4 and 1 at 10:00.
impl RollupBuckets for Totals {
    async fn was_sealed(&self, _: &TenantId, _: i64) -> Result<bool, StoreError> {
        Ok(false)
    }
    async fn buckets(
        &self,
        key: &SeriesKey,
        resolution: Resolution,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, Bucket)>, StoreError> {
        let counts = |n: u64| {
            let mut b = Bucket::default();
            for _ in 0..n {
                b.add(1.0, None);
            }
            b
        };
        let minute = NOW - 30;
        let all: Vec<(i64, u64)> = match (resolution, key.metric.as_str(), key.series.as_str()) {
            (Resolution::Minute, "page_view", "a") => vec![(minute - 120, 3), (minute, 1)],
            (Resolution::Minute, "page_view", "b") => vec![(minute - 60, 2)],
            (Resolution::Minute, "page_view", "__total__") => {
                vec![(minute - 120, 3), (minute - 60, 2), (minute, 1)]
            }
            (Resolution::Minute, "api_request", _) => vec![(minute, 4)],
            (Resolution::Minute, "api_request.failed", _) => vec![(minute, 1)],
            _ => vec![],
        };
        Ok(all
            .into_iter()
            .filter(|(s, _)| (from..to).contains(s))
            .map(|(s, n)| (s, counts(n)))
            .collect())
    }
}

impl SeriesCatalog for Totals {
    async fn series(
        &self,
        _: &TenantId,
        metric: &str,
    ) -> Result<Vec<(String, BTreeMap<String, String>)>, StoreError> {
        let path = |p: &str| BTreeMap::from([("path".to_owned(), p.to_owned())]);
        Ok(match metric {
            "page_view" => vec![("a".into(), path("/a")), ("b".into(), path("/b"))],
            "api_request" | "api_request.failed" => vec![("x".into(), BTreeMap::new())],
            _ => Vec::new(),
        })
    }
}

/// Frames posted through the management API.
#[derive(Debug, Default)]
struct Posted(Mutex<Vec<(String, Value)>>);

impl ConnectionPush for Posted {
    async fn post(&self, connection: &str, frame: &str) -> Result<(), PushError> {
        self.0.lock().expect("lock").push((
            connection.to_owned(),
            serde_json::from_str(frame).expect("json frame"),
        ));
        Ok(())
    }
}

#[derive(Debug, Default)]
struct Memory(Mutex<HashMap<String, Connection>>);

impl ConnectionStore for Memory {
    async fn put_connection(&self, c: &Connection) -> Result<(), StoreError> {
        let mut all = self.0.lock().expect("lock");
        let stored = all.get(&c.id).map_or(0, |s| s.version);
        if stored != c.version {
            return Err(StoreError::Conflict);
        }
        all.insert(
            c.id.clone(),
            Connection {
                version: c.version + 1,
                ..c.clone()
            },
        );
        Ok(())
    }
    async fn connection(&self, id: &str) -> Result<Option<Connection>, StoreError> {
        Ok(self.0.lock().expect("lock").get(id).cloned())
    }
    async fn delete_connection(&self, id: &str) -> Result<(), StoreError> {
        self.0.lock().expect("lock").remove(id);
        Ok(())
    }
}

/// The tenant's one definition: `error_rate = api_request.failed / api_request`.
impl DefinitionStore for Memory {
    async fn definitions(
        &self,
        _: &TenantId,
    ) -> Result<Vec<pulse_metrics::definitions::Definition>, StoreError> {
        Ok(vec![
            serde_json::from_value(json!({"name": "error_rate", "derived": {
                "op": "ratio", "of": ["api_request.failed", "api_request"], "aggregation": "count"}}))
            .expect("definition"),
        ])
    }
}

fn live(role: Role) -> Live<Memory, Totals, Posted> {
    let store = Memory::default();
    store.0.lock().expect("lock").insert(
        "c-1".into(),
        Connection {
            id: "c-1".into(),
            tenant: TenantId::parse("acme").expect("tenant"),
            subject: "u".into(),
            roles: vec![role],
            connected_at: 0,
            subscriptions: Vec::new(),
            version: 1,
        },
    );
    Live::new(
        store,
        Totals,
        Posted::default(),
        None,
        ClaimNames::default(),
    )
    .with_clock(|| NOW)
}

fn event(route: &str, body: Option<&str>, query: Option<(&str, &str)>) -> WsEvent {
    serde_json::from_value(json!({
        "requestContext": {"routeKey": route, "connectionId": "c-1"},
        "queryStringParameters": query.map(|(k, v)| json!({k: v})),
        "body": body,
    }))
    .expect("event")
}

/// The test connection as stored now.
async fn stored(live: &Live<Memory, Totals, Posted>) -> Connection {
    live.store
        .connection("c-1")
        .await
        .expect("read")
        .expect("the connection is stored")
}

async fn reply(live: &Live<Memory, Totals, Posted>, body: &str) -> Value {
    let res = live
        .handle(event("$default", Some(body), None))
        .await
        .expect("handled");
    assert_eq!(res.status_code, 200);
    serde_json::from_str(res.body.as_deref().expect("a frame")).expect("json")
}

#[tokio::test]
async fn a_connect_without_a_verifiable_token_is_refused_with_401() {
    let live = live(Role::Viewer);
    for query in [None, Some(("token", "")), Some(("token", "not-a-jwt"))] {
        let res = live
            .handle(event("$connect", None, query))
            .await
            .expect("handled");
        assert_eq!(res.status_code, 401, "{query:?}");
    }
}

#[tokio::test]
async fn ping_subscribe_and_unsubscribe_are_answered_by_client_id() {
    let live = live(Role::Analyst);
    assert_eq!(
        reply(&live, r#"{"action":"ping","id":"p1"}"#).await,
        json!({"type": "pong", "id": "p1"})
    );
    let snapshot = reply(
        &live,
        r#"{"action":"subscribe","id":"c1","metrics":["page_view","order"],"interval":"30s"}"#,
    )
    .await;
    // The ack is posted first, then the snapshot answers: current values at once
    let posted = live.push.0.lock().expect("lock").clone();
    assert_eq!(
        posted,
        vec![(
            "c-1".to_owned(),
            json!({"type": "ack", "id": "c1", "subscription": "s1"})
        )]
    );
    assert_eq!(
        (snapshot["type"].as_str(), snapshot["seq"].as_u64()),
        (Some("snapshot"), Some(1))
    );
    assert_eq!(snapshot["subscription"], "s1");
    let pv = &snapshot["data"]["page_view"];
    assert_eq!(
        (pv["count"].as_u64(), pv["uniques"].as_u64()),
        (Some(2), Some(2)),
        "{snapshot}"
    );
    // Today: five views an hour ago and the two of this minute
    assert_eq!(pv["today"]["count"], 7);
    assert_eq!(
        snapshot["data"]["order"]["count"], 0,
        "a metric without data is zeros"
    );
    let stored = stored(&live).await;
    assert_eq!(
        stored.subscriptions[0].interval,
        live::Interval::ThirtySeconds
    );
    let second = reply(
        &live,
        r#"{"action":"subscribe","id":"c2","metrics":["page_view"]}"#,
    )
    .await;
    assert_eq!(second["subscription"], "s2");
    assert_eq!(second["type"], "snapshot");
    // A reconnecting client's snapshot continues its sequence
    let resumed = reply(
        &live,
        r#"{"action":"subscribe","id":"c5","metrics":["page_view"],"resume":41}"#,
    )
    .await;
    assert_eq!(
        (resumed["subscription"].as_str(), resumed["seq"].as_u64()),
        (Some("s3"), Some(42))
    );
    let gone = reply(
        &live,
        r#"{"action":"unsubscribe","id":"c3","subscription":"s1"}"#,
    )
    .await;
    assert_eq!(gone["type"], "ack");
    let again = reply(
        &live,
        r#"{"action":"unsubscribe","id":"c4","subscription":"s1"}"#,
    )
    .await;
    assert_eq!(
        (again["type"].as_str(), again["status"].as_u64()),
        (Some("error"), Some(404))
    );
}

#[tokio::test]
async fn a_viewer_cannot_subscribe_to_business_metrics() {
    let live = live(Role::Viewer);
    let refused = reply(
        &live,
        r#"{"action":"subscribe","id":"c1","metrics":["page_view","order"]}"#,
    )
    .await;
    assert_eq!(refused["status"], 403, "{refused}");
    assert_eq!(refused["id"], "c1");
    let stored = stored(&live).await;
    assert!(stored.subscriptions.is_empty());
}

#[tokio::test]
async fn a_malformed_frame_gets_an_error_frame_and_disconnect_forgets_the_connection() {
    let live = live(Role::Admin);
    let bad = reply(&live, "{oops").await;
    assert_eq!(
        (bad["type"].as_str(), bad["status"].as_u64()),
        (Some("error"), Some(400))
    );
    // The connection is still usable
    assert_eq!(
        reply(&live, r#"{"action":"ping","id":"p"}"#).await["type"],
        "pong"
    );
    let res = live
        .handle(event("$disconnect", None, None))
        .await
        .expect("handled");
    assert_eq!(res.status_code, 200);
    assert!(live.store.connection("c-1").await.expect("read").is_none());
    // A frame on a forgotten connection is told to reconnect
    let unknown = reply(
        &live,
        r#"{"action":"subscribe","id":"c1","metrics":["cpu"]}"#,
    )
    .await;
    assert_eq!(unknown["status"], 401);
}

#[tokio::test]
async fn a_query_subscription_gets_the_answer_of_its_moving_range() {
    // Given an analyst's connection and page views on two paths in the last three minutes
    let live = live(Role::Analyst);
    // When they subscribe to page views by path over the last 10 minutes at 1-minute points
    let snapshot = reply(
        &live,
        r#"{"action":"subscribe","id":"q1","interval":"5s","query":{"metric_name":"page_view","time_range":"10m","interval":"1m","aggregation":"count","group_by":["path"]}}"#,
    )
    .await;
    // Then the snapshot is the query's answer, grouped, with its range
    assert_eq!(snapshot["type"], "snapshot", "{snapshot}");
    let data = &snapshot["data"];
    assert_eq!(data["metric"], "page_view");
    assert_eq!(data["resolution"], "1m");
    let points: Vec<(String, String, i64)> = data["data"]
        .as_array()
        .expect("points")
        .iter()
        .map(|p| {
            (
                p["tags"]["path"].as_str().unwrap_or("").to_owned(),
                p["timestamp"].as_str().unwrap_or("").to_owned(),
                p["value"].as_f64().unwrap_or(-1.0) as i64,
            )
        })
        .collect();
    assert_eq!(
        points,
        vec![
            ("/a".into(), "2026-11-22T09:58:00Z".into(), 3),
            ("/a".into(), "2026-11-22T10:00:00Z".into(), 1),
            ("/b".into(), "2026-11-22T09:59:00Z".into(), 2),
        ]
    );
    assert_eq!(data["range"]["end"], "2026-11-22T10:00:30Z");
    assert!(data.get("since").is_none(), "a snapshot is whole");
    // And the subscription keeps the query and watches its metric
    let stored = stored(&live).await;
    let sub = &stored.subscriptions[0];
    assert_eq!(sub.metrics, vec!["page_view".to_owned()]);
    assert_eq!(
        sub.query.as_ref().map(|q| q.body["time_range"].clone()),
        Some(json!("10m"))
    );
}

#[tokio::test]
async fn a_query_subscription_to_a_derived_metric_watches_both_metrics() {
    // Given the tenant's error_rate = api_request.failed / api_request
    let admin = live(Role::Admin);
    // When an admin subscribes to it
    let snapshot = reply(
        &admin,
        r#"{"action":"subscribe","id":"q1","query":{"metric_name":"error_rate","time_range":"1h","interval":"1m"}}"#,
    )
    .await;
    // Then the snapshot holds the ratio, and both metrics are watched
    assert_eq!(snapshot["data"]["data"][0]["value"], 0.25, "{snapshot}");
    let stored = stored(&admin).await;
    assert_eq!(
        stored.subscriptions[0].metrics,
        vec!["api_request.failed".to_owned(), "api_request".to_owned()]
    );
    // And a viewer may not follow it: its metrics are the admin's
    let viewer = live(Role::Viewer);
    let refused = reply(
        &viewer,
        r#"{"action":"subscribe","id":"q2","query":{"metric_name":"error_rate","time_range":"1h"}}"#,
    )
    .await;
    assert_eq!(refused["status"], 403, "{refused}");
}

#[tokio::test]
async fn a_bad_live_query_is_refused_by_pointer() {
    let live = live(Role::Admin);
    for (query, pointer) in [
        (
            r#"{"metric_name":"page_view","time_range":{"start":"2026-11-01T00:00:00Z","end":"2026-11-02T00:00:00Z"}}"#,
            "#/query/time_range",
        ),
        (
            r#"{"metric_name":"page_view","time_range":"7d"}"#,
            "#/query/time_range",
        ),
        (
            r#"{"metric_name":"page_view","time_range":"1h","bogus":1}"#,
            "#/query/bogus",
        ),
        (r#"{"time_range":"1h"}"#, "#/query/metric_name"),
    ] {
        let frame = format!(r#"{{"action":"subscribe","id":"q","query":{query}}}"#);
        let refused = reply(&live, &frame).await;
        assert_eq!(refused["status"], 400, "{query}");
        let detail = refused["detail"].as_str().unwrap_or("");
        assert!(detail.contains(pointer), "{detail} names {pointer}");
    }
    let both = reply(
        &live,
        r#"{"action":"subscribe","id":"q","metrics":["a"],"query":{"metric_name":"a","time_range":"1h"}}"#,
    )
    .await;
    assert_eq!(both["status"], 400);
}
