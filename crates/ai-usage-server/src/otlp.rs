//! `POST /v1/traces`: the OTLP/HTTP trace receiver. A thin door: the
//! decoding, the span mapping and exactly-once live in `ai-usage-otel`;
//! here are the HTTP answers the OTLP spec asks for.
//!
//! - 200 with an `ExportTraceServiceResponse` in the request's encoding,
//!   once the records are durable (the ingest route's rule); rejected spans
//!   in `partial_success`.
//! - 400 undecodable body, 415 another content type or encoding, 413 over
//!   the size limit, 503 + `Retry-After` when the writer's queue is backed
//!   up; error bodies are a `google.rpc.Status`.
//! - Behind the server's token like every write route.

use std::sync::Arc;

use ai_usage_otel::receiver::{
    decode_request, encode_response, encode_status, Encoding, ExportError, TraceReceiver,
    TRACES_PATH,
};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use utoipa_axum::router::OpenApiRouter;

use crate::routes::record::INGEST_RETRY_AFTER_SECS;
use crate::state::{AppState, MAX_INGEST_IN_FLIGHT};

/// The receiver's route, with its own ledger of recorded spans.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    let receiver = Arc::new(TraceReceiver::new());
    OpenApiRouter::new().route(
        TRACES_PATH,
        post(
            move |st: State<AppState>,
                  headers: HeaderMap,
                  body: Result<Bytes, axum::extract::rejection::BytesRejection>| {
                traces(st, Arc::clone(&receiver), headers, body)
            },
        ),
    )
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// An OTLP error answer: `google.rpc.Status` in `encoding`.
fn status(code: StatusCode, message: &str, encoding: Encoding, retry: bool) -> Response {
    let body = encode_status(code.as_u16(), message, encoding);
    let mut resp = (code, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(encoding.content_type()),
    );
    if retry {
        h.insert(
            header::RETRY_AFTER,
            HeaderValue::from(INGEST_RETRY_AFTER_SECS),
        );
    }
    resp
}

async fn traces(
    State(st): State<AppState>,
    receiver: Arc<TraceReceiver>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let content_type = header_text(&headers, header::CONTENT_TYPE);
    // Errors before the encoding is known are answered in JSON.
    let answer_in = content_type
        .and_then(Encoding::from_content_type)
        .unwrap_or(Encoding::Json);
    let body = match body {
        Ok(b) => b,
        Err(e) => return status(e.status(), &e.body_text(), answer_in, false),
    };
    let encoding = header_text(&headers, header::CONTENT_ENCODING);
    let (request, encoding) = match decode_request(content_type, encoding, &body) {
        Ok(r) => r,
        Err(e) => {
            let code = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
            return status(code, &e.to_string(), answer_in, false);
        }
    };
    let Ok(permit) = Arc::clone(&st.ingest_slots).try_acquire_owned() else {
        let msg = format!(
            "{MAX_INGEST_IN_FLIGHT} record requests are already waiting for the writer; retry later"
        );
        return status(StatusCode::SERVICE_UNAVAILABLE, &msg, encoding, true);
    };
    let monitor = Arc::clone(&st.monitor);
    // Runs to completion even if the exporter goes away meanwhile.
    let done = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        receiver.export(&monitor, &request)
    })
    .await;
    match done {
        Ok(Ok(outcome)) => {
            tracing::debug!(
                recorded = outcome.recorded,
                duplicates = outcome.duplicates,
                ignored = outcome.ignored,
                rejected = outcome.rejected,
                "OTLP spans received"
            );
            if outcome.rejected > 0 {
                tracing::warn!(rejected = outcome.rejected, first = ?outcome.messages.first(), "OTLP spans rejected");
            }
            let mut resp = (StatusCode::OK, encode_response(&outcome, encoding)).into_response();
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(encoding.content_type()),
            );
            resp
        }
        Ok(Err(e)) => {
            if matches!(e, ExportError::NotDurable(_)) {
                tracing::warn!(error = %e, "OTLP spans are not durable yet");
            }
            status(
                StatusCode::SERVICE_UNAVAILABLE,
                &e.to_string(),
                encoding,
                true,
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "OTLP export task failed");
            status(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error",
                encoding,
                false,
            )
        }
    }
}
