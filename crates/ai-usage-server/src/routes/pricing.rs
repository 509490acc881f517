//! The pricing table in force.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::Response;
use serde_json::json;

use crate::error::ApiError;
use crate::json::{json_bytes, to_json};
use crate::state::AppState;

/// The pricing table in force.
#[utoipa::path(get, path = "/api/ai_usage/models/pricing", tag = "pricing",
    responses((status = 200, description = "`{models: {id: {display_name, currency, input, output, …}}, aliases: {alias: id}}` (rates per 1K tokens)", body = serde_json::Value)))]
pub async fn models_pricing(State(st): State<AppState>) -> Result<Response, ApiError> {
    // Serialised under the read lock, from borrowed data: no table copy.
    let pricing = st.monitor.pricing();
    let models: BTreeMap<&str, &ai_usage_core::ModelPrice> = pricing.models().collect();
    let aliases: BTreeMap<&str, &str> = pricing.aliases().into_iter().collect();
    let body = to_json(&json!({ "models": models, "aliases": aliases, "unit": "per 1K tokens" }))?;
    Ok(json_bytes(body))
}
