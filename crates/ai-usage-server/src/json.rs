//! JSON response helpers for payloads serialised ahead of time (cached or
//! built from borrowed data).

use axum::body::Bytes;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::ApiError;

/// A 200 response with an already serialised JSON body.
pub fn json_bytes(body: Bytes) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// Serialises `v` with plain-decimal numbers (`0.0000002`, never `2e-7`,
/// also for amounts that went through a `Value`); a failure is an internal
/// error.
pub fn to_json<T: Serialize>(v: &T) -> Result<Bytes, ApiError> {
    ai_usage_core::json_text::to_vec(v)
        .map(Bytes::from)
        .map_err(|e| ApiError::internal("cannot serialise the response", e))
}

/// Like axum's `Json` response, but written by [`to_json`]: plain-decimal
/// numbers, so money that went through a `Value` still reads `0.0000002`.
#[derive(Debug, Clone)]
pub struct PlainJson<T>(pub T);

impl<T: Serialize> IntoResponse for PlainJson<T> {
    fn into_response(self) -> Response {
        match to_json(&self.0) {
            Ok(body) => json_bytes(body),
            Err(e) => e.into_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ai_usage_core::Money;

    #[test]
    fn money_through_a_value_is_a_plain_decimal() {
        // The compat views build `Value`s, where an amount is a float.
        let v = serde_json::json!({
            "total_cost": Money::from_nanos(200).round_dp(2).as_f64(),
            "total_cost_exact": Money::from_nanos(200),
        });
        let body = to_json(&v).expect("serialises");
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            r#"{"total_cost":0.0,"total_cost_exact":0.0000002}"#
        );
    }
}
