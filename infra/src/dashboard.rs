//! The dashboard on the local cloud: the built files (`dashboard/dist`, by `make dashboard`) at
//! `/`, a `config.json` pointing the dashboard at this local cloud, and the dev sign-in
//! (`POST /dev/token` with a tenant and a role) that stands in for Cognito's hosted UI.
//!
//! Files are read per request, so a rebuilt dashboard is served without a restart. Deployed,
//! the same files come from the dashboard bucket with a `config.json` written by
//! `pulse-local publish` (see [`crate::publish`]).

use crate::jwt::LocalIssuer;
use crate::template::JwtAuthorizer;
use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{StatusCode, header};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone)]
struct Dashboard {
    dist: PathBuf,
    config: serde_json::Value,
    issuer: Arc<LocalIssuer>,
    authorizer: JwtAuthorizer,
}

/// The content type of a built file, by extension.
pub(crate) fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "application/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        Some("woff2") => "font/woff2",
        _ => "application/octet-stream",
    }
}

async fn file(dist: &Path, relative: &str) -> Response {
    // Only plain names below dist/: no parent or absolute components.
    if relative
        .split('/')
        .any(|part| part.is_empty() || part == ".." || part.starts_with('.'))
    {
        return StatusCode::NOT_FOUND.into_response();
    }
    let path = dist.join(relative);
    match tokio::fs::read(&path).await {
        Ok(bytes) => {
            // Hashed asset names never change content; the pages must be fresh.
            let cache = if relative.starts_with("assets/") {
                "public, max-age=31536000, immutable"
            } else {
                "no-cache"
            };
            (
                [
                    (header::CONTENT_TYPE, content_type(&path)),
                    (header::CACHE_CONTROL, cache),
                ],
                bytes,
            )
                .into_response()
        }
        Err(_) if relative == "index.html" => (
            StatusCode::NOT_FOUND,
            "The dashboard is not built: make dashboard (make dev builds it).",
        )
            .into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

#[derive(Deserialize)]
struct SignIn {
    tenant: String,
    role: String,
}

async fn sign_in(State(d): State<Dashboard>, body: axum::Json<SignIn>) -> Response {
    let tenant_ok = (1..=64).contains(&body.tenant.len())
        && body
            .tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !tenant_ok || !["admin", "analyst", "viewer"].contains(&body.role.as_str()) {
        return (
            StatusCode::BAD_REQUEST,
            "tenant: 1-64 letters, digits, - or _; role: admin, analyst or viewer",
        )
            .into_response();
    }
    match d.issuer.mint(
        &d.authorizer,
        &body.tenant,
        &body.role,
        Duration::from_secs(12 * 3600),
    ) {
        Ok(token) => axum::Json(serde_json::json!({ "token": token })).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "dev sign-in could not mint a token");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// The dashboard's routes, for the HTTP API's router: `ws_url` is the local WebSocket API.
pub fn router(
    root: &Path,
    issuer: Arc<LocalIssuer>,
    authorizer: JwtAuthorizer,
    ws_url: Option<String>,
) -> Router {
    let state = Dashboard {
        dist: root.join("dashboard").join("dist"),
        config: serde_json::json!({
            "apiUrl": "",
            "wsUrl": ws_url.unwrap_or_default(),
            "auth": {"mode": "dev"},
        }),
        issuer,
        authorizer,
    };
    Router::new()
        .route(
            "/",
            get(|State(d): State<Dashboard>| async move { file(&d.dist, "index.html").await }),
        )
        .route(
            "/bench.html",
            get(|State(d): State<Dashboard>| async move { file(&d.dist, "bench.html").await }),
        )
        .route(
            "/assets/{*file}",
            get(
                |State(d): State<Dashboard>, UrlPath(name): UrlPath<String>| async move {
                    file(&d.dist, &format!("assets/{name}")).await
                },
            ),
        )
        .route(
            "/config.json",
            get(|State(d): State<Dashboard>| async move {
                (
                    [(header::CACHE_CONTROL, "no-store")],
                    axum::Json(d.config.clone()),
                )
            }),
        )
        .route("/dev/token", post(sign_in))
        .with_state(state)
}
