//! The recipient directory (DESIGN §19): `PUT /api/v1/vault/recipients/me`,
//! `GET /api/v1/vault/recipients/{principal}` and `GET /api/v1/vault/orgs/{org}/recipients`.

use super::{extract::Authenticated, json_body, query, AppState};
use crate::domain::{AgeRecipients, OrgId, Principal, Scope};
use crate::error::VaultError;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

pub fn router() -> Router<AppState> {
    Router::new()
        // `me` is the caller itself; a static segment wins over `{principal}`.
        .route("/api/v1/vault/recipients/me", get(mine).put(set))
        .route("/api/v1/vault/recipients/{principal}", get(of))
        .route("/api/v1/vault/orgs/{org}/recipients", get(readers))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RecipientsBody {
    recipients: Vec<String>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ReadersQuery {
    scope: Option<String>,
}

/// Parses the body of `PUT /api/v1/vault/recipients/me`, `{"recipients": ["age1...", ...]}`.
pub fn recipients_body(body: &[u8]) -> Result<AgeRecipients, VaultError> {
    let body: RecipientsBody = json_body::parse(body)?;
    Ok(AgeRecipients::parse(&body.recipients)?)
}

/// Parses the query of `GET /api/v1/vault/orgs/{org}/recipients`: `scope`, required.
pub fn readers_scope(raw: Option<&str>) -> Result<Scope, VaultError> {
    let query: ReadersQuery = query::parse(raw)?;
    let scope = query
        .scope
        .ok_or_else(|| VaultError::BadRequest("scope is required".into()))?;
    Ok(Scope::parse(&scope)?)
}

#[utoipa::path(put, operation_id = "setMyRecipients", path = "/api/v1/vault/recipients/me", tag = "recipients", request_body = RecipientsBody, responses((status = 200, body = serde_json::Value)))]
async fn set(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    body: Bytes,
) -> Result<Response, VaultError> {
    let recipients = recipients_body(&body)?;
    let published = state.vault.set_recipients(&caller, &recipients).await?;
    Ok(Json(published).into_response())
}

#[utoipa::path(get, operation_id = "myRecipients", path = "/api/v1/vault/recipients/me", tag = "recipients", responses((status = 200, body = serde_json::Value)))]
async fn mine(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<Response, VaultError> {
    let published = state.vault.recipients_of(&caller.principal).await?;
    Ok(Json(published).into_response())
}

#[utoipa::path(get, operation_id = "recipientsOf", path = "/api/v1/vault/recipients/{principal}", tag = "recipients", params(("principal" = String, Path)), responses((status = 200, body = serde_json::Value)))]
async fn of(
    State(state): State<AppState>,
    Authenticated(_caller): Authenticated,
    Path(principal): Path<String>,
) -> Result<Response, VaultError> {
    let principal = Principal::parse(&principal)?;
    let published = state.vault.recipients_of(&principal).await?;
    Ok(Json(published).into_response())
}

#[utoipa::path(get, operation_id = "orgReaders", path = "/api/v1/vault/orgs/{org}/recipients", tag = "recipients", params(("org" = String, Path), ReadersQuery), responses((status = 200, body = serde_json::Value)))]
async fn readers(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(org): Path<String>,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, VaultError> {
    let org = OrgId::parse(&org)?;
    let scope = readers_scope(raw_query.as_deref())?;
    let readers = state.vault.org_readers(&caller, &org, &scope).await?;
    Ok(Json(readers).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_must_be_an_object_with_recipients_only() {
        let key = age::x25519::Identity::generate().to_public().to_string();
        let ok = format!(r#"{{"recipients":["{key}"]}}"#);
        assert!(recipients_body(ok.as_bytes()).is_ok());
        for body in [
            format!(r#"[["{key}"]]"#),
            format!(r#"{{"recipients":["{key}"],"extra":1}}"#),
            r#"{"recipients":[]}"#.to_owned(),
            r#"{"recipients":"age1"}"#.to_owned(),
            String::new(),
        ] {
            assert!(
                matches!(
                    recipients_body(body.as_bytes()),
                    Err(VaultError::BadRequest(_))
                ),
                "{body} was accepted"
            );
        }
    }

    #[test]
    fn the_scope_is_required_and_alone() {
        assert_eq!(
            readers_scope(Some("scope=support"))
                .map(|s| s.as_str().to_owned())
                .ok(),
            Some("support".to_owned())
        );
        for raw in [None, Some(""), Some("scope=Bad!"), Some("scope=a&org=b")] {
            assert!(readers_scope(raw).is_err(), "{raw:?}");
        }
    }
}
