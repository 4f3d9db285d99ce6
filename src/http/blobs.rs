//! `/api/v1/vault/blobs`: each handler parses, calls one vault function, and shapes the reply.

use super::body::{self, ClaimedSha256};
use super::{extract::Authenticated, json_body, query, AppState};
use crate::domain::{BlobId, Note, OrgId, RetentionPolicy, Scope, Tags};
use crate::error::VaultError;
use crate::service::{Envelope, ListParams, NewBlob, ReadForm, ReadParams, Streamed};
use crate::time;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use base64::Engine;
use futures_util::TryStreamExt;
use serde::Deserialize;
use std::collections::BTreeMap;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/vault/blobs", get(list).post(create))
        .route("/api/v1/vault/blobs/{id}", get(read).delete(remove))
        .route("/api/v1/vault/blobs/{id}/metadata", get(metadata))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateJson {
    scope: String,
    payload_base64: Option<String>,
    content_base64: Option<String>,
    org_id: Option<String>,
    retention_policy: Option<String>,
    expires_at: Option<String>,
    tags: Option<BTreeMap<String, String>>,
}

/// Query parameters of a raw (`application/octet-stream`) upload.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateQuery {
    scope: String,
    org_id: Option<String>,
    retention_policy: Option<String>,
    expires_at: Option<String>,
    /// A JSON object of string values, as a JSON upload's `tags`.
    tags: Option<String>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ReadQuery {
    purpose: Option<String>,
    reason: Option<String>,
    org_id: Option<String>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    scope: Option<String>,
    org_id: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

fn optional<T>(
    value: Option<String>,
    parse: impl FnOnce(&str) -> Result<T, crate::domain::Invalid>,
) -> Result<Option<T>, VaultError> {
    value
        .as_deref()
        .map(parse)
        .transpose()
        .map_err(VaultError::from)
}

fn parse_expiry(text: Option<String>) -> Result<Option<i64>, VaultError> {
    text.map(|t| {
        time::parse_rfc3339(&t)
            .ok_or_else(|| VaultError::BadRequest("expires_at must be an RFC 3339 time".into()))
    })
    .transpose()
}

/// Parses the query string of a raw (`application/octet-stream`) upload; the body is the
/// envelope as sent.
pub fn raw_upload(raw_query: Option<&str>, envelope: Vec<u8>) -> Result<NewBlob, VaultError> {
    let q: CreateQuery = query::parse(raw_query)?;
    Ok(NewBlob {
        scope: Scope::parse(&q.scope)?,
        org_id: optional(q.org_id, OrgId::parse)?,
        retention_policy: optional(q.retention_policy, RetentionPolicy::parse)?.unwrap_or_default(),
        expires_at: parse_expiry(q.expires_at)?,
        tags: query_tags(q.tags.as_deref())?,
        envelope,
    })
}

/// A raw upload's `tags` query parameter: the same JSON object a JSON upload carries.
fn query_tags(text: Option<&str>) -> Result<Tags, VaultError> {
    let Some(text) = text else {
        return Ok(Tags::default());
    };
    let map = serde_json::from_str(text).map_err(|_| {
        VaultError::BadRequest(
            "tags must be a JSON object of string values, e.g. {\"ticket\":\"T-42\"}".into(),
        )
    })?;
    Ok(Tags::new(map)?)
}

/// Parses the body of a JSON upload; `max` is the envelope limit in bytes, checked before the
/// base64 is decoded so that an oversized payload is never held twice.
pub fn json_upload(body: &[u8], max: usize) -> Result<NewBlob, VaultError> {
    let json: CreateJson = json_body::parse(body)?;
    let encoded = match (json.payload_base64, json.content_base64) {
        (Some(p), None) | (None, Some(p)) => p,
        _ => {
            return Err(VaultError::BadRequest(
                "exactly one of payload_base64 and content_base64 is required".into(),
            ))
        }
    };
    if encoded.len() / 4 * 3 > max + 2 {
        return Err(VaultError::PayloadTooLarge(max));
    }
    let envelope = base64::engine::general_purpose::STANDARD
        .decode(encoded.as_bytes())
        .map_err(|_| VaultError::BadRequest("payload_base64 is not valid base64".into()))?;
    Ok(NewBlob {
        scope: Scope::parse(&json.scope)?,
        org_id: optional(json.org_id, OrgId::parse)?,
        retention_policy: optional(json.retention_policy, RetentionPolicy::parse)?
            .unwrap_or_default(),
        expires_at: parse_expiry(json.expires_at)?,
        tags: Tags::new(json.tags.unwrap_or_default())?,
        envelope,
    })
}

#[utoipa::path(post, operation_id = "createBlob", path = "/api/v1/vault/blobs", tag = "blobs", params(("scope" = Option<String>, Query, description = "raw uploads: the scope (required)"), ("org_id" = Option<String>, Query), ("retention_policy" = Option<String>, Query), ("expires_at" = Option<String>, Query, description = "RFC 3339"), ("tags" = Option<String>, Query, description = "raw uploads: a JSON object of string values")), request_body(content((CreateJson = "application/json"), (super::openapi::Envelope = "application/octet-stream"))), responses((status = 201, body = super::openapi::Created)))]
async fn create(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
    claimed: Option<Extension<ClaimedSha256>>,
    body: Body,
) -> Result<Response, VaultError> {
    let metadata = if body::content_type_is(&headers, "application/octet-stream") {
        // Streamed: the first bytes decide whether the envelope stays in its row or goes to
        // the object store, and carry the header the check needs before the rest is read.
        let mut stream = body::streamed(
            &headers,
            body,
            state.vault.max_payload_bytes(),
            state.upload_stall,
        )?;
        let (prefix, whole) =
            body::read_prefix(&mut stream, state.vault.inline_max_bytes()).await?;
        let new = raw_upload(raw_query.as_deref(), prefix)?;
        let rest = Streamed {
            rest: (!whole).then_some(stream),
            claimed_sha256: claimed.map(|Extension(ClaimedSha256(hash))| hash),
        };
        state.vault.create_blob_streamed(&caller, new, rest).await?
    } else if body::content_type_is(&headers, "application/json") {
        if raw_query.as_deref().is_some_and(|q| !q.is_empty()) {
            return Err(VaultError::BadRequest(
                "a JSON upload takes its fields in the body, not the query string".into(),
            ));
        }
        // Read whole (and bounded) by authentication already.
        let body = axum::body::to_bytes(body, usize::MAX)
            .await
            .map_err(|_| VaultError::BadRequest("could not read the request body".into()))?;
        let new = json_upload(&body, state.vault.json_max_bytes())?;
        state.vault.create_blob(&caller, new).await?
    } else {
        return Err(VaultError::BadRequest(
            "Content-Type must be application/json or application/octet-stream".into(),
        ));
    };
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "metadata": metadata })),
    )
        .into_response())
}

/// Parses the query of a read, metadata or delete request.
pub fn read_params(raw_query: Option<&str>) -> Result<ReadParams, VaultError> {
    let q: ReadQuery = query::parse(raw_query)?;
    Ok(ReadParams {
        purpose: optional(q.purpose, |t| Note::parse("purpose", t))?,
        reason: optional(q.reason, |t| Note::parse("reason", t))?,
        org_id: optional(q.org_id, OrgId::parse)?,
    })
}

fn wants_raw(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| {
            accept.split(',').any(|item| {
                item.split(';')
                    .next()
                    .is_some_and(|t| t.trim() == "application/octet-stream")
            })
        })
}

#[utoipa::path(get, operation_id = "readBlob", path = "/api/v1/vault/blobs/{id}", tag = "blobs", params(("id" = String, Path, format = Uuid), ReadQuery), responses((status = 200, content((super::openapi::BlobRead = "application/json"), (super::openapi::Envelope = "application/octet-stream")))))]
async fn read(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    RawQuery(raw_query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, VaultError> {
    let id = BlobId::parse(&id)?;
    let params = read_params(raw_query.as_deref())?;
    let form = match wants_raw(&headers) {
        true => ReadForm::Raw,
        false => ReadForm::Json,
    };
    let (metadata, envelope) = state.vault.read_blob(&caller, &id, &params, form).await?;
    let raw = [(header::CONTENT_TYPE, "application/octet-stream")];
    let envelope = match (envelope, form) {
        (Envelope::Whole(bytes), ReadForm::Raw) => return Ok((raw, bytes).into_response()),
        // Streamed with its length, so a client can tell an answer cut short by a failure
        // mid-way (each piece was authenticated before it was sent).
        (Envelope::Stream { len, stream }, ReadForm::Raw) => {
            return Ok((
                raw,
                [(header::CONTENT_LENGTH, len.to_string())],
                Body::from_stream(stream),
            )
                .into_response())
        }
        (Envelope::Whole(bytes), ReadForm::Json) => bytes,
        // The service refused a JSON answer beyond the JSON limit, so this is bounded.
        (Envelope::Stream { stream, .. }, ReadForm::Json) => {
            let pieces: Vec<Bytes> = stream.try_collect().await?;
            pieces.concat()
        }
    };
    let data_base64 = base64::engine::general_purpose::STANDARD.encode(&envelope);
    Ok(
        Json(serde_json::json!({ "data_base64": data_base64, "metadata": metadata }))
            .into_response(),
    )
}

#[utoipa::path(get, operation_id = "readBlobMetadata", path = "/api/v1/vault/blobs/{id}/metadata", tag = "blobs", params(("id" = String, Path, format = Uuid), ReadQuery), responses((status = 200, body = crate::service::BlobMetadata)))]
async fn metadata(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, VaultError> {
    let id = BlobId::parse(&id)?;
    let params = read_params(raw_query.as_deref())?;
    let metadata = state.vault.blob_metadata(&caller, &id, &params).await?;
    Ok(Json(metadata).into_response())
}

#[utoipa::path(delete, operation_id = "deleteBlob", path = "/api/v1/vault/blobs/{id}", tag = "blobs", params(("id" = String, Path, format = Uuid), ReadQuery), responses((status = 204)))]
async fn remove(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    RawQuery(raw_query): RawQuery,
) -> Result<StatusCode, VaultError> {
    let id = BlobId::parse(&id)?;
    let params = read_params(raw_query.as_deref())?;
    state.vault.delete_blob(&caller, &id, &params).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Parses the query of a list request.
pub fn list_params(raw_query: Option<&str>) -> Result<ListParams, VaultError> {
    let q: ListQuery = query::parse(raw_query)?;
    let limit = match q.limit {
        None => crate::service::DEFAULT_LIST_LIMIT,
        Some(text) => match text.parse::<i64>() {
            Ok(n) if n >= 1 => n,
            _ => {
                return Err(VaultError::BadRequest(
                    "limit must be a positive integer".into(),
                ))
            }
        },
    };
    let cursor = q
        .cursor
        .map(|c| BlobId::parse(&c).map_err(|_| VaultError::BadRequest("invalid cursor".into())))
        .transpose()?;
    Ok(ListParams {
        scope: optional(q.scope, Scope::parse)?,
        org_id: optional(q.org_id, OrgId::parse)?,
        limit,
        cursor,
    })
}

#[utoipa::path(get, operation_id = "listBlobs", path = "/api/v1/vault/blobs", tag = "blobs", params(ListQuery), responses((status = 200, body = crate::service::BlobPage)))]
async fn list(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, VaultError> {
    let params = list_params(raw_query.as_deref())?;
    let page = state.vault.list_blobs(&caller, params).await?;
    Ok(Json(page).into_response())
}
