//! `/api/v1/vault/audit`: querying and verifying the audit log.

use super::{extract::Authenticated, query, AppState};
use crate::audit::ChainName;
use crate::domain::{BlobId, OrgId, Principal, Scope};
use crate::error::VaultError;
use crate::service::AuditParams;
use axum::extract::{RawQuery, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/vault/audit", get(query_events))
        .route("/api/v1/vault/audit/verify", get(verify))
        .route("/api/v1/vault/audit/log-key", get(log_key))
        .route("/api/v1/vault/audit/checkpoint", get(checkpoint))
        .route("/api/v1/vault/audit/proof/inclusion", get(inclusion))
        .route("/api/v1/vault/audit/proof/consistency", get(consistency))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct CheckpointQuery {
    chain: Option<String>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct InclusionQuery {
    chain: Option<String>,
    seq: Option<String>,
    tree_size: Option<String>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ConsistencyQuery {
    chain: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

fn chain(text: Option<String>) -> Result<ChainName, VaultError> {
    let text = text.ok_or_else(|| VaultError::BadRequest("chain is required".into()))?;
    Ok(ChainName::parse(&text)?)
}

fn required(name: &str, text: Option<String>) -> Result<i64, VaultError> {
    number(name, text, 1)?.ok_or_else(|| VaultError::BadRequest(format!("{name} is required")))
}

/// Parses the query of `GET /api/v1/vault/audit/proof/inclusion`.
pub fn inclusion_params(raw: Option<&str>) -> Result<(ChainName, i64, Option<i64>), VaultError> {
    let q: InclusionQuery = query::parse(raw)?;
    Ok((
        chain(q.chain)?,
        required("seq", q.seq)?,
        number("tree_size", q.tree_size, 1)?,
    ))
}

/// Parses the query of `GET /api/v1/vault/audit/proof/consistency`.
pub fn consistency_params(raw: Option<&str>) -> Result<(ChainName, i64, Option<i64>), VaultError> {
    let q: ConsistencyQuery = query::parse(raw)?;
    let params = (
        chain(q.chain)?,
        required("from", q.from)?,
        number("to", q.to, 1)?,
    );
    if params.2.is_some_and(|to| params.1 > to) {
        return Err(VaultError::BadRequest("from must not exceed to".into()));
    }
    Ok(params)
}

#[utoipa::path(get, operation_id = "auditLogKey", path = "/api/v1/vault/audit/log-key", tag = "audit", responses((status = 200, body = serde_json::Value)))]
async fn log_key(
    State(state): State<AppState>,
    Authenticated(_caller): Authenticated,
) -> Result<Response, VaultError> {
    Ok(Json(state.vault.log_verifier_key()?).into_response())
}

#[utoipa::path(get, operation_id = "auditCheckpoint", path = "/api/v1/vault/audit/checkpoint", tag = "audit", params(CheckpointQuery), responses((status = 200, body = String, content_type = "text/plain")))]
async fn checkpoint(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    RawQuery(raw): RawQuery,
) -> Result<Response, VaultError> {
    let q: CheckpointQuery = query::parse(raw.as_deref())?;
    let chain = chain(q.chain)?;
    let note = state.vault.checkpoint(&caller, &chain).await?;
    Ok(([(CONTENT_TYPE, "text/plain; charset=utf-8")], note).into_response())
}

#[utoipa::path(get, operation_id = "auditInclusionProof", path = "/api/v1/vault/audit/proof/inclusion", tag = "audit", params(InclusionQuery), responses((status = 200, body = serde_json::Value)))]
async fn inclusion(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    RawQuery(raw): RawQuery,
) -> Result<Response, VaultError> {
    let (chain, seq, tree_size) = inclusion_params(raw.as_deref())?;
    let proof = state
        .vault
        .inclusion_proof(&caller, &chain, seq, tree_size)
        .await?;
    Ok(Json(proof).into_response())
}

#[utoipa::path(get, operation_id = "auditConsistencyProof", path = "/api/v1/vault/audit/proof/consistency", tag = "audit", params(ConsistencyQuery), responses((status = 200, body = serde_json::Value)))]
async fn consistency(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    RawQuery(raw): RawQuery,
) -> Result<Response, VaultError> {
    let (chain, from, to) = consistency_params(raw.as_deref())?;
    let proof = state
        .vault
        .consistency_proof(&caller, &chain, from, to)
        .await?;
    Ok(Json(proof).into_response())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
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

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
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

#[utoipa::path(get, operation_id = "queryAudit", path = "/api/v1/vault/audit", tag = "audit", params(EventsQuery), responses((status = 200, body = serde_json::Value)))]
async fn query_events(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    RawQuery(raw): RawQuery,
) -> Result<Response, VaultError> {
    let params = audit_params(raw.as_deref())?;
    Ok(Json(state.vault.query_audit(&caller, params).await?).into_response())
}

#[utoipa::path(get, operation_id = "verifyAuditChain", path = "/api/v1/vault/audit/verify", tag = "audit", params(VerifyQuery), responses((status = 200, body = serde_json::Value)))]
async fn verify(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    RawQuery(raw): RawQuery,
) -> Result<Response, VaultError> {
    let org = verify_org(raw.as_deref())?;
    Ok(Json(state.vault.verify_audit(&caller, org.as_ref()).await?).into_response())
}
