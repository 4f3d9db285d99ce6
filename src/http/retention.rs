//! Governing data over time (DESIGN §12–§14): retention policies, legal holds, purge sweeps,
//! data-subject export and erasure, and the compliance report. Each handler parses, calls
//! one vault function and shapes the reply.

use super::{extract::Authenticated, json_body, query, AppState};
use crate::domain::{BlobId, Note, OrgId, Principal};
use crate::error::VaultError;
use crate::retention::PolicySettings;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/vault/retention/policies", get(list_policies))
        .route("/api/v1/vault/retention/policies/{name}", put(put_policy))
        .route(
            "/api/v1/vault/blobs/{id}/hold",
            put(set_hold).delete(release_hold),
        )
        .route("/api/v1/vault/purge/sweep", post(sweep))
        .route(
            "/api/v1/vault/subjects/{principal}",
            axum::routing::delete(erase),
        )
        .route("/api/v1/vault/subjects/{principal}/export", get(export))
        .route("/api/v1/vault/compliance/report", get(report))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct PolicyBody {
    /// Optional; when given it must equal the name in the path.
    name: Option<String>,
    #[serde(default)]
    max_retention_days: Option<i64>,
    #[serde(default)]
    default_ttl_days: Option<i64>,
    purge_method: String,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct HoldBody {
    reason: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct SweepBody {
    #[serde(default)]
    dry_run: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoQuery {}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ReportQuery {
    org_id: Option<String>,
}

/// A route that takes no query string refuses one, as every other route refuses unknown
/// parameters.
fn no_query(raw: Option<&str>) -> Result<(), VaultError> {
    query::parse::<NoQuery>(raw).map(|_| ())
}

/// The principal a subject route names; `me` is the caller.
fn subject(caller: &crate::service::Caller, named: &str) -> Result<Principal, VaultError> {
    if named == "me" {
        Ok(caller.principal.clone())
    } else {
        Ok(Principal::parse(named)?)
    }
}

#[utoipa::path(get, operation_id = "listRetentionPolicies", path = "/api/v1/vault/retention/policies", tag = "retention", responses((status = 200, body = serde_json::Value)))]
async fn list_policies(
    State(state): State<AppState>,
    Authenticated(_caller): Authenticated,
    RawQuery(raw): RawQuery,
) -> Result<Response, VaultError> {
    no_query(raw.as_deref())?;
    let policies = state.vault.list_policies().await?;
    Ok(Json(serde_json::json!({ "policies": policies })).into_response())
}

#[utoipa::path(put, operation_id = "putRetentionPolicy", path = "/api/v1/vault/retention/policies/{name}", tag = "retention", params(("name" = String, Path)), request_body = PolicyBody, responses((status = 201, body = serde_json::Value), (status = 200, body = serde_json::Value)))]
async fn put_policy(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Response, VaultError> {
    no_query(raw.as_deref())?;
    let body: PolicyBody = json_body::parse(&body)?;
    if body.name.as_deref().is_some_and(|n| n != name) {
        return Err(VaultError::BadRequest(
            "name in the body must equal the name in the path".into(),
        ));
    }
    let settings = PolicySettings {
        max_retention_days: body.max_retention_days,
        default_ttl_days: body.default_ttl_days,
        purge_method: body.purge_method,
        description: body.description,
    };
    let (policy, created) = state.vault.put_policy(&caller, &name, settings).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(policy)).into_response())
}

#[utoipa::path(put, operation_id = "setLegalHold", path = "/api/v1/vault/blobs/{id}/hold", tag = "retention", params(("id" = String, Path, format = Uuid)), request_body = HoldBody, responses((status = 200, body = crate::service::BlobMetadata)))]
async fn set_hold(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Response, VaultError> {
    no_query(raw.as_deref())?;
    let id = BlobId::parse(&id)?;
    let body: HoldBody = json_body::parse(&body)?;
    if body.reason.trim().is_empty() {
        return Err(VaultError::BadRequest("a legal hold needs a reason".into()));
    }
    let reason = Note::parse("reason", &body.reason)?;
    let metadata = state.vault.set_hold(&caller, &id, reason).await?;
    Ok(Json(metadata).into_response())
}

#[utoipa::path(delete, operation_id = "releaseLegalHold", path = "/api/v1/vault/blobs/{id}/hold", tag = "retention", params(("id" = String, Path, format = Uuid)), request_body(content = Option<HoldBody>, description = "optional: the reason, audited"), responses((status = 200, body = crate::service::BlobMetadata)))]
async fn release_hold(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Response, VaultError> {
    no_query(raw.as_deref())?;
    let id = BlobId::parse(&id)?;
    // The release is audited with its reason when one is given.
    let reason = if body.is_empty() {
        None
    } else {
        let body: HoldBody = json_body::parse(&body)?;
        Some(Note::parse("reason", &body.reason)?)
    };
    let metadata = state.vault.release_hold(&caller, &id, reason).await?;
    Ok(Json(metadata).into_response())
}

#[utoipa::path(post, operation_id = "purgeSweep", path = "/api/v1/vault/purge/sweep", tag = "retention", request_body(content = Option<SweepBody>, description = "optional; an empty body is a real sweep"), responses((status = 200, body = serde_json::Value)))]
async fn sweep(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Response, VaultError> {
    no_query(raw.as_deref())?;
    let body: SweepBody = if body.is_empty() {
        SweepBody { dry_run: false }
    } else {
        json_body::parse(&body)?
    };
    let report = state
        .vault
        .sweep_on_demand(&caller, body.dry_run, &|_| {})
        .await?;
    Ok(Json(report).into_response())
}

#[utoipa::path(get, operation_id = "exportSubject", path = "/api/v1/vault/subjects/{principal}/export", tag = "subjects", params(("principal" = String, Path)), responses((status = 200, body = String, content_type = "application/x-ndjson")))]
async fn export(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(principal): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, VaultError> {
    no_query(raw.as_deref())?;
    let subject = subject(&caller, &principal)?;
    let stream = state.vault.export_subject(&caller, &subject).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response())
}

#[utoipa::path(delete, operation_id = "eraseSubject", path = "/api/v1/vault/subjects/{principal}", tag = "subjects", params(("principal" = String, Path)), responses((status = 200, body = serde_json::Value)))]
async fn erase(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(principal): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, VaultError> {
    no_query(raw.as_deref())?;
    let subject = subject(&caller, &principal)?;
    Ok(Json(state.vault.erase_subject(&caller, &subject).await?).into_response())
}

#[utoipa::path(get, operation_id = "complianceReport", path = "/api/v1/vault/compliance/report", tag = "compliance", params(ReportQuery), responses((status = 200, body = serde_json::Value)))]
async fn report(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    RawQuery(raw): RawQuery,
) -> Result<Response, VaultError> {
    let q: ReportQuery = query::parse(raw.as_deref())?;
    let org = q.org_id.as_deref().map(OrgId::parse).transpose()?;
    Ok(Json(state.vault.compliance_report(&caller, org.as_ref()).await?).into_response())
}
