//! Storage: the day files that are the source of truth on a host.
//!
//! - [`dayfile`] names, lists and parses `usage_YYYY-MM-DD.jsonl` files;
//! - [`writer`] is the queue and writer thread that appends batches to them;
//! - [`replay`] rebuilds the rollups from them at start-up;
//! - [`snapshot`] writes and checks the rollup snapshot a start loads;
//! - [`follow`] counts lines that other processes append;
//! - [`adjustments`] reads and appends cost corrections of recorded calls;
//! - [`compact`] compresses old day files and removes expired ones;
//! - [`reprice`] works out the corrections the prices in force now call for.

pub mod adjustments;
pub mod compact;
pub mod dayfile;
pub mod follow;
pub mod replay;
pub mod reprice;
pub mod snapshot;
pub mod writer;
