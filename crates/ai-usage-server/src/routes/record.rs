//! `POST /api/ai_usage/record`: ingestion from services in other languages.
//!
//! A 2xx answer means durable: the batch is written and fsynced before the
//! route answers (group commit in the writer: one fsync covers every
//! request waiting on it). When the writer cannot make records durable the
//! route answers 503 + `Retry-After`; the records stay queued in memory and
//! are written once the disk recovers, so a client that retries may store
//! the batch twice (send a `request_id` to find such repeats).
//!
//! Recording may wait for room in the writer's queue (the monitor's lossless
//! policy), so it runs on the blocking pool, never on an async worker. At
//! most [`MAX_INGEST_IN_FLIGHT`] ingest requests wait there at once: when
//! the writer cannot keep up, later ones get 503 + `Retry-After` at once
//! instead of piling up threads.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;

use ai_usage_core::{UsageEvent, UsageMonitor, UsageRecord};

use crate::error::{ApiError, ErrorBody};
use crate::ingest::{self, OwnedEvent, RecordResponse, RecordedEntry};
use crate::routes::off_worker;
use crate::state::{AppState, MAX_INGEST_IN_FLIGHT};

/// `Retry-After` (seconds) of an ingest refused because too many wait.
pub const INGEST_RETRY_AFTER_SECS: u64 = 1;

/// Records one call or a batch (at most 1000), validated like `record_ai_usage`.
#[utoipa::path(post, path = "/api/ai_usage/record", tag = "ingest",
    request_body(content = crate::ingest::RecordBody, description = "One record or an array of at most 1000"),
    responses((status = 200, description = "Recorded", body = RecordResponse),
              (status = 401, description = "Token required", body = ErrorBody),
              (status = 413, description = "Body over 1 MiB", body = ErrorBody),
              (status = 422, description = "Invalid record (names field and index)", body = ErrorBody),
              (status = 503, description = "The record queue is backed up; retry after `Retry-After` seconds (nothing was recorded)", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn record(
    State(st): State<AppState>,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body?;
    let events = ingest::parse_body(&body, st.monitor.intake_window())?;
    let permit = Arc::clone(&st.ingest_slots)
        .try_acquire_owned()
        .map_err(|_| ApiError::Unavailable {
            message: format!(
                "{MAX_INGEST_IN_FLIGHT} record requests are already waiting for the writer; retry later"
            ),
            retry_after_secs: INGEST_RETRY_AFTER_SECS,
        })?;
    let monitor = Arc::clone(&st.monitor);
    // The whole batch is recorded even if the client goes away meanwhile:
    // a blocking task runs to completion.
    let records = off_worker(move || {
        let _permit = permit;
        let stored = record_batch_durable(&monitor, &events).map_err(|e| {
            tracing::warn!(error = %e, "ingested records are not durable yet");
            ApiError::Unavailable {
                message: "the records could not be made durable yet (the server log says why); retry later".into(),
                retry_after_secs: INGEST_RETRY_AFTER_SECS,
            }
        })?;
        Ok(stored
            .into_iter()
            .map(|r| RecordedEntry {
                cost: r.cost,
                currency: r.currency.unwrap_or_default(),
                priced: r.priced.unwrap_or(true),
                total_tokens: r.total_tokens,
            })
            .collect::<Vec<_>>())
    })
    .await?;
    tracing::debug!(records = records.len(), "records ingested over HTTP");
    Ok(crate::json::PlainJson(RecordResponse {
        success: true,
        recorded: records.len(),
        records,
    })
    .into_response())
}

/// Records `events` and returns once they are written and synced: the
/// core's group commit, where one fsync covers every request waiting on it.
fn record_batch_durable(
    monitor: &UsageMonitor,
    events: &[OwnedEvent],
) -> Result<Vec<UsageRecord>, ai_usage_core::Error> {
    // The events borrow their tags as `&[&str]`: build those first.
    let tags: Vec<Vec<&str>> = events.iter().map(OwnedEvent::tag_refs).collect();
    let borrowed: Vec<UsageEvent<'_>> = events.iter().zip(&tags).map(|(e, t)| e.event(t)).collect();
    monitor.record_batch_durable(&borrowed)
}
