//! Top users, top anchors and the daily cost trend.

use crate::json::PlainJson as Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use ai_usage_core::original;
use ai_usage_core::{RankBy, RankKind};

use crate::answers::ask;
use crate::error::{ApiError, ErrorBody};
use crate::params::{DaysQuery, Params, RankingQuery, DAYS, LIMIT};
use crate::state::AppState;

/// Top users by tokens.
#[utoipa::path(get, path = "/api/ai_usage/top_users", tag = "rankings",
    params(RankingQuery),
    responses((status = 200, description = "`{period_days, top_users: [{user_id, tokens, cost, currency, costs, calls, input_tokens, output_tokens}]}`", body = serde_json::Value),
              (status = 422, description = "Invalid parameter", body = ErrorBody)))]
pub async fn top_users(State(st): State<AppState>, p: Params) -> Result<Response, ApiError> {
    let limit = p.u32_of(&LIMIT, None)?;
    let days = p.u32_of(&DAYS, None)?;
    let rows = ask(&st.queries, move |q| {
        let (from, to) = q.last_days(days);
        q.top(RankKind::User, from, to, RankBy::Tokens, limit as usize)
    })
    .await?;
    Ok(Json(original::top_users_view(days, &rows)).into_response())
}

/// Top anchors (主播) by tokens.
#[utoipa::path(get, path = "/api/ai_usage/top_anchors", tag = "rankings",
    params(RankingQuery),
    responses((status = 200, description = "`{period_days, top_anchors: [{anchor_id, tokens, cost, currency, costs, calls, input_tokens, output_tokens}]}`", body = serde_json::Value),
              (status = 422, description = "Invalid parameter", body = ErrorBody)))]
pub async fn top_anchors(State(st): State<AppState>, p: Params) -> Result<Response, ApiError> {
    let limit = p.u32_of(&LIMIT, None)?;
    let days = p.u32_of(&DAYS, None)?;
    let rows = ask(&st.queries, move |q| {
        let (from, to) = q.last_days(days);
        q.top(RankKind::Anchor, from, to, RankBy::Tokens, limit as usize)
    })
    .await?;
    Ok(Json(original::top_anchors_view(days, &rows)).into_response())
}

/// Daily cost, oldest first, one point per day.
#[utoipa::path(get, path = "/api/ai_usage/cost_trend", tag = "rankings",
    params(DaysQuery),
    responses((status = 200, description = "`{period_days, data: [{date, cost, currency, costs, calls, tokens}]}`", body = serde_json::Value),
              (status = 422, description = "Invalid parameter", body = ErrorBody)))]
pub async fn cost_trend(State(st): State<AppState>, p: Params) -> Result<Response, ApiError> {
    let days = p.u32_of(&DAYS, None)?;
    let points = ask(&st.queries, move |q| {
        let (from, to) = q.last_days(days);
        q.trend(from, to)
    })
    .await?;
    Ok(Json(original::cost_trend_view(days, &points)).into_response())
}
