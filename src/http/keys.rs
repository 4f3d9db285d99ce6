//! Tenant keys and their rotation (DESIGN §15): list the key versions, start a rotation,
//! follow one. Each handler parses, calls one vault function and shapes the reply.

use super::{extract::Authenticated, json_body, query, AppState};
use crate::audit::ChainName;
use crate::domain::Note;
use crate::error::VaultError;
use crate::service::RotationRequest;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/vault/keys", get(list_keys))
        .route("/api/v1/vault/keys/rotate", post(rotate))
        .route("/api/v1/vault/keys/rotations/{id}", get(rotation))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysQuery {
    tenant: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoQuery {}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    /// `org:ID` or `owner:PRINCIPAL`.
    tenant: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    emergency: bool,
}

#[utoipa::path(get, operation_id = "listKeys", path = "/api/v1/vault/keys", tag = "keys", params(("tenant" = Option<String>, Query, description = "org:ID or owner:PRINCIPAL")), responses((status = 200, body = serde_json::Value)))]
async fn list_keys(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    RawQuery(raw): RawQuery,
) -> Result<Response, VaultError> {
    let q: KeysQuery = query::parse(raw.as_deref())?;
    let tenant = q
        .tenant
        .as_deref()
        .map(ChainName::parse_tenant)
        .transpose()?;
    let listing = state.vault.list_keys(&caller, tenant.as_ref()).await?;
    Ok(Json(listing).into_response())
}

#[utoipa::path(post, operation_id = "rotateKey", path = "/api/v1/vault/keys/rotate", tag = "keys", request_body = RotateBody, responses((status = 202, body = serde_json::Value)))]
async fn rotate(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Result<Response, VaultError> {
    query::parse::<NoQuery>(raw.as_deref())?;
    let body: RotateBody = json_body::parse(&body)?;
    let request = RotationRequest {
        tenant: ChainName::parse_tenant(&body.tenant)?,
        reason: body
            .reason
            .as_deref()
            .map(|r| Note::parse("reason", r))
            .transpose()?,
        emergency: body.emergency,
    };
    let rotation = state.vault.rotate_tenant_key(&caller, request).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "rotation": rotation })),
    )
        .into_response())
}

#[utoipa::path(get, operation_id = "getRotation", path = "/api/v1/vault/keys/rotations/{id}", tag = "keys", params(("id" = String, Path)), responses((status = 200, body = serde_json::Value)))]
async fn rotation(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, VaultError> {
    query::parse::<NoQuery>(raw.as_deref())?;
    let rotation = state.vault.rotation(&caller, &id).await?;
    Ok(Json(rotation).into_response())
}
