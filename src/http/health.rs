//! Liveness and readiness, outside `/api/v1` and without authentication: they reveal nothing
//! but whether the process and its dependencies answer.

use super::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use std::time::Duration;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

#[utoipa::path(get, operation_id = "healthz", path = "/healthz", tag = "health", security(), responses((status = 200, body = serde_json::Value)))]
async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok" }))
}

#[utoipa::path(get, operation_id = "readyz", path = "/readyz", tag = "health", security(), responses((status = 200, body = serde_json::Value), (status = 503, body = serde_json::Value)))]
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let database_ok = matches!(
        tokio::time::timeout(Duration::from_secs(2), state.vault.store().ping()).await,
        Ok(Ok(()))
    );
    // Keys past `warn_age_days` are due for rotation; they never change `status` (a key
    // that is due does not stop the replica from serving).
    // Bounded like the ping: a database slow after answering it must not hang the probe.
    let keys = match database_ok {
        true => match tokio::time::timeout(Duration::from_secs(2), state.vault.key_ages()).await {
            Ok(Ok(ages)) => ages.state.as_str(),
            _ => "unknown",
        },
        false => "unknown",
    };
    let redis = match &state.redis {
        None => "not_configured",
        Some(redis) if redis.ping().await => "ok",
        Some(_) => "unavailable",
    };
    let objects =
        match tokio::time::timeout(Duration::from_secs(2), state.vault.object_backend().ping())
            .await
        {
            Ok(Ok(())) => "ok",
            _ => "unavailable",
        };
    // Without Redis the vault still serves, on in-process state; without the object store,
    // every blob but the large ones: degraded, not down.
    let (status, code) = match (database_ok, redis, objects) {
        (false, _, _) => ("unavailable", StatusCode::SERVICE_UNAVAILABLE),
        (true, "unavailable", _) | (true, _, "unavailable") => ("degraded", StatusCode::OK),
        (true, _, _) => ("ready", StatusCode::OK),
    };
    (
        code,
        Json(serde_json::json!({
            "status": status,
            "database": if database_ok { "ok" } else { "unavailable" },
            "redis": redis,
            "objects": objects,
            "keys": keys,
            "timestamp": crate::time::to_rfc3339(state.vault.clock().now_secs()),
        })),
    )
}
