//! The function in-process against an in-memory connection store (tokens are verified against
//! a real issuer in `tests/live.rs`, through the local cloud).

use super::*;
use async_trait::async_trait;
use pulse_shared::aggregate::{Bucket, SeriesKey};
use pulse_shared::identity::{Role, TenantId};
use pulse_shared::rollup::BucketAt;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// 2026-11-22T10:00:30Z.
const NOW: i64 = 1_795_341_630;

/// Metric totals: two page views in the current minute and five earlier today.
#[derive(Debug, Default)]
struct Totals;

#[async_trait]
impl pulse_shared::store::Totals for Totals {
    async fn totals(
        &self,
        _: &TenantId,
        resolution: Resolution,
        from: i64,
        to: i64,
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

#[async_trait]
impl RollupBuckets for Totals {
    async fn put_bucket(&self, _: &BucketAt, _: &Bucket) -> Result<(), StoreError> {
        Ok(())
    }
    async fn buckets(
        &self,
        _: &SeriesKey,
        _: Resolution,
        _: i64,
        _: i64,
    ) -> Result<Vec<(i64, Bucket)>, StoreError> {
        Ok(Vec::new())
    }
}

#[async_trait]
impl SeriesCatalog for Totals {
    async fn series(
        &self,
        _: &TenantId,
        _: &str,
    ) -> Result<Vec<(String, BTreeMap<String, String>)>, StoreError> {
        Ok(Vec::new())
    }
}

/// Frames posted through the management API.
#[derive(Debug, Default)]
struct Posted(Mutex<Vec<(String, Value)>>);

#[async_trait]
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

#[async_trait]
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
    async fn connections(&self, tenant: &TenantId) -> Result<Vec<Connection>, StoreError> {
        Ok(self
            .0
            .lock()
            .expect("lock")
            .values()
            .filter(|c| &c.tenant == tenant)
            .cloned()
            .collect())
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
    let stored = live
        .store
        .connection("c-1")
        .await
        .expect("read")
        .expect("conn");
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
    let stored = live
        .store
        .connection("c-1")
        .await
        .expect("read")
        .expect("conn");
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
