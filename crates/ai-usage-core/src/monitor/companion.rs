//! Companions: background work a monitor starts after it is built and stops
//! when it shuts down, e.g. shipping the day files to a fleet database.
//!
//! The core knows nothing of what a companion does (no database, no HTTP):
//! it hands over the records directory and the pricing table, keeps the
//! handle, shows its health and stops it after the writer's last flush.

use std::path::Path;

use crate::pricing::PricingTable;

/// What a companion is given when the monitor starts it.
#[derive(Debug, Clone, Copy)]
pub struct CompanionContext<'a> {
    /// The monitor's records directory (its day files).
    pub dir: &'a Path,
    /// The monitor's pricing table at build time.
    pub pricing: &'a PricingTable,
}

/// Something that runs beside a monitor, on its own thread, never on the
/// recording path. Attached with [`MonitorBuilder::companion`](crate::MonitorBuilder::companion).
pub trait Companion: Send + Sync + std::fmt::Debug {
    /// Starts the background work. An error fails the monitor's build.
    fn start(
        &self,
        cx: CompanionContext<'_>,
    ) -> std::result::Result<Box<dyn CompanionHandle>, String>;
}

/// A running companion, owned by the monitor.
pub trait CompanionHandle: Send + Sync {
    /// Its current state, for [`UsageMonitor::health`](crate::UsageMonitor::health).
    fn health(&self) -> CompanionHealth;
    /// Stops it and waits for its thread (the monitor's shutdown calls it
    /// after the writer flushed).
    fn stop(self: Box<Self>);
}

/// A companion's state as [`MonitorHealth`](crate::MonitorHealth) shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CompanionHealth {
    /// What it is (e.g. `"clickhouse"`).
    pub name: String,
    /// False when it stopped on its own or its last attempt failed.
    pub ok: bool,
    /// Its own figures (e.g. a shipper's lag and last error).
    pub details: serde_json::Value,
}
