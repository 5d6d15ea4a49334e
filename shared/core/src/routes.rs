//! Who may call each HTTP route: the one table of the roles every route admits.
//!
//! `Caller::from_request` (pulse-http) looks the request's route key up here, so a
//! handler cannot forget its check: a caller with no known role (a Cognito user in no group, an
//! unknown group) is refused with 403 on every authenticated route, and a caller below the
//! route's role too. Handlers add finer checks on what a request asks for (a business metric
//! needs `analyst` even on a route a viewer may call). A test walks every route of
//! template.yaml against this table, so a new route cannot ship undeclared.

use crate::role::Role;

/// What a route admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: no authorizer (liveness, the tracker's beacons).
    Public,
    /// A person's token with this role or a higher one.
    Role(Role),
    /// An admin's token, or an API key with the `ingest` scope.
    Ingest,
}

/// Every HTTP route (API Gateway's route key) and what it admits.
pub const ROUTES: &[(&str, Access)] = &[
    ("GET /api/v1/health", Access::Public),
    ("POST /api/v1/track", Access::Public),
    ("GET /api/v1/me", Access::Role(Role::Viewer)),
    ("POST /api/v1/events", Access::Ingest),
    ("POST /v1/metrics", Access::Ingest),
    ("POST /api/v1/imports", Access::Ingest),
    ("GET /api/v1/api-keys", Access::Role(Role::Admin)),
    ("POST /api/v1/api-keys", Access::Role(Role::Admin)),
    ("DELETE /api/v1/api-keys/{id}", Access::Role(Role::Admin)),
    ("GET /api/v1/sites", Access::Role(Role::Admin)),
    ("POST /api/v1/sites", Access::Role(Role::Admin)),
    ("GET /api/v1/sites/{id}", Access::Role(Role::Admin)),
    ("PUT /api/v1/sites/{id}", Access::Role(Role::Admin)),
    ("DELETE /api/v1/sites/{id}", Access::Role(Role::Admin)),
    ("GET /api/v1/metric-definitions", Access::Role(Role::Viewer)),
    ("POST /api/v1/metric-definitions", Access::Role(Role::Admin)),
    (
        "GET /api/v1/metric-definitions/{name}",
        Access::Role(Role::Viewer),
    ),
    (
        "PUT /api/v1/metric-definitions/{name}",
        Access::Role(Role::Admin),
    ),
    (
        "DELETE /api/v1/metric-definitions/{name}",
        Access::Role(Role::Admin),
    ),
    ("POST /api/v1/metrics/query", Access::Role(Role::Viewer)),
    ("GET /api/v1/metrics/history", Access::Role(Role::Viewer)),
    ("GET /api/v1/metrics", Access::Role(Role::Viewer)),
    ("GET /api/v1/metrics/catalog", Access::Role(Role::Viewer)),
    ("PUT /api/v1/metrics/cards", Access::Role(Role::Admin)),
    ("PUT /api/v1/web/goals", Access::Role(Role::Admin)),
    ("GET /api/v1/settings", Access::Role(Role::Viewer)),
    ("PUT /api/v1/settings", Access::Role(Role::Admin)),
    ("GET /api/v1/web/{view}", Access::Role(Role::Viewer)),
    ("GET /api/v1/business/{view}", Access::Role(Role::Analyst)),
    ("GET /api/v1/health/{view}", Access::Role(Role::Admin)),
    ("GET /api/v1/ml/{view}", Access::Role(Role::Admin)),
    ("GET /api/v1/dashboard/summary", Access::Role(Role::Viewer)),
    ("POST /api/v1/funnels/query", Access::Role(Role::Viewer)),
    (
        "GET /api/v1/predictions/{metric}",
        Access::Role(Role::Viewer),
    ),
    // Each metric's own role applies: a viewer sees the accuracy of what it may read.
    (
        "GET /api/v1/predictions/accuracy",
        Access::Role(Role::Viewer),
    ),
    (
        "POST /api/v1/predictions/retrain",
        Access::Role(Role::Admin),
    ),
    (
        "GET /api/v1/predictions/retrain/{job}",
        Access::Role(Role::Admin),
    ),
    // The metric's own role applies on top (a business metric needs analyst).
    ("GET /api/v1/anomalies", Access::Role(Role::Viewer)),
];

/// What `route_key` (`METHOD /path/{param}`) admits, if it is a route of Pulse.
pub fn access(route_key: &str) -> Option<Access> {
    ROUTES
        .iter()
        .find(|(key, _)| *key == route_key)
        .map(|(_, access)| *access)
}

/// The route key whose template matches a concrete `method` and `path` (`/api/v1/sites/s_1`
/// matches `/api/v1/sites/{id}`): for requests that carry no route key (in-process tests,
/// `cargo lambda watch`). A literal segment wins over a parameter, as in API Gateway
/// (`/api/v1/predictions/accuracy` is not the prediction of a metric named `accuracy`).
pub fn matching(method: &str, path: &str) -> Option<&'static str> {
    let path = path.trim_end_matches('/');
    let matches = ROUTES.iter().map(|(key, _)| *key).filter(|key| {
        let Some((m, template)) = key.split_once(' ') else {
            return false;
        };
        let (mut want, mut got) = (template.split('/'), path.split('/'));
        m == method
            && loop {
                match (want.next(), got.next()) {
                    (None, None) => break true,
                    (Some(w), Some(g)) if w.starts_with('{') && !g.is_empty() => {}
                    (Some(w), Some(g)) if w == g => {}
                    _ => break false,
                }
            }
    });
    matches.max_by_key(|key| key.split('/').filter(|w| !w.starts_with('{')).count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_literal_segment_wins_over_a_parameter() {
        assert_eq!(
            matching("GET", "/api/v1/predictions/accuracy"),
            Some("GET /api/v1/predictions/accuracy")
        );
        assert_eq!(
            matching("GET", "/api/v1/predictions/page_view"),
            Some("GET /api/v1/predictions/{metric}")
        );
        assert_eq!(
            matching("GET", "/api/v1/predictions/retrain/j1"),
            Some("GET /api/v1/predictions/retrain/{job}")
        );
    }

    #[test]
    fn concrete_paths_match_their_templates_and_nothing_else() {
        assert_eq!(
            matching("GET", "/api/v1/sites/s_1"),
            Some("GET /api/v1/sites/{id}")
        );
        assert_eq!(matching("GET", "/api/v1/sites"), Some("GET /api/v1/sites"));
        assert_eq!(
            matching("GET", "/api/v1/business/overview/"),
            Some("GET /api/v1/business/{view}")
        );
        assert_eq!(matching("PATCH", "/api/v1/sites/s_1"), None);
        assert_eq!(matching("GET", "/api/v1/sites/s_1/x"), None);
        assert_eq!(matching("GET", "/api/v1/sites/"), Some("GET /api/v1/sites"));
    }

    #[test]
    fn every_route_is_declared_once() {
        let mut keys: Vec<&str> = ROUTES.iter().map(|(k, _)| *k).collect();
        keys.sort_unstable();
        let before = keys.len();
        keys.dedup();
        assert_eq!(keys.len(), before);
    }
}
