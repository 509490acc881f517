//! OpenTelemetry for `ai-usage-monitor`, both ways.
//!
//! - **In** (feature `receiver`, on by default): an OTLP/HTTP trace
//!   receiver's parts, apart from any HTTP framework. GenAI spans from any
//!   instrumented app (`gen_ai.*` attributes) become the core's one input
//!   and are priced, recorded durably and exactly once ([`receiver`]).
//!   `ai-usage serve` mounts it at `POST /v1/traces`.
//! - **Out** (feature `export`): the GenAI semantic-convention metrics of
//!   every record, over OTLP/HTTP protobuf, switched on with
//!   [`export::OtlpExt::otlp_metrics`] on the monitor's builder.
//!
//! The core never depends on this crate: an app that wants none of it pays
//! nothing. See `docs/opentelemetry.md` for the mapping table and set-up.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

#[cfg(feature = "receiver")]
pub mod receiver;

/// The tag that keeps a call's `gen_ai.operation.name` on its record when
/// it is not `chat` (e.g. `gen_ai.operation.name:embeddings`): set by the
/// receiver from the span, read by the metrics export. A record without it
/// is a chat call (records made through the library name no operation).
pub const OPERATION_TAG_PREFIX: &str = "gen_ai.operation.name:";

/// The operation a record was made for: its operation tag's, else `chat`.
pub fn record_operation(tags: &[String]) -> &str {
    tags.iter()
        .find_map(|t| t.strip_prefix(OPERATION_TAG_PREFIX))
        .filter(|op| !op.is_empty())
        .unwrap_or(DEFAULT_OPERATION)
}

/// The operation of a record without an operation tag.
pub const DEFAULT_OPERATION: &str = "chat";

#[cfg(feature = "export")]
pub mod export;
