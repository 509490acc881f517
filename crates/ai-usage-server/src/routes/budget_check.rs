//! The guard an application asks before an AI call: is a hard limit
//! (`block_at`) of a budget matching the call reached?

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use ai_usage_core::CallScope;

use crate::error::{ApiError, ErrorBody};
use crate::json::PlainJson as Json;
use crate::params::Params;
use crate::state::AppState;

/// The scope parameters, each optional.
const SCOPE_PARAMS: [&str; 5] = ["user_id", "anchor_id", "function", "model", "tags"];

/// 200 `{"allowed": true}`, or 429 `{"allowed": false, budget, spent,
/// limit, …}` when a budget matching the call is at its hard limit. In
/// fleet mode the spend is the fleet's, refreshed every few seconds.
#[utoipa::path(get, path = "/api/ai_usage/budgets/check", tag = "budgets",
    params(
        ("user_id" = Option<String>, Query, description = "The paying user"),
        ("anchor_id" = Option<String>, Query, description = "The anchor (主播)"),
        ("function" = Option<String>, Query, description = "The function (功能)"),
        ("model" = Option<String>, Query, description = "The model, as recorded"),
        ("tags" = Option<String>, Query, description = "The call's tags, comma-separated (e.g. `team:live-ops,beta`)"),
    ),
    responses((status = 200, description = "`{allowed: true}`", body = serde_json::Value),
              (status = 429, description = "`{allowed: false, budget, scope, period, spent, limit, block_at, currency}`", body = serde_json::Value),
              (status = 422, description = "An unknown or malformed parameter", body = ErrorBody)))]
pub async fn check(State(st): State<AppState>, params: Params) -> Result<Response, ApiError> {
    for name in params.names() {
        if !SCOPE_PARAMS.contains(&name) {
            return Err(ApiError::param(
                name.to_string(),
                format!(
                    "unknown parameter {name:?} (expected user_id, anchor_id, function, model)"
                ),
            ));
        }
    }
    for name in SCOPE_PARAMS {
        if let Some(v) = params.get(name) {
            if let Err(e) = ai_usage_core::intake::check_id_text(name, v) {
                return Err(ApiError::param(name, e.to_string()));
            }
        }
    }
    let tags: Vec<&str> = params
        .get("tags")
        .map(|t| {
            t.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let call = CallScope {
        user_id: params.get("user_id"),
        anchor_id: params.get("anchor_id"),
        function: params.get("function"),
        model: params.get("model"),
        tags: &tags,
    };
    Ok(match st.monitor.check_budget(&call) {
        Ok(()) => Json(serde_json::json!({ "allowed": true })).into_response(),
        Err(e) => (
            StatusCode::TOO_MANY_REQUESTS,
            Json(serde_json::json!({
                "allowed": false,
                "budget": e.budget,
                "scope": e.scope.to_string(),
                "period": e.period_label,
                "spent": e.spent,
                "limit": e.limit,
                "block_at": e.block_at,
                "currency": e.currency,
            })),
        )
            .into_response(),
    })
}
