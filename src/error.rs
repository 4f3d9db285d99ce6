//! The one error type of the HTTP API and its status table (DESIGN §5).
//!
//! A handler returns `ApiError`; its response carries an [`ErrorBody`] extension that the
//! request-id middleware renders as `{"error", "code", "request_id"}`, so every error body and
//! `X-Request-Id` header agree. 5xx bodies never carry internal detail: the cause is logged.

use crate::store::StoreError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use data_vault_scopes::DenialReason;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthenticated(&'static str),
    #[error("nonce was already used")]
    Replayed,
    #[error("{0}")]
    ClockSkew(&'static str),
    #[error("{}", .0.message())]
    Forbidden(DenialReason),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("blob has expired")]
    Expired,
    #[error("envelope exceeds the limit of {0} bytes")]
    PayloadTooLarge(usize),
    #[error("{0}")]
    InvalidEnvelope(String),
    #[error("rate limit exceeded")]
    RateLimited(crate::limits::Verdict),
    #[error("service unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error("audit log unavailable")]
    AuditUnavailable(#[source] anyhow::Error),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated(_) | ApiError::Replayed | ApiError::ClockSkew(_) => {
                StatusCode::UNAUTHORIZED
            }
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Expired => StatusCode::GONE,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::InvalidEnvelope(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) | ApiError::AuditUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable code clients switch on.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthenticated(_) => "unauthenticated",
            ApiError::Replayed => "replayed",
            ApiError::ClockSkew(_) => "clock_skew",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Expired => "expired",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::InvalidEnvelope(_) => "invalid_envelope",
            ApiError::RateLimited(_) => "rate_limited",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::AuditUnavailable(_) => "audit_unavailable",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(e) => ApiError::Unavailable(e.into()),
            other => ApiError::Internal(other.into()),
        }
    }
}

impl From<crate::domain::Invalid> for ApiError {
    fn from(err: crate::domain::Invalid) -> Self {
        ApiError::BadRequest(err.0)
    }
}

/// The `X-RateLimit-*` headers of a verdict.
pub fn rate_limit_headers(headers: &mut axum::http::HeaderMap, verdict: &crate::limits::Verdict) {
    headers.insert("x-ratelimit-limit", HeaderValue::from(verdict.limit));
    headers.insert(
        "x-ratelimit-remaining",
        HeaderValue::from(verdict.remaining),
    );
    headers.insert("x-ratelimit-reset", HeaderValue::from(verdict.reset_secs));
}

/// What the request-id middleware renders into the response body.
#[derive(Debug, Clone)]
pub struct ErrorBody {
    pub code: &'static str,
    pub message: String,
}

impl ErrorBody {
    /// A body for a status that no handler produced (unknown route, wrong method, timeout).
    pub fn for_status(status: StatusCode) -> Self {
        let (code, message) = match status {
            StatusCode::NOT_FOUND => ("not_found", "no such route"),
            StatusCode::METHOD_NOT_ALLOWED => ("bad_request", "method not allowed on this route"),
            StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "request body too large"),
            s if s.is_server_error() => ("internal", "internal error"),
            _ => ("bad_request", "bad request"),
        };
        Self {
            code,
            message: message.to_owned(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            // The cause chain goes to the log (inside the request's span, which carries the
            // request id), never to the client.
            tracing::error!(code = self.code(), cause = %self.cause_chain(), "request failed");
        }
        let mut response = status.into_response();
        if let ApiError::RateLimited(verdict) = &self {
            let headers = response.headers_mut();
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(verdict.retry_after_secs),
            );
            rate_limit_headers(headers, verdict);
        }
        response.extensions_mut().insert(ErrorBody {
            code: self.code(),
            message: self.to_string(),
        });
        response
    }
}

impl ApiError {
    /// The whole cause chain down to the driver's error, for the log only. A link that only
    /// repeats the end of the one before (sqlx's "error returned from database: X" has X as
    /// its source) is written once.
    fn cause_chain(&self) -> String {
        match self {
            ApiError::Unavailable(e) | ApiError::AuditUnavailable(e) | ApiError::Internal(e) => {
                let mut out = String::new();
                for cause in e.chain() {
                    let text = cause.to_string();
                    if out.ends_with(&text) {
                        continue;
                    }
                    if !out.is_empty() {
                        out.push_str(": ");
                    }
                    out.push_str(&text);
                }
                out
            }
            other => other.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_table_matches_the_design() {
        let cases: Vec<(ApiError, u16, &str)> = vec![
            (ApiError::BadRequest("x".into()), 400, "bad_request"),
            (ApiError::Unauthenticated("x"), 401, "unauthenticated"),
            (ApiError::Replayed, 401, "replayed"),
            (ApiError::ClockSkew("x"), 401, "clock_skew"),
            (
                ApiError::Forbidden(DenialReason::NotMember),
                403,
                "forbidden",
            ),
            (ApiError::NotFound("blob"), 404, "not_found"),
            (ApiError::Expired, 410, "expired"),
            (ApiError::PayloadTooLarge(1), 413, "payload_too_large"),
            (
                ApiError::InvalidEnvelope("x".into()),
                422,
                "invalid_envelope",
            ),
            (
                ApiError::RateLimited(crate::limits::Verdict {
                    allowed: false,
                    limit: 1,
                    remaining: 0,
                    reset_secs: 1,
                    retry_after_secs: 1,
                }),
                429,
                "rate_limited",
            ),
            (
                ApiError::Unavailable(anyhow::anyhow!("db")),
                503,
                "unavailable",
            ),
            (
                ApiError::AuditUnavailable(anyhow::anyhow!("db")),
                503,
                "audit_unavailable",
            ),
            (ApiError::Internal(anyhow::anyhow!("bug")), 500, "internal"),
        ];
        for (err, status, code) in cases {
            assert_eq!(
                (err.status().as_u16(), err.code()),
                (status, code),
                "{err:?}"
            );
        }
    }

    #[test]
    fn audit_failures_log_the_driver_error_but_do_not_show_it() {
        use crate::store::CommitError;
        use std::sync::Arc;
        let driver = sqlx::Error::Protocol("simulated audit disk failure".into());
        let failed = CommitError::Store(Arc::new(StoreError::Audit(driver)));
        let err = ApiError::AuditUnavailable(failed.into());
        let logged = err.cause_chain();
        assert!(
            logged.contains("audit log write failed")
                && logged.contains("simulated audit disk failure"),
            "{logged}"
        );
        let response = err.into_response();
        let body = response
            .extensions()
            .get::<ErrorBody>()
            .map(|b| b.message.clone());
        assert_eq!(body.as_deref(), Some("audit log unavailable"));
    }

    #[test]
    fn a_cause_that_repeats_its_parent_is_logged_once() {
        let err = ApiError::Internal(
            anyhow::anyhow!("disk full").context("error returned from database: disk full"),
        );
        assert_eq!(err.cause_chain(), "error returned from database: disk full");
        let err = ApiError::Internal(anyhow::anyhow!("disk full").context("commit"));
        assert_eq!(err.cause_chain(), "commit: disk full");
    }

    #[test]
    fn server_errors_do_not_show_their_cause() {
        let err =
            ApiError::Unavailable(anyhow::anyhow!("password authentication failed for user x"));
        assert_eq!(err.to_string(), "service unavailable");
        let response = err.into_response();
        let body = response
            .extensions()
            .get::<ErrorBody>()
            .map(|b| b.message.clone());
        assert_eq!(body.as_deref(), Some("service unavailable"));
    }
}
