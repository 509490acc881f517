//! Storage: the day files that are the source of truth on a host.
//!
//! - [`dayfile`] names, lists and parses `usage_YYYY-MM-DD.jsonl` files;
//! - [`writer`] is the queue and writer thread that appends batches to them;
//! - [`replay`] rebuilds the rollups from them at start-up;
//! - [`follow`] counts lines that other processes append;
//! - [`compact`] compresses old day files and removes expired ones.

pub mod compact;
pub mod dayfile;
pub mod follow;
pub mod replay;
pub mod writer;
