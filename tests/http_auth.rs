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
