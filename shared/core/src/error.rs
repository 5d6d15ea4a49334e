//! The outcome of a request that did not succeed, and the one place that maps it to a status
//! and a problem document.
//!
//! Each function crate has its own error enum and converts it into [`ApiError`]; expected
//! failures become 4xx problems, and only bugs or dependencies that stay down become 5xx.

use crate::problem::{FieldError, Problem};
use http::StatusCode;
use thiserror::Error;

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A request's failure, as the client will see it.
#[derive(Debug, Error)]
pub enum ApiError {
    /// The request is malformed or a field is invalid; `errors` says where and why.
    #[error("invalid request: {detail}")]
    Validation {
        detail: String,
        errors: Vec<FieldError>,
    },
    /// No valid credentials.
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// Valid credentials without the needed role or tenant.
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("method not allowed: {0}")]
    MethodNotAllowed(String),
    #[error("conflict: {0}")]
    Conflict(String),
    /// Understood, but the data cannot answer it (too little history for a forecast).
    #[error("unprocessable: {0}")]
    Unprocessable(String),
    #[error("payload too large: {0}")]
    PayloadTooLarge(String),
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    /// Too many requests; the client may retry after this many seconds.
    #[error("rate limited, retry after {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// A dependency is down or throttling past our retries; the client may retry.
    #[error("service unavailable: {detail}")]
    Unavailable {
        detail: String,
        #[source]
        source: Option<Source>,
    },
    /// Storage throttled past the retries with backoff: the client may retry after this many
    /// seconds (503 with `Retry-After`).
    #[error("service busy, retry after {retry_after_secs} s")]
    Throttled {
        retry_after_secs: u64,
        #[source]
        source: Option<Source>,
    },
    /// A write stopped at its deadline: these ids are stored, those are not. The client may
    /// retry the batch (ids make it idempotent) or just the unstored ones.
    #[error("{} events stored, {} not", stored.len(), unstored.len())]
    PartiallyStored {
        stored: Vec<String>,
        unstored: Vec<String>,
        #[source]
        source: Option<Source>,
    },
    /// A bug. The client sees a generic body; the source is logged.
    #[error("internal error")]
    Internal(#[source] Source),
}

impl ApiError {
    /// A validation problem with a single bad field.
    pub fn invalid_field<S: AsRef<str>>(path: &[S], detail: impl Into<String>) -> Self {
        let error = FieldError::at(path, detail);
        Self::Validation {
            detail: format!("{} is invalid: {}", error.pointer, error.detail),
            errors: vec![error],
        }
    }

    /// A bug, keeping its source for the log.
    pub fn internal(source: impl Into<Source>) -> Self {
        Self::Internal(source.into())
    }

    /// The HTTP status of this outcome. The only place statuses are chosen.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Validation { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable { .. } | Self::Throttled { .. } | Self::PartiallyStored { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The problem document the client receives. Internal details never reach it.
    pub fn to_problem(&self) -> Problem {
        let status = self.status();
        let slug = match self {
            Self::Validation { .. } => "validation",
            Self::Unauthenticated(_) => "unauthenticated",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not-found",
            Self::MethodNotAllowed(_) => "method-not-allowed",
            Self::Conflict(_) => "conflict",
            Self::Unprocessable(_) => "unprocessable",
            Self::PayloadTooLarge(_) => "payload-too-large",
            Self::UnsupportedMediaType(_) => "unsupported-media-type",
            Self::RateLimited { .. } => "rate-limited",
            Self::Unavailable { .. } => "unavailable",
            Self::Throttled { .. } => "throttled",
            Self::PartiallyStored { .. } => "partially-stored",
            Self::Internal(_) => "internal",
        };
        let detail = match self {
            Self::Validation { detail, .. } | Self::Unavailable { detail, .. } => detail.clone(),
            Self::Unauthenticated(d)
            | Self::Forbidden(d)
            | Self::NotFound(d)
            | Self::MethodNotAllowed(d)
            | Self::Conflict(d)
            | Self::Unprocessable(d)
            | Self::PayloadTooLarge(d)
            | Self::UnsupportedMediaType(d) => d.clone(),
            Self::RateLimited { retry_after_secs } => {
                format!("too many requests; retry after {retry_after_secs} s")
            }
            Self::Throttled {
                retry_after_secs, ..
            } => format!("storage is busy; retry after {retry_after_secs} s"),
            Self::PartiallyStored {
                stored, unstored, ..
            } => format!(
                "storage is slow: {} events were stored and {} were not; retry the batch (event ids make it safe) or the unstored ids",
                stored.len(),
                unstored.len()
            ),
            Self::Internal(_) => {
                "an unexpected error occurred; quote the x-correlation-id when reporting it".into()
            }
        };
        let errors = match self {
            Self::Validation { errors, .. } => errors.clone(),
            _ => Vec::new(),
        };
        let mut extensions = serde_json::Map::new();
        if let Self::PartiallyStored {
            stored, unstored, ..
        } = self
        {
            extensions.insert("stored_ids".into(), serde_json::json!(stored));
            extensions.insert("unstored_ids".into(), serde_json::json!(unstored));
        }
        Problem {
            kind: format!("urn:pulse:problem:{slug}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail,
            instance: None,
            errors,
            extensions,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_hide_their_source_from_the_client() {
        // Given a bug carrying a secret in its message
        let err = ApiError::internal("table arn:aws:dynamodb:secret exploded");
        // When it becomes a problem
        let p = err.to_problem();
        // Then the client sees a generic 500 without the detail
        assert_eq!(p.status, 500);
        assert!(!p.detail.contains("secret"));
        assert!(std::error::Error::source(&err).is_some());
    }

    #[test]
    fn validation_problems_carry_their_field_errors() {
        let p = ApiError::invalid_field(&["events", "0", "value"], "must be finite").to_problem();
        assert_eq!(p.status, 400);
        assert_eq!(p.kind, "urn:pulse:problem:validation");
        assert_eq!(p.errors[0].pointer, "#/events/0/value");
        assert_eq!(p.title, "Bad Request");
    }
}
