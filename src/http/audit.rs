//! `/api/v1/vault/audit`: querying and verifying the audit log.

use super::{extract::Authenticated, query, AppState};
use crate::domain::{BlobId, OrgId, Principal, Scope};
use crate::error::VaultError;
use crate::service::AuditParams;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/vault/audit", get(query_events))
        .route("/api/v1/vault/audit/verify", get(verify))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    blob_id: Option<String>,
    scope: Option<String>,
    requester: Option<String>,
    org_id: Option<String>,
    start: Option<String>,
    end: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyQuery {
    org_id: Option<String>,
}

fn number(name: &str, text: Option<String>, min: i64) -> Result<Option<i64>, VaultError> {
    text.map(|t| match t.parse::<i64>() {
        Ok(n) if n >= min => Ok(n),
        _ => Err(VaultError::BadRequest(format!(
            "{name} must be an integer of at least {min}"
        ))),
    })
    .transpose()
}

/// Parses the query of `GET /api/v1/vault/audit`.
pub fn audit_params(raw: Option<&str>) -> Result<AuditParams, VaultError> {
    let q: EventsQuery = query::parse(raw)?;
    let params = AuditParams {
        blob_id: q.blob_id.as_deref().map(BlobId::parse).transpose()?,
        scope: q.scope.as_deref().map(Scope::parse).transpose()?,
        requester: q.requester.as_deref().map(Principal::parse).transpose()?,
        org_id: q.org_id.as_deref().map(OrgId::parse).transpose()?,
        start: number("start", q.start, 0)?,
        end: number("end", q.end, 0)?,
        limit: number("limit", q.limit, 1)?,
        cursor: number("cursor", q.cursor, 1)?,
    };
    if let (Some(start), Some(end)) = (params.start, params.end) {
        if end <= start {
            return Err(VaultError::BadRequest("end must be after start".into()));
        }
    }
    Ok(params)
}

/// Parses the query of `GET /api/v1/vault/audit/verify`: the org whose chain to verify.
pub fn verify_org(raw: Option<&str>) -> Result<Option<OrgId>, VaultError> {
    let q: VerifyQuery = query::parse(raw)?;
    Ok(q.org_id.as_deref().map(OrgId::parse).transpose()?)
}

async fn query_events(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    RawQuery(raw): RawQuery,
) -> Result<Response, VaultError> {
    let params = audit_params(raw.as_deref())?;
    Ok(Json(state.vault.query_audit(&caller, params).await?).into_response())
}

async fn verify(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    RawQuery(raw): RawQuery,
) -> Result<Response, VaultError> {
    let org = verify_org(raw.as_deref())?;
    Ok(Json(state.vault.verify_audit(&caller, org.as_ref()).await?).into_response())
}
