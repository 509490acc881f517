//! The scheduled digest: a daily or weekly report (the period's cost against
//! the one before, the top functions, models and anchors, budget status and
//! savings advice) posted to some of the channels at a local time.
//!
//! - [`DigestConfig`] is the `"digest"` object of `budgets.json`, checked
//!   with errors that name the field;
//! - [`DigestPeriod`] is one period's dates and due time, from the clock and
//!   the monitor's zone;
//! - [`DigestMessage`] is the report, built from the one query interface
//!   ([`ai_usage_core::UsageQueries`]), so a local monitor and a fleet make
//!   the same digest;
//! - [`DigestThread`] enters each period's digest once in the notifier's
//!   outbox (and, in a fleet, only on the host that wins its claim).

mod render;
mod report;
mod schedule;
mod thread;

pub use report::{Amount, BudgetLine, DigestMessage, PeriodCost, SavingLine, TopEntry};
pub use schedule::{DigestConfig, DigestError, DigestPeriod, DigestSchedule};
pub use thread::{Clock, DigestClaims, DigestStatus, DigestThread};
