//! The core's integration tests, one module per concern, in one binary so
//! the workspace links one test executable instead of ten. `durability`
//! stays a binary of its own: it re-runs itself as child processes.

#[path = "../common/mod.rs"]
mod common;

mod adjustments;
mod budgets;
mod catalogue;
mod demo;
mod dst;
mod follow;
mod instant_start;
mod nano_money;
mod original_pricing;
mod queries;
mod recycled_slots;
mod report;
mod restart;
mod savings;
mod seed_fixture;
