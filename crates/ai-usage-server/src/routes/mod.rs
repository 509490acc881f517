//! The HTTP routes, one module per concern. [`queries`], [`other_reads`],
//! [`writes`] and [`open`] are the one list of routes: the router and the
//! OpenAPI document ([`all`]) are both built from them.
//!
//! Read routes ask one query handle (`AppState::queries`: the monitor, or
//! a fleet store) through `answers::ask`: the monitor's answers are
//! O(groups) over in-memory rollups and run on the async workers, a store's
//! on the blocking pool. Anything that touches the disk (or may wait on the
//! writer's queue) runs on the blocking pool through `off_worker`. A monitor that
//! follows other processes reads their appends on its own background
//! thread, never inside a query.

pub mod budget_check;
pub mod budgets;
pub mod dashboard;
pub mod health;
pub mod metrics;
pub mod pricing;
pub mod rankings;
pub mod record;
pub mod reports;
pub mod stats;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// Queries (open unless the server protects reads).
pub fn queries() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(stats::stats_current))
        .routes(routes!(stats::stats_hourly))
        .routes(routes!(stats::stats_daily))
        .routes(routes!(stats::stats_monthly))
        .routes(routes!(stats::session))
        .routes(routes!(rankings::top_users))
        .routes(routes!(rankings::top_anchors))
        .routes(routes!(rankings::cost_trend))
        .routes(routes!(pricing::models_pricing))
        .routes(routes!(dashboard::dashboard))
        .routes(routes!(budgets::budgets))
        .routes(routes!(budget_check::check))
        .routes(routes!(budgets::forecast))
        .routes(routes!(budgets::savings))
}

/// The other read-only routes: report download and metrics (open unless the
/// server protects reads).
pub fn other_reads() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(reports::download_report))
        .routes(routes!(metrics::metrics_text))
}

/// Routes that change state (always behind the token when there is one).
pub fn writes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(record::record))
        .routes(routes!(reports::export_report))
}

/// Routes open even with protected reads: liveness (the page and the docs
/// are added by the router, outside the API description).
pub fn open() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(health::healthz))
}

/// Every documented route (for the OpenAPI document).
pub fn all() -> OpenApiRouter<AppState> {
    open().merge(queries()).merge(other_reads()).merge(writes())
}

/// Runs blocking work (disk, a full writer queue) off the async workers.
pub(crate) async fn off_worker<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal("background task failed", e))?
}

/// 404 JSON for unknown routes.
pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("no route {}", uri.path()))
}

/// 405 JSON for a known path with the wrong method.
pub async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    let body = ErrorBody {
        error: "method_not_allowed".into(),
        detail: format!("{method} is not allowed on {}", uri.path()).into(),
        message: None,
    };
    (StatusCode::METHOD_NOT_ALLOWED, Json(body)).into_response()
}
