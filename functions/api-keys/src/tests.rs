//! The API keys endpoint against an in-memory store.

use super::*;
use pulse_core::identity::TenantId;
use pulse_store::StoreError;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Default)]
struct Memory {
    keys: Mutex<HashMap<String, ApiKey>>,
}

impl KeyStore for Memory {
    async fn keys(&self, tenant: &TenantId) -> Result<Vec<ApiKey>, StoreError> {
        Ok(self
            .keys
            .lock()
            .expect("lock")
            .values()
            .filter(|k| &k.tenant == tenant)
            .cloned()
            .collect())
    }
    async fn put_key(&self, hash: &str, key: &ApiKey) -> Result<(), StoreError> {
        self.keys
            .lock()
            .expect("lock")
            .insert(hash.to_owned(), key.clone());
        Ok(())
    }
    async fn delete_key(&self, tenant: &TenantId, id: &str) -> Result<bool, StoreError> {
        let mut keys = self.keys.lock().expect("lock");
        let before = keys.len();
        keys.retain(|_, k| !(&k.tenant == tenant && k.id == id));
        Ok(keys.len() < before)
    }
}

fn request(method: &str, path: &str, tenant: &str, role: &str, body: Option<Value>) -> Request {
    let id = path.strip_prefix("/api/v1/api-keys/");
    let mut event = json!({
        "version": "2.0", "routeKey": format!("{method} /api/v1/api-keys"), "rawPath": path, "rawQueryString": "",
        "headers": {"content-type": "application/json"},
        "requestContext": {
            "accountId": "1", "apiId": "a", "domainName": "d", "requestId": "r", "routeKey": "k",
            "stage": "$default", "time": "22/Nov/2026:10:00:00 +0000", "timeEpoch": 0,
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "192.0.2.1", "userAgent": "t"},
            "authorizer": {"jwt": {"claims": {"sub": "u", "custom:tenant": tenant, "cognito:groups": format!("[{role}]")}, "scopes": null}}
        },
        "isBase64Encoded": false
    });
    if let Some(id) = id {
        event["pathParameters"] = json!({"id": id});
    }
    if let Some(body) = body {
        event["body"] = json!(body.to_string());
    }
    lambda_http::request::from_str(&event.to_string()).expect("HTTP API event")
}

fn body(res: &Response<Body>) -> Value {
    match res.body() {
        Body::Text(t) => serde_json::from_str(t).expect("json"),
        other => panic!("unexpected body {other:?}"),
    }
}

fn keys() -> Keys<Memory> {
    Keys::new(Memory::default(), ClaimNames::default())
}

#[tokio::test]
async fn a_created_key_is_shown_once_and_stored_as_its_hash() {
    // Given an admin of acme
    let handler = keys();
    // When they create a key
    let res = handler
        .handle(request(
            "POST",
            "/api/v1/api-keys",
            "acme",
            "admin",
            Some(json!({"name": "backend"})),
        ))
        .await
        .expect("response");
    // Then the answer holds the key once, and the store holds its hash only
    assert_eq!(res.status(), 201);
    let created = body(&res);
    let secret = created["secret"].as_str().expect("secret").to_owned();
    assert!(apikeys::is_key(&secret));
    assert_eq!(created["scopes"], json!(["ingest"]));
    let stored = handler.store.keys.lock().expect("lock").clone();
    assert!(stored.contains_key(&apikeys::hash(&secret)));
    assert!(!stored.keys().any(|h| h.contains(&secret[6..])));
    // And the list names it without the key
    let list = handler
        .handle(request("GET", "/api/v1/api-keys", "acme", "admin", None))
        .await
        .expect("response");
    let listed = body(&list);
    assert_eq!(listed["keys"][0]["id"], created["id"]);
    assert!(!listed.to_string().contains(&secret));
}

#[tokio::test]
async fn keys_are_revoked_within_their_tenant_only() {
    let handler = keys();
    let res = handler
        .handle(request(
            "POST",
            "/api/v1/api-keys",
            "acme",
            "admin",
            Some(json!({"name": "backend"})),
        ))
        .await
        .expect("response");
    let id = body(&res)["id"].as_str().expect("id").to_owned();
    // Another tenant's admin cannot see or revoke it
    let path = format!("/api/v1/api-keys/{id}");
    let other = handler
        .handle(request("DELETE", &path, "globex", "admin", None))
        .await
        .expect("response");
    assert_eq!(other.status(), 404);
    // Its own admin can, once
    let own = handler
        .handle(request("DELETE", &path, "acme", "admin", None))
        .await
        .expect("response");
    assert_eq!(own.status(), 204);
    let again = handler
        .handle(request("DELETE", &path, "acme", "admin", None))
        .await
        .expect("response");
    assert_eq!(again.status(), 404);
}

#[tokio::test]
async fn only_admins_manage_keys_and_bad_input_is_listed() {
    let handler = keys();
    let analyst = handler
        .handle(request("GET", "/api/v1/api-keys", "acme", "analyst", None))
        .await
        .expect("response");
    assert_eq!(analyst.status(), 403);
    let bad = handler
        .handle(request(
            "POST",
            "/api/v1/api-keys",
            "acme",
            "admin",
            Some(json!({"name": "", "scopes": ["admin"]})),
        ))
        .await
        .expect("response");
    assert_eq!(bad.status(), 400);
    let problem = body(&bad);
    let pointers: Vec<&str> = problem["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["pointer"].as_str())
        .collect();
    assert_eq!(pointers, ["#/name", "#/scopes/0"]);
    assert!(handler.store.keys.lock().expect("lock").is_empty());
}
