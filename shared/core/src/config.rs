//! Configuration of a function, read once at start from its environment.
//!
//! template.yaml's `Globals.Function.Environment` sets these variables on AWS; the local cloud
//! resolves the same declarations and passes them through [`Config::from_lookup`], so a variable
//! missing from the template fails locally exactly as it would when deployed.

use thiserror::Error;

/// Everything a function reads from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Deployment stage (`local`, `dev`, `prod`, ...).
    pub stage: String,
    /// Physical names of the three tables.
    pub tables: Tables,
    /// Which JWT claims carry the tenant and the roles.
    pub claims: ClaimNames,
    /// Ingest limits (`INGEST_*`).
    pub limits: crate::limits::Limits,
    /// Days raw events are kept (`RAW_EVENT_RETENTION_DAYS`, default 7).
    pub raw_retention_days: i64,
    /// Days each bucket resolution is kept (`MINUTE_RETENTION_DAYS` 7,
    /// `FIVE_MINUTE_RETENTION_DAYS` 30, `HOUR_RETENTION_DAYS` 365, `DAY_RETENTION_DAYS` 1825).
    pub retention: crate::time::Retention,
    /// Series per metric before new tag sets fold into `__other__` (`SERIES_CAP`, default 1000).
    pub series_cap: usize,
    /// Tracking requests per client IP per minute (`TRACK_RATE_LIMIT`, default 100).
    pub track_rate_limit: u64,
    /// The token issuer the Lambda authorizer trusts (`JWT_ISSUER`, `JWT_AUDIENCE`,
    /// `JWKS_URL`); `None` where `JWT_ISSUER` is unset (only API keys are then accepted).
    pub jwt: Option<JwtSettings>,
    /// The delay queue of live pushes waiting for a subscriber's interval (URL or name).
    pub live_push_queue: Option<String>,
    /// The bucket where stream records that can never succeed are kept (the stream's
    /// on-failure destination), for the functions that consume a stream.
    pub dead_letter_bucket: Option<String>,
    /// The WebSocket API's management endpoint (`WS_ENDPOINT`,
    /// `https://{api}.execute-api.{region}.amazonaws.com/{stage}`) for PostToConnection.
    pub ws_endpoint: Option<String>,
    /// The queue of retrains requested through the API, read by the retrain job
    /// (`RETRAIN_QUEUE`, URL or name).
    pub retrain_queue: Option<String>,
    /// The queue that tells the detectors which minutes are sealed (`DETECT_QUEUE`, URL or
    /// name), for the rollup job.
    pub detect_queue: Option<String>,
}

/// Who issues the tokens a function verifies itself (the HTTP API's JWT authorizer needs no
/// function code; the Lambda authorizer of the ingest routes does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtSettings {
    /// The `iss` claim every token must carry.
    pub issuer: String,
    /// Accepted `aud` (or `client_id`) values: `JWT_AUDIENCE`, comma-separated.
    pub audience: Vec<String>,
    /// Where the signing keys are; `None`: found through the issuer's OpenID discovery
    /// document. The local cloud points it at its own issuer's keys.
    pub jwks_url: Option<String>,
}

/// Physical table names, as CloudFormation (or the local cloud) named them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    pub events: String,
    pub metrics: String,
    pub app: String,
}

impl Tables {
    /// The tables with their logical names, in a stable order.
    pub fn named(&self) -> [(&'static str, &str); 3] {
        [
            ("events", self.events.as_str()),
            ("metrics", self.metrics.as_str()),
            ("app", self.app.as_str()),
        ]
    }
}

/// Names of the JWT claims Pulse reads. Cognito's defaults; an external identity provider
/// names its own through the template parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimNames {
    pub tenant: String,
    pub roles: String,
}

impl Default for ClaimNames {
    fn default() -> Self {
        Self {
            tenant: "custom:tenant".to_owned(),
            roles: "cognito:groups".to_owned(),
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error("environment variable {name} is empty")]
    Empty { name: &'static str },
}

impl Config {
    /// The defaults of every optional setting, with these tables (tests and tools).
    pub fn with_tables(tables: Tables) -> Self {
        Self::with_settings(tables, &|_: &str| None)
    }

    /// Reads the process environment. Call once, at start.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `get`, so the local cloud and tests can supply a function's
    /// environment without touching the process's.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let required = |name: &'static str| match get(name) {
            None => Err(ConfigError::Missing(name)),
            Some(v) if v.trim().is_empty() => Err(ConfigError::Empty { name }),
            Some(v) => Ok(v),
        };
        let tables = Tables {
            events: required("EVENTS_TABLE")?,
            metrics: required("METRICS_TABLE")?,
            app: required("APP_TABLE")?,
        };
        Ok(Self::with_settings(tables, &get))
    }

    /// The optional settings read through `get`, each with its default.
    fn with_settings(tables: Tables, get: &impl Fn(&str) -> Option<String>) -> Self {
        let defaults = ClaimNames::default();
        let optional = |name: &str, default: String| {
            get(name)
                .filter(|v| !v.trim().is_empty())
                .unwrap_or(default)
        };
        Self {
            stage: optional("PULSE_STAGE", "dev".to_owned()),
            tables,
            claims: ClaimNames {
                tenant: optional("TENANT_CLAIM", defaults.tenant),
                roles: optional("ROLES_CLAIM", defaults.roles),
            },
            raw_retention_days: positive(get, "RAW_EVENT_RETENTION_DAYS", 7),
            retention: {
                let d = crate::time::Retention::default();
                crate::time::Retention {
                    minute_days: positive(get, "MINUTE_RETENTION_DAYS", d.minute_days),
                    five_minute_days: positive(
                        get,
                        "FIVE_MINUTE_RETENTION_DAYS",
                        d.five_minute_days,
                    ),
                    hour_days: positive(get, "HOUR_RETENTION_DAYS", d.hour_days),
                    day_days: positive(get, "DAY_RETENTION_DAYS", d.day_days),
                }
            },
            series_cap: positive(get, "SERIES_CAP", 1000),
            track_rate_limit: positive(get, "TRACK_RATE_LIMIT", 100),
            limits: crate::limits::Limits::from_lookup(get),
            jwt: get("JWT_ISSUER")
                .filter(|v| !v.trim().is_empty())
                .map(|issuer| JwtSettings {
                    issuer: issuer.trim().to_owned(),
                    audience: get("JWT_AUDIENCE")
                        .unwrap_or_default()
                        .split(',')
                        .map(str::trim)
                        .filter(|a| !a.is_empty())
                        .map(str::to_owned)
                        .collect(),
                    jwks_url: get("JWKS_URL").filter(|v| !v.trim().is_empty()),
                }),
            ws_endpoint: get("WS_ENDPOINT").filter(|v| !v.trim().is_empty()),
            dead_letter_bucket: get("DEAD_LETTER_BUCKET").filter(|v| !v.trim().is_empty()),
            live_push_queue: get("LIVE_PUSH_QUEUE").filter(|v| !v.trim().is_empty()),
            retrain_queue: get("RETRAIN_QUEUE").filter(|v| !v.trim().is_empty()),
            detect_queue: get("DETECT_QUEUE").filter(|v| !v.trim().is_empty()),
        }
    }
}

/// A positive number from `name`, or `default`.
fn positive<T: std::str::FromStr + PartialOrd + Default>(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: T,
) -> T {
    get(name)
        .and_then(|v| v.parse().ok())
        .filter(|v| *v > T::default())
        .unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn reads_tables_and_defaults_the_claim_names() {
        // Given the table variables only
        let get = lookup(&[
            ("EVENTS_TABLE", "ev"),
            ("METRICS_TABLE", "me"),
            ("APP_TABLE", "ap"),
        ]);
        // When the configuration is read
        let config = Config::from_lookup(get).expect("valid config");
        // Then the tables are named and the claims are Cognito's
        assert_eq!(config.tables.named()[1], ("metrics", "me"));
        assert_eq!(config.claims, ClaimNames::default());
        assert_eq!(config.stage, "dev");
    }

    #[test]
    fn names_the_missing_or_empty_variable() {
        let missing = Config::from_lookup(lookup(&[("EVENTS_TABLE", "ev")]));
        assert_eq!(missing, Err(ConfigError::Missing("METRICS_TABLE")));
        let empty = Config::from_lookup(lookup(&[
            ("EVENTS_TABLE", "ev"),
            ("METRICS_TABLE", " "),
            ("APP_TABLE", "ap"),
        ]));
        assert_eq!(
            empty,
            Err(ConfigError::Empty {
                name: "METRICS_TABLE"
            })
        );
    }

    #[test]
    fn external_identity_provider_claims_override_the_defaults() {
        let config = Config::from_lookup(lookup(&[
            ("EVENTS_TABLE", "ev"),
            ("METRICS_TABLE", "me"),
            ("APP_TABLE", "ap"),
            ("TENANT_CLAIM", "org"),
            ("ROLES_CLAIM", "roles"),
        ]))
        .expect("valid config");
        assert_eq!(config.claims.tenant, "org");
        assert_eq!(config.claims.roles, "roles");
    }
}
