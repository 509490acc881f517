//! `GET /metrics`: the Prometheus exposition.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::state::AppState;

/// Prometheus metrics (OpenMetrics text).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "ai_usage_calls_total, ai_usage_tokens_total, ai_usage_cost_total, ai_usage_call_duration_seconds, ai_usage_unpriced_calls_total", content_type = "application/openmetrics-text")))]
pub async fn metrics_text(State(st): State<AppState>) -> Result<Response, ApiError> {
    // Every record made so far through the observer that feeds these.
    st.monitor.settle();
    let text = st
        .metrics
        .encode()
        .map_err(|e| ApiError::internal("cannot encode metrics", e))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
        )],
        text,
    )
        .into_response())
}
