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

#[cfg(feature = "export")]
pub mod export;
