//! The vault's one error type: what went wrong, in the product's terms (DESIGN §5 lists the
//! stable codes). It knows nothing of HTTP: `http/error.rs` alone turns it into a status and
//! a body, and the CLI prints its message.

use crate::store::StoreError;
use data_vault_scopes::DenialReason;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
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
    #[error("blob has been purged")]
    Purged,
    #[error("blob is under legal hold")]
    LegalHold,
    /// The change conflicts with one in progress (a second rotation of a tenant's key).
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    RetentionExceeded(String),
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

impl From<StoreError> for VaultError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Unavailable(e) => VaultError::Unavailable(e.into()),
            other => VaultError::Internal(other.into()),
        }
    }
}

impl From<crate::domain::Invalid> for VaultError {
    fn from(err: crate::domain::Invalid) -> Self {
        VaultError::BadRequest(err.0)
    }
}

impl VaultError {
    /// The whole cause chain down to the driver's error, for the log only. A link that only
    /// repeats the end of the one before (sqlx's "error returned from database: X" has X as
    /// its source) is written once.
    pub fn cause_chain(&self) -> String {
        match self {
            VaultError::Unavailable(e)
            | VaultError::AuditUnavailable(e)
            | VaultError::Internal(e) => {
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
    fn a_cause_that_repeats_its_parent_is_logged_once() {
        let err = VaultError::Internal(
            anyhow::anyhow!("disk full").context("error returned from database: disk full"),
        );
        assert_eq!(err.cause_chain(), "error returned from database: disk full");
        let err = VaultError::Internal(anyhow::anyhow!("disk full").context("commit"));
        assert_eq!(err.cause_chain(), "commit: disk full");
    }
}
