//! The one place the vault's errors become HTTP (DESIGN §5): the status table, the stable
//! codes, and the response. Its [`ErrorBody`] extension is rendered by the request-id
//! middleware as `{"error", "code", "request_id"}`, so every error body and `X-Request-Id`
//! header agree. 5xx bodies never carry internal detail: the cause is logged.

use crate::error::VaultError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// The status and stable code of each error.
pub trait WebError {
    fn status(&self) -> StatusCode;
    fn code(&self) -> &'static str;
}

impl WebError for VaultError {
    fn status(&self) -> StatusCode {
        match self {
            VaultError::BadRequest(_) => StatusCode::BAD_REQUEST,
            VaultError::Unauthenticated(_) | VaultError::Replayed | VaultError::ClockSkew(_) => {
                StatusCode::UNAUTHORIZED
            }
            VaultError::Forbidden(_) => StatusCode::FORBIDDEN,
            VaultError::NotFound(_) => StatusCode::NOT_FOUND,
            VaultError::Expired | VaultError::Purged => StatusCode::GONE,
            VaultError::LegalHold | VaultError::Conflict(_) => StatusCode::CONFLICT,
            VaultError::RetentionExceeded(_) => StatusCode::UNPROCESSABLE_ENTITY,
            VaultError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            VaultError::InvalidEnvelope(_) => StatusCode::UNPROCESSABLE_ENTITY,
            VaultError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            VaultError::Unavailable(_) | VaultError::AuditUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            VaultError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable code clients switch on.
    fn code(&self) -> &'static str {
        match self {
            VaultError::BadRequest(_) => "bad_request",
            VaultError::Unauthenticated(_) => "unauthenticated",
            VaultError::Replayed => "replayed",
            VaultError::ClockSkew(_) => "clock_skew",
            VaultError::Forbidden(_) => "forbidden",
            VaultError::NotFound(_) => "not_found",
            VaultError::Expired => "expired",
            VaultError::Purged => "purged",
            VaultError::LegalHold => "legal_hold",
            VaultError::Conflict(_) => "conflict",
            VaultError::RetentionExceeded(_) => "retention_exceeded",
            VaultError::PayloadTooLarge(_) => "payload_too_large",
            VaultError::InvalidEnvelope(_) => "invalid_envelope",
            VaultError::RateLimited(_) => "rate_limited",
            VaultError::Unavailable(_) => "unavailable",
            VaultError::AuditUnavailable(_) => "audit_unavailable",
            VaultError::Internal(_) => "internal",
        }
    }
}

/// Every code [`WebError::code`] gives, in the order of DESIGN §5's table: what the OpenAPI
/// document lists, and what the status-table test holds the match to.
pub const ERROR_CODES: [&str; 17] = [
    "bad_request",
    "unauthenticated",
    "replayed",
    "clock_skew",
    "forbidden",
    "not_found",
    "expired",
    "purged",
    "legal_hold",
    "conflict",
    "retention_exceeded",
    "payload_too_large",
    "invalid_envelope",
    "rate_limited",
    "unavailable",
    "audit_unavailable",
    "internal",
];

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

impl IntoResponse for VaultError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            // The cause chain goes to the log (inside the request's span, which carries the
            // request id), never to the client.
            tracing::error!(code = self.code(), cause = %self.cause_chain(), "request failed");
        }
        let mut response = status.into_response();
        if let VaultError::RateLimited(verdict) = &self {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;
    use data_vault_scopes::DenialReason;

    #[test]
    fn status_table_matches_the_design() {
        let cases: Vec<(VaultError, u16, &str)> = vec![
            (VaultError::BadRequest("x".into()), 400, "bad_request"),
            (VaultError::Unauthenticated("x"), 401, "unauthenticated"),
            (VaultError::Replayed, 401, "replayed"),
            (VaultError::ClockSkew("x"), 401, "clock_skew"),
            (
                VaultError::Forbidden(DenialReason::NotMember),
                403,
                "forbidden",
            ),
            (VaultError::NotFound("blob"), 404, "not_found"),
            (VaultError::Expired, 410, "expired"),
            (VaultError::Purged, 410, "purged"),
            (VaultError::LegalHold, 409, "legal_hold"),
            (VaultError::Conflict("x".into()), 409, "conflict"),
            (
                VaultError::RetentionExceeded("x".into()),
                422,
                "retention_exceeded",
            ),
            (VaultError::PayloadTooLarge(1), 413, "payload_too_large"),
            (
                VaultError::InvalidEnvelope("x".into()),
                422,
                "invalid_envelope",
            ),
            (
                VaultError::RateLimited(crate::limits::Verdict {
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
                VaultError::Unavailable(anyhow::anyhow!("db")),
                503,
                "unavailable",
            ),
            (
                VaultError::AuditUnavailable(anyhow::anyhow!("db")),
                503,
                "audit_unavailable",
            ),
            (
                VaultError::Internal(anyhow::anyhow!("bug")),
                500,
                "internal",
            ),
        ];
        let mut seen: Vec<&str> = Vec::new();
        for (err, status, code) in cases {
            assert_eq!(
                (err.status().as_u16(), err.code()),
                (status, code),
                "{err:?}"
            );
            seen.push(code);
        }
        assert_eq!(seen, ERROR_CODES, "one case per code, in the table's order");
        for status in [404, 405, 413, 500, 503] {
            let status = StatusCode::from_u16(status).unwrap_or_default();
            let code = ErrorBody::for_status(status).code;
            assert!(ERROR_CODES.contains(&code), "{status}: {code}");
        }
    }

    #[test]
    fn audit_failures_log_the_driver_error_but_do_not_show_it() {
        use crate::store::CommitError;
        use std::sync::Arc;
        let driver = sqlx::Error::Protocol("simulated audit disk failure".into());
        let failed = CommitError::Store(Arc::new(StoreError::Audit(driver)));
        let err = VaultError::AuditUnavailable(failed.into());
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
    fn server_errors_do_not_show_their_cause() {
        let err =
            VaultError::Unavailable(anyhow::anyhow!("password authentication failed for user x"));
        assert_eq!(err.to_string(), "service unavailable");
        let response = err.into_response();
        let body = response
            .extensions()
            .get::<ErrorBody>()
            .map(|b| b.message.clone());
        assert_eq!(body.as_deref(), Some("service unavailable"));
    }
}
