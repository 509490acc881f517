//! The facade's integration tests in one binary (one link instead of
//! three). `ui.rs` (trybuild) stays apart.

#[path = "../common/mod.rs"]
mod common;

mod global_monitor;
mod track_async;
mod track_span;
mod track_sync;
