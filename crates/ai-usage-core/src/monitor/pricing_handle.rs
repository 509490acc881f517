//! A handle on a monitor's pricing table for answers computed beside it
//! (the fleet's queries in `serve --clickhouse`): they price with the table
//! in force, which follows the catalogue installed or rolled back by
//! `ai-usage pricing update` (see [`UsageMonitor::refresh_price_catalogue`]).

use std::sync::{Arc, Weak};

use super::{Shared, UsageMonitor};
use crate::pricing::PricingTable;

impl UsageMonitor {
    /// A handle on this monitor's pricing table, as it stands at each use
    /// (it does not keep the monitor alive).
    pub fn pricing_handle(&self) -> PricingHandle {
        PricingHandle {
            shared: Arc::downgrade(&self.shared),
        }
    }
}

/// A monitor's pricing table as a reader beside it sees it: the one in
/// force at each call, so a catalogue swapped in by
/// [`UsageMonitor::refresh_price_catalogue`] is seen at once. Cheap to
/// clone; gives nothing once the monitor is dropped.
#[derive(Clone)]
pub struct PricingHandle {
    shared: Weak<Shared>,
}

impl std::fmt::Debug for PricingHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PricingHandle")
            .field("live", &(self.shared.strong_count() > 0))
            .finish()
    }
}

impl PricingHandle {
    /// `f` over the table in force (under its read lock: keep `f` short,
    /// with no I/O), or over `fallback` once the monitor is gone.
    pub fn with_or<R>(&self, fallback: &PricingTable, f: impl FnOnce(&PricingTable) -> R) -> R {
        match self.shared.upgrade() {
            Some(shared) => f(&shared.pricing.read()),
            None => f(fallback),
        }
    }
}
