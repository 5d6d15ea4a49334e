//! The local HTTP API authorizes like API Gateway's JWT authorizer and answers refusals with
//! problem+json; every response carries an `x-correlation-id`.

use pulse_tests::cloud;
use serde_json::{Value, json};
use std::time::{SystemTime, UNIX_EPOCH};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

async fn get_me(token: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(format!("{}/api/v1/me", cloud().http));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.expect("response")
}

async fn problem(res: reqwest::Response, status: u16) -> Value {
    assert_eq!(res.status().as_u16(), status);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    assert!(res.headers().contains_key("x-correlation-id"));
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["status"], status);
    body
}

#[tokio::test]
async fn no_token_is_401_problem_json() {
    let res = get_me(None).await;
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    let body = problem(res, 401).await;
    assert_eq!(body["type"], "urn:pulse:problem:unauthenticated");
}

#[tokio::test]
async fn expired_token_is_401() {
    let c = cloud();
    let token = c
        .issuer
        .sign(
            &json!({"sub": "u", "iss": c.authorizer.issuer, "aud": c.authorizer.audience[0],
                      "exp": now() - 5, "custom:tenant": "demo", "cognito:groups": ["admin"]}),
        )
        .expect("signed");
    let body = problem(get_me(Some(&token)).await, 401).await;
    assert!(body["detail"].as_str().expect("detail").contains("expired"));
}

#[tokio::test]
async fn wrong_audience_token_is_401() {
    let c = cloud();
    let token = c
        .issuer
        .sign(
            &json!({"sub": "u", "iss": c.authorizer.issuer, "aud": "another-app",
                      "exp": now() + 60, "custom:tenant": "demo", "cognito:groups": ["admin"]}),
        )
        .expect("signed");
    let body = problem(get_me(Some(&token)).await, 401).await;
    assert!(
        body["detail"]
            .as_str()
            .expect("detail")
            .contains("audience")
    );
}

#[tokio::test]
async fn valid_token_without_a_pulse_role_is_403() {
    let token = cloud().token("demo", "billing");
    let body = problem(get_me(Some(&token)).await, 403).await;
    assert_eq!(body["type"], "urn:pulse:problem:forbidden");
}

#[tokio::test]
async fn valid_token_with_a_role_gets_the_tenant_and_role() {
    let token = cloud().token("demo", "analyst");
    let res = get_me(Some(&token)).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["tenant"], "demo");
    assert_eq!(body["role"], "analyst");
}

#[tokio::test]
async fn correlation_id_is_echoed_when_sent_and_generated_when_not() {
    let url = format!("{}/api/v1/health", cloud().http);
    let http = reqwest::Client::new();
    let sent = http
        .get(&url)
        .header("x-correlation-id", "trace-42")
        .send()
        .await
        .expect("response");
    assert_eq!(sent.headers()["x-correlation-id"], "trace-42");
    let generated = http.get(&url).send().await.expect("response");
    let id = generated.headers()["x-correlation-id"]
        .to_str()
        .expect("ascii");
    assert_eq!(id.len(), 36, "a UUID: {id}");
    // Refusals by the authorizer carry it too.
    let refused = http
        .get(format!("{}/api/v1/me", cloud().http))
        .header("x-correlation-id", "trace-43")
        .send()
        .await
        .expect("response");
    assert_eq!(refused.headers()["x-correlation-id"], "trace-43");
}

#[tokio::test]
async fn an_undeclared_route_is_404_problem_json() {
    let res = reqwest::get(format!("{}/api/v1/nope", cloud().http))
        .await
        .expect("response");
    problem(res, 404).await;
}

/// A signed token of tenant `acme-roles` whose groups claim is `groups` (`None`: no claim).
fn token_with(groups: Option<Value>) -> String {
    let c = cloud();
    let mut claims = json!({
        "sub": "role-walker",
        "iss": c.authorizer.issuer,
        "aud": c.authorizer.audience.first().cloned().unwrap_or_default(),
        "token_use": "id",
        "iat": now(),
        "exp": now() + 600,
        "custom:tenant": "acme-roles",
    });
    if let Some(g) = groups {
        claims["cognito:groups"] = g;
    }
    c.issuer.sign(&claims).expect("signed")
}

#[tokio::test]
async fn every_route_admits_exactly_its_declared_roles() {
    use pulse_core::identity::Role;
    use pulse_core::routes::{Access, access};
    let c = cloud();
    let callers: Vec<(&str, String, Option<Role>)> = vec![
        ("no role", token_with(None), None),
        ("an empty group list", token_with(Some(json!([]))), None),
        (
            "an unknown group",
            token_with(Some(json!(["superuser"]))),
            None,
        ),
        (
            "viewer",
            token_with(Some(json!(["viewer"]))),
            Some(Role::Viewer),
        ),
        (
            "analyst",
            token_with(Some(json!(["analyst"]))),
            Some(Role::Analyst),
        ),
        (
            "admin",
            token_with(Some(json!(["admin"]))),
            Some(Role::Admin),
        ),
    ];
    let http = reqwest::Client::new();
    for route in &c.model.routes {
        let key = format!("{} {}", route.method, route.path);
        // Given a route of template.yaml, which the one table must declare
        let declared =
            access(&key).unwrap_or_else(|| panic!("{key} is not declared in pulse_core::routes"));
        if route.authorizer.is_none() {
            assert_eq!(declared, Access::Public, "{key} has no authorizer");
            continue;
        }
        let path = route
            .path
            .replace("{id}", "s_missing")
            .replace("{name}", "missing.metric")
            .replace("{view}", "overview");
        for (who, token, role) in &callers {
            // When each kind of caller calls it
            let method = reqwest::Method::from_bytes(route.method.as_bytes()).expect("method");
            let res = http
                .request(method, format!("{}{path}", c.http))
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .expect("response");
            let status = res.status().as_u16();
            // Then no known role is 403 everywhere, and a known one is 403 exactly below the
            // route's declared role
            let admitted = match (declared, role) {
                (_, None) => false,
                (Access::Role(min), Some(r)) => *r >= min,
                (Access::Ingest, Some(r)) => *r == Role::Admin,
                (Access::Public, Some(_)) => true,
            };
            if admitted {
                assert_ne!(status, 403, "{who} on {key}");
                assert_ne!(status, 401, "{who} on {key}");
                assert!(status < 500, "{who} on {key}: {status}");
            } else {
                assert_eq!(status, 403, "{who} on {key}");
            }
        }
    }
}

#[tokio::test]
async fn the_stage_throttles_like_api_gateway() {
    // Given a local cloud whose stage allows bursts of 20 and 10 requests a second
    let cloud = pulse_tests::start_with(|mut opts| {
        opts.parameters
            .insert("ApiThrottlingRateLimit".into(), "10".into());
        opts.parameters
            .insert("ApiThrottlingBurstLimit".into(), "20".into());
        opts
    })
    .await;
    let http = reqwest::Client::new();
    // When 60 requests arrive at once
    let calls = (0..60).map(|_| {
        http.get(format!("{}/api/v1/health", cloud.http_url()))
            .send()
    });
    let answers = futures::future::join_all(calls).await;
    let mut statuses: Vec<u16> = Vec::new();
    for a in answers {
        let res = a.expect("response");
        statuses.push(res.status().as_u16());
        if res.status() == 429 {
            // Then those past the burst are 429 with API Gateway's own body
            let body: Value = res.json().await.expect("json");
            assert_eq!(body, json!({"message": "Too Many Requests"}));
        }
    }
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert!((20..=25).contains(&ok), "{statuses:?}");
    assert_eq!(ok + limited, 60, "{statuses:?}");
    // And after a second the bucket has refilled
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let res = http
        .get(format!("{}/api/v1/health", cloud.http_url()))
        .send()
        .await
        .expect("response");
    assert_eq!(res.status(), 200);
    cloud.stop().await;
}
