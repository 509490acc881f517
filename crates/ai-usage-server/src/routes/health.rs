//! Liveness and writer health.

use axum::extract::State;
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;

use crate::error::ApiError;

use crate::state::AppState;

/// Replaces an error text sent by `/healthz`: the core's texts name the
/// records directory, and `/healthz` is open even when reads are protected.
/// The core logs the full text when the error happens.
pub const ERROR_IN_LOG: &str = "see the server log";

/// Writer, replay and memory health (503 when records do not reach disk).
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "MonitorHealth without the records directory, ok; error texts are in the server log", body = serde_json::Value),
              (status = 503, description = "MonitorHealth without the records directory, not ok", body = serde_json::Value)))]
pub async fn healthz(State(st): State<AppState>, headers: HeaderMap) -> Response {
    let h = st.monitor.health();
    // With a fleet store, the service is ok only while the store answers:
    // every read route depends on it.
    let fleet = match st.fleet_health.clone() {
        // The check may ask a server (e.g. for the shipper's lag).
        Some(f) => Some(
            tokio::task::spawn_blocking(move || f())
                .await
                .unwrap_or(Value::Null),
        ),
        None => None,
    };
    let fleet_ok = fleet
        .as_ref()
        .is_none_or(|f| f.get("ok").and_then(Value::as_bool) != Some(false));
    let ok = h.ok && fleet_ok;
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    if let Some(token) = &st.private_health {
        let given = headers.get(AUTHORIZATION).map(|v| v.as_bytes());
        if !token.matches_header(given) {
            // Reads are protected: a caller without the token learns only
            // whether the service is up.
            return (status, Json(serde_json::json!({ "ok": ok }))).into_response();
        }
    }
    match serde_json::to_value(&h) {
        Ok(mut body) => {
            public_view(&mut body);
            if let Some(obj) = body.as_object_mut() {
                obj.insert("ok".into(), Value::Bool(ok));
                if let Some(fleet) = fleet {
                    obj.insert("fleet".into(), fleet);
                }
            }
            (status, Json(body)).into_response()
        }
        Err(e) => ApiError::internal("cannot serialise health", e).into_response(),
    }
}

/// Drops the records directory and replaces every error text (which may
/// name a path) by [`ERROR_IN_LOG`].
fn public_view(health: &mut Value) {
    let Some(obj) = health.as_object_mut() else {
        return;
    };
    obj.remove("dir");
    let in_log = || Value::String(ERROR_IN_LOG.into());
    if obj.get("writer_disabled").is_some_and(|v| !v.is_null()) {
        obj.insert("writer_disabled".into(), in_log());
    }
    if let Some(w) = obj.get_mut("writer").and_then(Value::as_object_mut) {
        if w.get("last_error").is_some_and(|v| !v.is_null()) {
            w.insert("last_error".into(), in_log());
        }
    }
    // A failed history load names the file it could not read.
    if let Some(l) = obj.get_mut("load").and_then(Value::as_object_mut) {
        if l.get("error").is_some_and(|v| !v.is_null()) {
            l.insert("error".into(), in_log());
        }
    }
}
