//! `/api/v1/vault/orgs`: org creation (platform admins) and membership (org administrators).

use super::{extract::Authenticated, json_body, AppState};
use crate::domain::{OrgId, Principal};
use crate::error::VaultError;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use data_vault_scopes::{Role, RoleSet};
use serde::Deserialize;
use std::str::FromStr;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/vault/orgs/{org}", put(create_org))
        .route("/api/v1/vault/orgs/{org}/members", get(list_members))
        .route(
            "/api/v1/vault/orgs/{org}/members/{principal}",
            put(set_member).delete(remove_member),
        )
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RolesBody {
    roles: Vec<String>,
}

const MAX_ROLES: usize = 16;

/// Parses the body of a member PUT, `{"roles": [...]}`, into the role set it grants. Each
/// element must be one role by its exact name: no comma lists, padding or empty strings.
pub fn member_roles(body: &[u8]) -> Result<RoleSet, VaultError> {
    let body: RolesBody = json_body::parse(body)?;
    if body.roles.len() > MAX_ROLES {
        return Err(VaultError::BadRequest("too many roles".into()));
    }
    body.roles
        .iter()
        .map(|name| Role::from_str(name))
        .collect::<Result<RoleSet, _>>()
        .map_err(|e| VaultError::BadRequest(e.to_string()))
}

#[utoipa::path(put, operation_id = "createOrg", path = "/api/v1/vault/orgs/{org}", tag = "orgs", params(("org" = String, Path)), responses((status = 201, body = serde_json::Value), (status = 200, body = serde_json::Value)))]
async fn create_org(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(org): Path<String>,
) -> Result<Response, VaultError> {
    let org = OrgId::parse(&org)?;
    let created = state.vault.create_org(&caller, &org).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(serde_json::json!({ "org_id": org, "created": created })),
    )
        .into_response())
}

#[utoipa::path(put, operation_id = "setMember", path = "/api/v1/vault/orgs/{org}/members/{principal}", tag = "orgs", params(("org" = String, Path), ("principal" = String, Path)), request_body = RolesBody, responses((status = 200, body = serde_json::Value)))]
async fn set_member(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((org, principal)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, VaultError> {
    let org = OrgId::parse(&org)?;
    let principal = Principal::parse(&principal)?;
    let roles = member_roles(&body)?;
    state
        .vault
        .set_member(&caller, &org, &principal, roles)
        .await?;
    let roles: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    Ok(
        Json(serde_json::json!({ "org_id": org, "principal": principal, "roles": roles }))
            .into_response(),
    )
}

#[utoipa::path(delete, operation_id = "removeMember", path = "/api/v1/vault/orgs/{org}/members/{principal}", tag = "orgs", params(("org" = String, Path), ("principal" = String, Path)), responses((status = 204)))]
async fn remove_member(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((org, principal)): Path<(String, String)>,
) -> Result<StatusCode, VaultError> {
    let org = OrgId::parse(&org)?;
    let principal = Principal::parse(&principal)?;
    state.vault.remove_member(&caller, &org, &principal).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, operation_id = "listMembers", path = "/api/v1/vault/orgs/{org}/members", tag = "orgs", params(("org" = String, Path)), responses((status = 200, body = serde_json::Value)))]
async fn list_members(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(org): Path<String>,
) -> Result<Response, VaultError> {
    let org = OrgId::parse(&org)?;
    let members = state.vault.list_members(&caller, &org).await?;
    Ok(Json(serde_json::json!({ "org_id": org, "members": members })).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(body: &str) -> Result<String, VaultError> {
        member_roles(body.as_bytes()).map(RoleSet::to_list)
    }

    #[test]
    fn member_roles_accept_exact_role_names() {
        assert_eq!(
            roles(r#"{"roles":["support_agent","administrator"]}"#).ok(),
            Some("administrator,support_agent".to_owned())
        );
        assert_eq!(roles(r#"{"roles":[]}"#).ok(), Some(String::new()));
    }

    // Found by the `json_bodies` fuzz target: the elements used to be joined with commas and
    // parsed as one list, so these were accepted.
    #[test]
    fn member_roles_refuse_empty_padded_and_comma_joined_elements() {
        for body in [
            r#"{"roles":[""]}"#,
            r#"{"roles":[" moderator"]}"#,
            r#"{"roles":["administrator,moderator"]}"#,
            r#"{"roles":["moderator,"]}"#,
            r#"[["administrator"]]"#,
        ] {
            assert!(
                matches!(roles(body), Err(VaultError::BadRequest(_))),
                "{body} was accepted"
            );
        }
    }
}
