//! Fleet scale for `ai-usage-monitor`: ship each host's day files to one
//! ClickHouse server and answer the fleet's queries from it.
//!
//! - [`Shipper`] reads the day files from a durable checkpoint and inserts
//!   their records over ClickHouse's HTTP interface, exactly once (see the
//!   `shipper` module for how, on ClickHouse 18.16 and later), and the
//!   adjustment files (cost corrections) the same way;
//! - [`schema::migrate`] creates and upgrades the tables idempotently;
//! - [`ShipperThread`] runs a shipper in the background (`serve`, apps);
//!   [`ClickHouseExt::clickhouse`] attaches one to a monitor
//!   (`MonitorBuilder::clickhouse(..)`);
//! - [`FleetQueries`] answers summaries with the core's result types (it
//!   implements the core's query interface, `UsageQueries`), with the
//!   shipped cost corrections applied (module `corrections`), and
//!   writes the fleet's CSV exports (module `report`);
//! - [`FleetAlerter`] alerts on budgets from the fleet's spend, each
//!   threshold delivered by one host once (module `alerts`), on its own
//!   thread with [`FleetAlertThread`] or [`ClickHouseExt::clickhouse_alerts`].
//!
//! The core crate knows nothing of this one or of HTTP.
#![warn(missing_docs)]

mod alerts;
mod answers;
mod background;
mod budget_refresh;
mod checkpoint;
mod client;
mod columns;
mod corrections;
mod endpoint;
mod error;
mod host_id;
mod queries;
mod report;
mod row;
pub mod schema;
mod shipper;
mod tsv;

pub use alerts::{ClickHouseAlerts, FleetAlerter, OnceClaims};
pub use background::{
    ClickHouseExt, ClickHouseShipping, FleetAlertStatus, FleetAlertThread, ShipStatus,
    ShipperThread,
};
pub use budget_refresh::{FleetBudgetRefresh, DEFAULT_BUDGET_REFRESH};
pub use checkpoint::{Checkpoint, FileMark, CHECKPOINT_FILE};
pub use client::Client;
pub use endpoint::{redact, Endpoint, DEFAULT_DATABASE};
pub use error::{Error, Result};
pub use host_id::{directory_host_id, hostname, HOST_ID_FILE};
pub use queries::FleetQueries;
pub use report::RECORDS_BATCH_ROWS;
pub use row::record_id;
pub use schema::ALERTS_TABLE;
pub use shipper::{ShipReport, Shipper, ShipperConfig, LOCK_FILE};
