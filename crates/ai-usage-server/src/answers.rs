//! How a route asks the query interface: where the answers may wait on a
//! store, on the blocking pool; and what a failed answer tells the client.

use std::sync::Arc;

use ai_usage_core::{QueryError, QueryResult, UsageQueries};

use crate::error::ApiError;

/// What `/healthz` shows under `fleet` when the answers come from a fleet
/// store (e.g. the store's reachability and the shipper's lag). An object
/// with `"ok": false` makes `/healthz` not ok (503). May block.
pub(crate) type FleetHealth = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

/// Asks `queries` one question.
///
/// A refused argument is a 422 naming it; a store that cannot answer is a
/// 503 whose error text (user names, "Authentication failed", addresses)
/// goes to the log only, under an error id: the client, who may be
/// unauthenticated, learns only that the store is unavailable, and that id.
pub(crate) async fn ask<T: Send + 'static>(
    queries: &Arc<dyn UsageQueries>,
    question: impl FnOnce(&dyn UsageQueries) -> QueryResult<T> + Send + 'static,
) -> Result<T, ApiError> {
    let answer = if queries.may_block() {
        let q = Arc::clone(queries);
        tokio::task::spawn_blocking(move || question(q.as_ref()))
            .await
            .map_err(|e| ApiError::internal("query task", e))?
    } else {
        // From memory, O(groups): cheaper here than a hop to the pool.
        question(queries.as_ref())
    };
    answer.map_err(refusal)
}

/// [`ask`] on the blocking pool whatever the source: for questions that
/// cost more than a query (a report, an export over many days).
pub(crate) async fn ask_off_worker<T: Send + 'static>(
    queries: &Arc<dyn UsageQueries>,
    question: impl FnOnce(&dyn UsageQueries) -> QueryResult<T> + Send + 'static,
) -> Result<T, ApiError> {
    let q = Arc::clone(queries);
    tokio::task::spawn_blocking(move || question(q.as_ref()))
        .await
        .map_err(|e| ApiError::internal("query task", e))?
        .map_err(refusal)
}

/// The client's view of a query that has no answer.
fn refusal(e: QueryError) -> ApiError {
    match e {
        QueryError::Core(e @ ai_usage_core::Error::InvalidArgument { argument, .. }) => {
            ApiError::param(argument, e.to_string())
        }
        QueryError::Core(e) => ApiError::internal("query failed", e),
        QueryError::Unavailable(e) => {
            let id = crate::error::next_error_id();
            tracing::warn!(error_id = %id, error = %e, "fleet query failed");
            ApiError::Unavailable {
                message: format!("the fleet store is unavailable (error id {id})"),
                retry_after_secs: 5,
            }
        }
    }
}
