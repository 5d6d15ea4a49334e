//! API keys through the local cloud: `/api/v1/api-keys` and the `authorizer` function in front
//! of the ingest routes, with API Gateway's authorizer cache.
//!
//! This binary's cloud runs template.yaml with one change: the ingest authorizer's cache lasts
//! 2 s instead of 60, so a revocation can be watched taking effect.

use pulse_local::Options;
use pulse_tests::{Cloud, shared};
use serde_json::{Value, json};
use std::sync::OnceLock;
use std::time::Duration;

const CACHE_SECS: u64 = 2;

static CLOUD: OnceLock<Cloud> = OnceLock::new();

fn cloud() -> &'static Cloud {
    shared(&CLOUD, |opts| {
        let text = std::fs::read_to_string(&opts.template).expect("template.yaml");
        let edited = text.replace("ReauthorizeEvery: 60", "ReauthorizeEvery: 2");
        assert_ne!(
            text, edited,
            "the ingest authorizer declares ReauthorizeEvery: 60"
        );
        let path = opts.state_dir.join("template.yaml");
        std::fs::write(&path, edited).expect("write template");
        Options {
            template: path,
            ..opts
        }
    })
}

/// A new key for `tenant`, created by its admin: (id, secret).
async fn create_key(tenant: &str) -> (String, String) {
    let c = cloud();
    let res = reqwest::Client::new()
        .post(format!("{}/api/v1/api-keys", c.http))
        .bearer_auth(c.token(tenant, "admin"))
        .json(&json!({"name": "backend"}))
        .send()
        .await
        .expect("response");
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.expect("json");
    (
        body["id"].as_str().expect("id").to_owned(),
        body["secret"].as_str().expect("secret").to_owned(),
    )
}

async fn revoke(tenant: &str, id: &str) -> reqwest::StatusCode {
    let c = cloud();
    reqwest::Client::new()
        .delete(format!("{}/api/v1/api-keys/{id}", c.http))
        .bearer_auth(c.token(tenant, "admin"))
        .send()
        .await
        .expect("response")
        .status()
}

/// Sends one metric event with `credential` (the whole Authorization header, if any).
async fn send(credential: Option<&str>, name: &str) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(format!("{}/api/v1/events", cloud().http))
        .json(
            &json!({"events": [{"kind": "metric", "name": name, "value": 1.0,
            "tags": {"tenant": "keys-b"}}]}),
        );
    if let Some(c) = credential {
        req = req.header("authorization", c);
    }
    req.send().await.expect("response")
}

async fn names(tenant: &str) -> Vec<String> {
    cloud()
        .scan("EventsTable", Some(tenant))
        .await
        .iter()
        .filter_map(|i| i.get("name")?.as_s().ok().cloned())
        .collect()
}

#[tokio::test]
async fn a_key_writes_into_its_own_tenant_and_never_another() {
    // Given a key of tenant keys-a
    let (id, secret) = create_key("keys-a").await;
    // When it sends an event that claims tenant keys-b in its tags
    let res = send(Some(&format!("Bearer {secret}")), "from.key.a").await;
    // Then the event is stored for keys-a only
    assert_eq!(res.status(), 202);
    assert!(names("keys-a").await.contains(&"from.key.a".to_owned()));
    assert!(!names("keys-b").await.contains(&"from.key.a".to_owned()));
    // And keys-b's admin can neither list nor revoke it
    let c = cloud();
    let listed: Value = reqwest::Client::new()
        .get(format!("{}/api/v1/api-keys", c.http))
        .bearer_auth(c.token("keys-b", "admin"))
        .send()
        .await
        .expect("response")
        .json()
        .await
        .expect("json");
    assert_eq!(listed["keys"], json!([]));
    assert_eq!(revoke("keys-b", &id).await, 404);
    // While keys-a's list shows it, without the secret
    let own: Value = reqwest::Client::new()
        .get(format!("{}/api/v1/api-keys", c.http))
        .bearer_auth(c.token("keys-a", "admin"))
        .send()
        .await
        .expect("response")
        .json()
        .await
        .expect("json");
    assert_eq!(own["keys"][0]["id"], id.as_str());
    assert!(!own.to_string().contains(&secret));
}

#[tokio::test]
async fn a_revoked_key_is_refused_with_401_once_the_authorizer_cache_expires() {
    // Given a key that has been used (so API Gateway cached its answer) and then revoked
    let (id, secret) = create_key("keys-revoked").await;
    let bearer = format!("Bearer {secret}");
    assert_eq!(send(Some(&bearer), "before.revoke").await.status(), 202);
    assert_eq!(revoke("keys-revoked", &id).await, 204);
    // When the cache has expired
    tokio::time::sleep(Duration::from_millis(CACHE_SECS * 1000 + 300)).await;
    // Then the key is refused as unauthenticated, and nothing more is stored
    let res = send(Some(&bearer), "after.revoke").await;
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.headers()["content-type"],
        "application/problem+json",
        "the local cloud answers problem+json"
    );
    assert!(
        !names("keys-revoked")
            .await
            .contains(&"after.revoke".to_owned())
    );
}

#[tokio::test]
async fn a_key_revoked_before_use_is_refused_at_once() {
    let (id, secret) = create_key("keys-unused").await;
    assert_eq!(revoke("keys-unused", &id).await, 204);
    let res = send(Some(&format!("Bearer {secret}")), "never").await;
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn missing_unknown_and_malformed_credentials_are_401() {
    let unknown = format!("Bearer pulse_{}", "0".repeat(40));
    for credential in [
        None,
        Some(unknown.as_str()),
        Some("Bearer pulse_nope"),
        Some("Bearer not.a.jwt"),
    ] {
        let res = send(credential, "nobody").await;
        assert_eq!(res.status(), 401, "{credential:?}");
    }
}

#[tokio::test]
async fn tokens_still_work_on_ingest_routes_and_roles_still_count() {
    // Given admin and viewer tokens of one tenant
    let c = cloud();
    let admin = format!("Bearer {}", c.token("keys-jwt", "admin"));
    let viewer = format!("Bearer {}", c.token("keys-jwt", "viewer"));
    // Then the Lambda authorizer verifies them with the issuer's keys: an admin may send,
    // a viewer is authenticated but forbidden
    assert_eq!(send(Some(&admin), "from.admin").await.status(), 202);
    assert_eq!(send(Some(&viewer), "from.viewer").await.status(), 403);
    // And a key cannot manage keys: that route takes people's tokens only
    let (_, secret) = create_key("keys-jwt").await;
    let res = reqwest::Client::new()
        .get(format!("{}/api/v1/api-keys", c.http))
        .bearer_auth(&secret)
        .send()
        .await
        .expect("response");
    assert_eq!(res.status(), 401);
}
