//! `/api/v1/sites` (admin): the sites whose tracking script reports to this tenant.
//!
//! `POST` creates a site with a new id (the one the script is installed with), `GET` lists or
//! reads, `PUT` replaces the domain and allowed origins, `DELETE` removes it. A site belongs
//! to one tenant for good; another tenant's site id answers 404, as if it did not exist.

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use pulse_core::config::ClaimNames;
use pulse_core::identity::{Caller, Role, TenantId};
use pulse_core::problem::FieldError;
use pulse_core::{ApiError, Config};
use pulse_http::FromRequest;
use pulse_http::selfmon::{RequestRecorder, serve_recorded};
use pulse_http::{HttpHandler, empty, json};
use pulse_ingest::track::Site;
use pulse_store::app::DynamoApp;
use pulse_store::{SiteLookup, SiteStore};
use serde::Deserialize;
use std::sync::Arc;

/// The routes this crate serves (template.yaml routes them to this function, and a test
/// checks the two agree).
pub const ROUTES: &[&str] = &[
    "GET /api/v1/sites",
    "POST /api/v1/sites",
    "GET /api/v1/sites/{id}",
    "PUT /api/v1/sites/{id}",
    "DELETE /api/v1/sites/{id}",
];

/// The sites endpoint with its store.
#[derive(Debug)]
pub struct Sites<S> {
    /// Records each request as an `api_request` event of its tenant (wired on AWS).
    recorder: Option<Arc<dyn RequestRecorder>>,
    store: S,
    claims: ClaimNames,
}

/// What a client sends to create or replace a site.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SiteInput {
    domain: String,
    #[serde(default)]
    allowed_origins: Vec<String>,
}

/// Builds the handler from the function's configuration, as `main` and the local cloud do.
pub fn wire(config: &Config, aws: &aws_config::SdkConfig) -> Sites<DynamoApp> {
    Sites::new(
        DynamoApp::new(aws, &config.tables.app),
        config.claims.clone(),
    )
    .recording(pulse_http::selfmon::recorder(config, aws))
}

fn valid_host(host: &str) -> bool {
    (1..=253).contains(&host.len())
        && host.split('.').all(|l| {
            (1..=63).contains(&l.len())
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
        })
}

/// An origin: `http(s)://host[:port]`, nothing after, written as browsers send it in the
/// `Origin` header (a host name, an IPv4 address or a bracketed IPv6 one). Parsed by `url`,
/// so what is accepted is what a browser's origin serialises to.
fn valid_origin(origin: &str) -> bool {
    let Ok(url) = url::Url::parse(origin) else {
        return false;
    };
    let host_ok = match url.host() {
        Some(url::Host::Domain(d)) => valid_host(d),
        Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)) => true,
        None => false,
    };
    matches!(url.scheme(), "http" | "https")
        && host_ok
        && url.username().is_empty()
        && url.password().is_none()
        && url.query().is_none()
        && url.fragment().is_none()
        && url.path() == "/"
        && url.origin().ascii_serialization() == origin.trim_end_matches('/').to_ascii_lowercase()
}

impl SiteInput {
    /// The site `id` of `tenant` this input describes; without origins, the domain's HTTPS one.
    fn into_site(self, id: String, tenant: TenantId) -> Site {
        let allowed_origins = if self.allowed_origins.is_empty() {
            vec![format!("https://{}", self.domain)]
        } else {
            self.allowed_origins
        };
        Site {
            id,
            tenant,
            domain: self.domain,
            allowed_origins,
        }
    }

    fn parse(req: &Request) -> Result<Self, ApiError> {
        let bytes: &[u8] = match req.body() {
            Body::Text(t) => t.as_bytes(),
            Body::Binary(b) => b,
            _ => b"",
        };
        let input: SiteInput = serde_json::from_slice(bytes).map_err(|e| ApiError::Validation {
            detail: format!("the site is not valid: {e}"),
            errors: vec![FieldError::at::<&str>(&[], e.to_string())],
        })?;
        let mut errors = Vec::new();
        let domain = input.domain.trim().to_ascii_lowercase();
        if !valid_host(&domain) {
            errors.push(FieldError::at(
                &["domain"],
                "a host name such as example.com",
            ));
        }
        if input.allowed_origins.len() > 20 {
            errors.push(FieldError::at(&["allowed_origins"], "at most 20 origins"));
        }
        for (i, o) in input.allowed_origins.iter().enumerate() {
            if !valid_origin(o) {
                errors.push(FieldError::at(
                    &["allowed_origins", &i.to_string()],
                    "an origin such as https://example.com (scheme, host, optional port)",
                ));
            }
        }
        if !errors.is_empty() {
            return Err(ApiError::Validation {
                detail: format!("{} problems with the site", errors.len()),
                errors,
            });
        }
        Ok(Self {
            domain,
            allowed_origins: input.allowed_origins,
        })
    }
}

impl<S: SiteLookup + SiteStore> Sites<S> {
    pub fn new(store: S, claims: ClaimNames) -> Self {
        Self {
            store,
            recorder: None,
            claims,
        }
    }

    /// The same endpoint recording its requests with `recorder`.
    pub fn recording(self, recorder: Arc<dyn RequestRecorder>) -> Self {
        Self {
            recorder: Some(recorder),
            ..self
        }
    }

    async fn respond(&self, req: Request) -> Result<Response<Body>, ApiError> {
        let caller = Caller::from_request(&req, &self.claims)?;
        caller.require(Role::Admin)?;
        let id = req
            .path_parameters_ref()
            .and_then(|p| p.first("id"))
            .map(str::to_owned);
        let owned = |site: Option<Site>| site.filter(|s| s.tenant == caller.tenant);
        match (req.method().clone(), id) {
            (Method::GET, None) => {
                let sites = self.store.sites(&caller.tenant).await?;
                Ok(json(StatusCode::OK, &serde_json::json!({"sites": sites})))
            }
            (Method::POST, None) => {
                let input = SiteInput::parse(&req)?;
                let simple = uuid::Uuid::new_v4().simple().to_string();
                let site = input.into_site(format!("s_{}", &simple[..16]), caller.tenant.clone());
                self.store.put_site(&site).await?;
                Ok(json(StatusCode::CREATED, &site))
            }
            (Method::GET, Some(id)) => {
                let site = owned(self.store.site(&id).await?)
                    .ok_or_else(|| ApiError::NotFound(format!("no site {id}")))?;
                Ok(json(StatusCode::OK, &site))
            }
            (Method::PUT, Some(id)) => {
                let input = SiteInput::parse(&req)?;
                owned(self.store.site(&id).await?)
                    .ok_or_else(|| ApiError::NotFound(format!("no site {id}")))?;
                let site = input.into_site(id, caller.tenant.clone());
                self.store.put_site(&site).await?;
                Ok(json(StatusCode::OK, &site))
            }
            (Method::DELETE, Some(id)) => {
                if self.store.delete_site(&caller.tenant, &id).await? {
                    Ok(empty(StatusCode::NO_CONTENT))
                } else {
                    Err(ApiError::NotFound(format!("no site {id}")))
                }
            }
            (method, _) => Err(ApiError::MethodNotAllowed(format!(
                "{method} is not supported here"
            ))),
        }
    }
}

impl<S: SiteLookup + SiteStore + 'static> HttpHandler for Sites<S> {
    async fn handle(&self, req: Request) -> Result<Response<Body>, lambda_http::Error> {
        serve_recorded(req, self.recorder.as_ref(), |req| self.respond(req)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_and_domains_are_checked() {
        assert!(valid_origin("https://example.com"));
        assert!(valid_origin("http://localhost:8080"));
        assert!(!valid_origin("https://example.com/path"));
        assert!(!valid_origin("ftp://example.com"));
        assert!(!valid_origin("example.com"));
        // IPv6 and IPv4 hosts, as a browser's Origin header writes them
        assert!(valid_origin("http://[::1]:3000"));
        assert!(valid_origin("https://[2001:db8::1]"));
        assert!(valid_origin("http://127.0.0.1:8080"));
        assert!(!valid_origin("http://[::1"));
        assert!(!valid_origin("https://user@example.com"));
        assert!(!valid_origin("https://example.com?x=1"));
        assert!(!valid_origin("https://example.com:99999"));
        assert!(valid_host("shop.example.co.uk"));
        assert!(!valid_host("-bad.example"));
        assert!(!valid_host("a b.example"));
    }
}
