//! The `pulse-local` binary as a user runs it: `pulse-local token` mints a dev JWT for the
//! tenant and role asked, and refuses what is neither.

use std::process::Command;

fn token(state: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_pulse-local"))
        .arg("token")
        .args(args)
        .env("PULSE_STATE_DIR", state)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("pulse-local runs")
}

fn claims(jwt: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = jwt.trim().split('.').nth(1).expect("a JWT has three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

#[test]
fn token_prints_a_jwt_for_the_tenant_and_role_asked() {
    // Given a fresh state folder
    let state = tempfile::tempdir().expect("temp dir");
    // When a user asks for an analyst token of tenant acme
    let out = token(state.path(), &["--tenant", "acme", "--role", "analyst"]);
    // Then one JWT is printed whose claims carry that tenant and role
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    let claims = claims(&text);
    let all = claims.to_string();
    assert!(all.contains("acme"), "{all}");
    assert!(all.contains("analyst"), "{all}");
    assert!(claims["exp"].as_i64().is_some(), "{all}");
}

#[test]
fn token_refuses_an_unknown_role_and_an_invalid_tenant() {
    let state = tempfile::tempdir().expect("temp dir");
    // When the role is not one of Pulse's
    let out = token(state.path(), &["--tenant", "acme", "--role", "owner"]);
    // Then nothing is printed and the exit says why
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown role owner"));
    // And a tenant id that is not one fails too
    let out = token(
        state.path(),
        &["--tenant", "no spaces/here", "--role", "admin"],
    );
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
}
