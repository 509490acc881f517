//! `POST /api/ai_usage/record`: a thin door over the core's intake. Each
//! record is read as [`UsageInput`] (the schema the OpenAPI document shows),
//! resolved into an event and checked by the core's one set of rules; a
//! bad value is refused (422 naming the field and the record's index),
//! never sanitised.

use ai_usage_core::intake::{IntakeError, TimeWindow, UsageInput, MAX_BATCH};
use ai_usage_core::{Currency, Money};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

pub use ai_usage_core::intake::OwnedEvent;

use crate::error::ApiError;

/// A single record or a batch of at most 1000 (the request body's schema).
#[allow(dead_code)] // a schema only: the body is read record by record
#[derive(Debug, serde::Deserialize, ToSchema)]
#[serde(untagged)]
pub enum RecordBody {
    /// One record.
    One(Box<UsageInput>),
    /// A batch.
    Batch(Vec<UsageInput>),
}

/// What was recorded, one entry per input record in order.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordedEntry {
    /// Exact cost as stored.
    #[schema(value_type = f64)]
    pub cost: Money,
    /// Currency of the cost.
    #[schema(value_type = String)]
    pub currency: Currency,
    /// False when the model had no price (cost 0).
    pub priced: bool,
    /// Total tokens as stored.
    pub total_tokens: u64,
}

/// The answer of `POST /api/ai_usage/record`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordResponse {
    /// Always true (errors are 4xx JSON).
    pub success: bool,
    /// Records accepted.
    pub recorded: usize,
    /// One entry per record.
    pub records: Vec<RecordedEntry>,
}

/// Validates a body (one object or an array of objects) against the
/// monitor's timestamp `window`; all or nothing.
pub fn parse_body(body: &Value, window: TimeWindow) -> Result<Vec<OwnedEvent>, ApiError> {
    match body {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(field_err(
                    "records",
                    None,
                    "a batch must hold at least one record".into(),
                ));
            }
            if items.len() > MAX_BATCH {
                return Err(field_err(
                    "records",
                    None,
                    format!(
                        "{} records in one batch; at most {MAX_BATCH} are accepted",
                        items.len()
                    ),
                ));
            }
            items
                .iter()
                .enumerate()
                .map(|(i, v)| parse_one(v, Some(i), window))
                .collect()
        }
        v => Ok(vec![parse_one(v, None, window)?]),
    }
}

fn field_err(field: &str, index: Option<usize>, message: String) -> ApiError {
    ApiError::InvalidField {
        field: field.to_string(),
        index,
        message,
    }
}

fn parse_one(v: &Value, index: Option<usize>, window: TimeWindow) -> Result<OwnedEvent, ApiError> {
    let read = || -> Result<OwnedEvent, IntakeError> {
        let ev = UsageInput::from_json(v)?.into_event()?;
        ev.validate(window)?;
        Ok(ev)
    };
    read().map_err(|e| field_err(&e.field, index, e.message))
}

#[cfg(test)]
#[path = "ingest/tests.rs"]
mod tests;
