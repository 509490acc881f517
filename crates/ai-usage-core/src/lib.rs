//! Core of `ai-usage-monitor`: exact pricing of AI calls, the seed-compatible
//! record format, a durable non-blocking recorder, in-memory rollups and the
//! queries answered from them.
//!
//! Where things happen, in the order a record travels:
//! - [`pricing`] turns (model, tokens) into exact [`Money`] in one currency;
//! - [`record`] is the JSON line and the caller's [`UsageEvent`];
//! - [`monitor`] prices an event, updates [`rollups`] and queues the line;
//! - [`storage`] owns the day files: the writer thread, replay, following;
//! - [`query`] answers summaries, sessions, rankings and trends from rollups;
//! - [`budget`] checks spending against limits; [`export`] writes reports.
#![warn(missing_docs)]

pub mod budget;
pub mod demo;
pub mod error;
pub mod export;
pub mod money;
pub mod monitor;
pub mod pricing;
pub mod query;
pub mod record;
pub mod rollups;
pub mod storage;
pub mod tracking;
pub mod zone;

pub use money::{Costs, Currency, Money};
pub use pricing::{ModelPrice, PricingTable, Quote};
pub use record::usage::TokenUsage;
pub use record::{UsageEvent, UsageRecord};
pub use storage::writer::{FsyncPolicy, QueuePolicy};
