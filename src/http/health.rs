//! Liveness and readiness, outside `/api/v1` and without authentication: they reveal nothing
//! but whether the process and its dependencies answer.

use super::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use std::time::Duration;

/// How long readiness waits for one dependency to answer.
const PROBE_LIMIT: Duration = Duration::from_secs(2);

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
    // The three dependencies are asked at once: a probe waits for the slowest, not the sum.
    let ((database_ok, keys), redis, objects) = tokio::join!(
        database_and_keys(&state),
        async {
            match &state.redis {
                None => "not_configured",
                Some(redis) if redis.ping().await => "ok",
                Some(_) => "unavailable",
            }
        },
        async {
            match tokio::time::timeout(PROBE_LIMIT, state.vault.object_backend().ping()).await {
                Ok(Ok(())) => "ok",
                _ => "unavailable",
            }
        },
    );
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

/// Whether the database answers and, if so, where the oldest keys stand. Keys past
/// `warn_age_days` are due for rotation; they never change `status` (a key that is due does
/// not stop the replica from serving). Each step is bounded: a database slow after answering
/// the ping must not hang the probe.
async fn database_and_keys(state: &AppState) -> (bool, &'static str) {
    let database_ok = matches!(
        tokio::time::timeout(PROBE_LIMIT, state.vault.store().ping()).await,
        Ok(Ok(()))
    );
    if !database_ok {
        return (false, "unknown");
    }
    match tokio::time::timeout(PROBE_LIMIT, state.vault.key_ages()).await {
        Ok(Ok(ages)) => (true, ages.state.as_str()),
        _ => (true, "unknown"),
    }
}
