//! Liveness and writer health.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::state::AppState;

/// Writer, replay and memory health (503 when records do not reach disk).
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "MonitorHealth, ok", body = serde_json::Value),
              (status = 503, description = "MonitorHealth, not ok", body = serde_json::Value)))]
pub async fn healthz(State(st): State<AppState>) -> Response {
    let h = st.monitor.health();
    let status = if h.ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(h)).into_response()
}
