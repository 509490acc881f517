//! Core of `ai-usage-monitor`: exact pricing of AI calls, the seed-compatible
//! record format, a durable non-blocking recorder, in-memory rollups and the
//! queries answered from them.
//!
//! Where things happen, in the order a record travels:
//! - [`pricing`] turns (model, tokens) into exact [`Money`] in one currency;
//! - [`record`] is the JSON line and the caller's [`UsageEvent`];
//! - [`monitor`] prices an event, updates [`rollups`] and queues the line;
//! - [`recorder`] is the writer thread that appends batches to day files;
//! - [`store`] names, lists and replays day files;
//! - [`query`] answers summaries, sessions, rankings and trends from rollups.
#![warn(missing_docs)]

pub mod budget;
pub mod demo;
pub mod error;
pub mod follow;
pub mod money;
pub mod monitor;
pub mod pricing;
pub mod query;
pub mod record;
pub mod recorder;
pub mod report;
pub mod rollups;
pub mod savings;
pub mod store;
pub mod tracking;
pub mod usage;
pub mod zone;

pub use money::{Costs, Currency, Money};
pub use pricing::{ModelPrice, PricingTable, Quote};
pub use record::{UsageEvent, UsageRecord};
pub use recorder::{FsyncPolicy, QueuePolicy};
pub use usage::TokenUsage;
