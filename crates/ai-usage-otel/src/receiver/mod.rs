//! The OTLP/HTTP trace receiver, apart from any HTTP framework: decode an
//! export request ([`decode_request`]), record its GenAI spans exactly once
//! ([`TraceReceiver::export`]), encode the answer ([`encode_response`],
//! [`encode_status`]).
//!
//! A span becomes the core's one input ([`UsageInput`]) by [`mapping`], and
//! is then checked by the same rules and recorded by the same durable batch
//! call as `POST /api/ai_usage/record`.

pub mod ledger;
pub mod mapping;

use std::io::Read;

use ai_usage_core::intake::{OwnedEvent, UsageInput};
use ai_usage_core::{UsageEvent, UsageMonitor};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;

use ledger::{Claim, SpanKey, SpanLedger};
use mapping::SpanKind;

/// The OTLP/HTTP path of traces.
pub const TRACES_PATH: &str = "/v1/traces";
/// Largest body once decompressed (16 MiB): a gzip bomb gets 413.
pub const MAX_DECODED_BYTES: usize = 16 << 20;
/// Most rejection messages quoted in one answer (the count covers all).
const MAX_QUOTED_REJECTIONS: usize = 5;

/// The encoding of a request, and so of its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `application/x-protobuf`.
    Protobuf,
    /// `application/json` (the OTLP JSON mapping).
    Json,
}

impl Encoding {
    /// The encoding named by a `Content-Type` header, parameters ignored.
    pub fn from_content_type(content_type: &str) -> Option<Encoding> {
        let media = content_type.split(';').next().unwrap_or("").trim();
        if media.eq_ignore_ascii_case("application/x-protobuf")
            || media.eq_ignore_ascii_case("application/protobuf")
        {
            Some(Encoding::Protobuf)
        } else if media.eq_ignore_ascii_case("application/json") {
            Some(Encoding::Json)
        } else {
            None
        }
    }

    /// The `Content-Type` of an answer in this encoding.
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// Why a request body cannot be read (each maps to one HTTP status).
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Neither protobuf nor JSON: 415.
    #[error("unsupported content type {0:?}: send application/x-protobuf or application/json")]
    ContentType(String),
    /// A `Content-Encoding` other than gzip or identity: 415.
    #[error("unsupported content encoding {0:?}: send gzip or none")]
    ContentEncoding(String),
    /// Over [`MAX_DECODED_BYTES`] once decompressed: 413.
    #[error("the request is over {MAX_DECODED_BYTES} bytes once decompressed")]
    TooLarge,
    /// Not gzip, or not the encoding announced: 400.
    #[error("cannot decode the request body: {0}")]
    Body(String),
}

impl DecodeError {
    /// The HTTP status the OTLP spec gives this error.
    pub fn http_status(&self) -> u16 {
        match self {
            DecodeError::ContentType(_) | DecodeError::ContentEncoding(_) => 415,
            DecodeError::TooLarge => 413,
            DecodeError::Body(_) => 400,
        }
    }
}

/// Reads an export request: `content_type` picks protobuf or JSON,
/// `content_encoding` gzip or none.
pub fn decode_request(
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    body: &[u8],
) -> Result<(ExportTraceServiceRequest, Encoding), DecodeError> {
    let ct = content_type.unwrap_or("");
    let encoding =
        Encoding::from_content_type(ct).ok_or_else(|| DecodeError::ContentType(ct.to_owned()))?;
    let inflated;
    let bytes = match content_encoding.map(str::trim).filter(|e| !e.is_empty()) {
        None => body,
        Some(e) if e.eq_ignore_ascii_case("identity") => body,
        Some(e) if e.eq_ignore_ascii_case("gzip") => {
            inflated = gunzip(body)?;
            &inflated[..]
        }
        Some(e) => return Err(DecodeError::ContentEncoding(e.to_owned())),
    };
    let request = match encoding {
        Encoding::Protobuf => ExportTraceServiceRequest::decode(bytes).map_err(|e| {
            DecodeError::Body(format!(
                "not an OTLP protobuf ExportTraceServiceRequest: {e}"
            ))
        })?,
        Encoding::Json => serde_json::from_slice(bytes).map_err(|e| {
            DecodeError::Body(format!("not an OTLP JSON ExportTraceServiceRequest: {e}"))
        })?,
    };
    Ok((request, encoding))
}

fn gunzip(body: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(MAX_DECODED_BYTES));
    flate2::read::MultiGzDecoder::new(body)
        .take(MAX_DECODED_BYTES as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| DecodeError::Body(format!("bad gzip body: {e}")))?;
    if out.len() > MAX_DECODED_BYTES {
        return Err(DecodeError::TooLarge);
    }
    Ok(out)
}

/// What one export did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportOutcome {
    /// Spans recorded now.
    pub recorded: usize,
    /// Calls already recorded (a re-sent batch): not counted again.
    pub duplicates: usize,
    /// Spans that are not LLM calls: ignored.
    pub ignored: usize,
    /// Calls refused, reported in `partial_success`.
    pub rejected: usize,
    /// Why, for the first few.
    pub messages: Vec<String>,
}

/// Why an export cannot be answered with 200 now: the exporter should
/// retry (503 with `Retry-After`).
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The writer's queue is full or the records are not durable yet.
    #[error("the records could not be made durable yet: {0}")]
    NotDurable(#[from] ai_usage_core::Error),
    /// Some of the spans are being recorded by another request right now.
    #[error("{0} of these spans are being recorded by another request; retry")]
    InFlight(usize),
}

/// The receiver: the ledger of recorded spans, shared by every request.
#[derive(Debug, Default)]
pub struct TraceReceiver {
    ledger: SpanLedger,
}

/// A call waiting to be recorded.
struct Pending {
    key: Option<SpanKey>,
    event: OwnedEvent,
}

impl TraceReceiver {
    /// A receiver with an empty ledger (filled from the monitor's day files
    /// on the first export).
    pub fn new() -> TraceReceiver {
        TraceReceiver::default()
    }

    /// The ledger of recorded span keys.
    pub fn ledger(&self) -> &SpanLedger {
        &self.ledger
    }

    /// Records the GenAI spans of `request` into `monitor` and returns once
    /// they are durable (blocking: run it off an async worker). A span
    /// already recorded is skipped; a span that cannot be taken is counted
    /// in `rejected` with a message; other spans are `ignored`.
    pub fn export(
        &self,
        monitor: &UsageMonitor,
        request: &ExportTraceServiceRequest,
    ) -> Result<ExportOutcome, ExportError> {
        self.ledger.load_once(monitor.dir(), monitor.zone());
        let window = monitor.intake_window();
        let mut out = ExportOutcome::default();
        let mut calls: Vec<Pending> = Vec::new();
        for rs in &request.resource_spans {
            let resource = rs.resource.as_ref().map_or(&[][..], |r| &r.attributes[..]);
            for ss in &rs.scope_spans {
                for span in &ss.spans {
                    let key = ledger::key_of(&span.trace_id, &span.span_id);
                    let reject = |out: &mut ExportOutcome, why: String| {
                        out.rejected += 1;
                        if out.messages.len() < MAX_QUOTED_REJECTIONS {
                            let id = key.map_or_else(|| "?".into(), |k| ledger::key_text(&k));
                            out.messages
                                .push(format!("span {id} ({:?}): {why}", span.name));
                        }
                    };
                    match mapping::map_span(resource, span) {
                        SpanKind::NotACall => out.ignored += 1,
                        SpanKind::Rejected(why) => reject(&mut out, why),
                        SpanKind::Call(input) => match to_event(*input, window) {
                            Ok(event) => calls.push(Pending { key, event }),
                            Err(why) => reject(&mut out, why),
                        },
                    }
                }
            }
        }
        // Spans without a valid id cannot be recognised when re-sent: they
        // are recorded each time (the spec makes such ids invalid anyway).
        let keys: Vec<SpanKey> = calls.iter().filter_map(|c| c.key).collect();
        let claims = self.ledger.claim(&keys);
        let in_flight = claims.iter().filter(|c| **c == Claim::InFlight).count();
        let held: Vec<SpanKey> = keys
            .iter()
            .zip(&claims)
            .filter(|(_, c)| **c == Claim::New)
            .map(|(k, _)| *k)
            .collect();
        if in_flight > 0 {
            self.ledger.settle(&held, false);
            return Err(ExportError::InFlight(in_flight));
        }
        let mut claim_of = keys.iter().zip(&claims);
        let mut fresh = Vec::with_capacity(calls.len());
        for c in &calls {
            let new = match c.key {
                None => true,
                Some(_) => claim_of.next().is_some_and(|(_, cl)| *cl == Claim::New),
            };
            if new {
                fresh.push(&c.event);
            } else {
                out.duplicates += 1;
            }
        }
        let tags: Vec<Vec<&str>> = fresh.iter().map(|e| e.tag_refs()).collect();
        let events: Vec<UsageEvent<'_>> =
            fresh.iter().zip(&tags).map(|(e, t)| e.event(t)).collect();
        let result = if events.is_empty() {
            Ok(Vec::new())
        } else {
            monitor.record_batch_durable(&events)
        };
        match result {
            Ok(records) => {
                self.ledger.settle(&held, true);
                out.recorded = records.len();
            }
            // Counted and queued, written once the disk recovers: a retry
            // must not count them again, and is answered once they are durable.
            Err(e @ ai_usage_core::Error::NotDurable(_)) => {
                self.ledger.settle(&held, true);
                return Err(e.into());
            }
            Err(e) => {
                self.ledger.settle(&held, false);
                return Err(e.into());
            }
        }
        if out.duplicates > 0 {
            // A 200 means durable: the first copy may still be queued.
            monitor.flush()?;
        }
        Ok(out)
    }
}

/// The core's intake for one mapped span: resolve, then the one rule set.
fn to_event(
    input: UsageInput,
    window: ai_usage_core::intake::TimeWindow,
) -> Result<OwnedEvent, String> {
    let event = input.into_event().map_err(|e| e.to_string())?;
    event.validate(window).map_err(|e| e.to_string())?;
    Ok(event)
}

/// The answer to an accepted export: `partial_success` set when spans were
/// rejected.
pub fn encode_response(outcome: &ExportOutcome, encoding: Encoding) -> Vec<u8> {
    let partial_success = (outcome.rejected > 0).then(|| ExportTracePartialSuccess {
        rejected_spans: outcome.rejected as i64,
        error_message: outcome.messages.join("; "),
    });
    let response = ExportTraceServiceResponse { partial_success };
    match encoding {
        Encoding::Protobuf => response.encode_to_vec(),
        Encoding::Json => serde_json::to_vec(&response).unwrap_or_else(|_| b"{}".to_vec()),
    }
}

/// `google.rpc.Status`, the body of an OTLP error answer.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize)]
pub struct RpcStatus {
    /// A `google.rpc.Code`.
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// What went wrong, in English.
    #[prost(string, tag = "2")]
    pub message: String,
}

/// The body of an error answer: a `google.rpc.Status` with `message`, in
/// `encoding` (JSON when the request's encoding is unknown).
pub fn encode_status(http_status: u16, message: &str, encoding: Encoding) -> Vec<u8> {
    // google.rpc.Code for the statuses we answer.
    let code = match http_status {
        400 => 3,        // INVALID_ARGUMENT
        401 => 16,       // UNAUTHENTICATED
        413 => 11,       // OUT_OF_RANGE
        429 | 503 => 14, // UNAVAILABLE
        415 => 3,        // INVALID_ARGUMENT
        _ => 13,         // INTERNAL
    };
    let status = RpcStatus {
        code,
        message: message.to_owned(),
    };
    match encoding {
        Encoding::Protobuf => status.encode_to_vec(),
        Encoding::Json => serde_json::to_vec(&status).unwrap_or_else(|_| b"{}".to_vec()),
    }
}

#[cfg(test)]
mod tests;
