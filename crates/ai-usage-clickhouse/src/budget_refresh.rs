//! The fleet's spend for the hard limits: a thread that reads, every few
//! seconds, what the fleet spent against each budget with `block_at`, and
//! hands it to the monitor, whose `check_budget` then refuses on the
//! fleet's spend rather than this host's.
//!
//! The lag: a check sees the fleet's spend as of the last refresh (at most
//! the interval, plus the query's time, behind), and the records other hosts
//! have not shipped yet. If ClickHouse stops answering, the last figures are
//! used for three intervals, then checks fall back to this host's own spend.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ai_usage_core::{BudgetHandle, FleetSpend};

use crate::queries::FleetQueries;

/// Default refresh interval of the fleet's spend (`--fleet-budget-refresh`).
pub const DEFAULT_BUDGET_REFRESH: Duration = Duration::from_secs(5);

/// The refresher thread; stops when stopped or dropped.
#[derive(Debug)]
pub struct FleetBudgetRefresh {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl FleetBudgetRefresh {
    /// Reads the fleet's spend for `budgets`' hard-limited budgets (read at
    /// each round, so budgets added later count) every `interval`.
    pub fn spawn(
        queries: FleetQueries,
        budgets: BudgetHandle,
        interval: Duration,
    ) -> std::io::Result<FleetBudgetRefresh> {
        let interval = interval.max(Duration::from_millis(100));
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name("ai-usage-budget-refresh".into())
            .spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    refresh(&queries, &budgets, interval);
                    let until = Instant::now() + interval;
                    while !s.load(Ordering::Relaxed) && Instant::now() < until {
                        std::thread::sleep(Duration::from_millis(50).min(interval));
                    }
                }
            })?;
        Ok(FleetBudgetRefresh {
            stop,
            handle: Some(handle),
        })
    }

    /// Stops and waits for the thread.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for FleetBudgetRefresh {
    fn drop(&mut self) {
        self.halt();
    }
}

/// One round: the fleet's spend of the hard-limited budgets, to the monitor.
fn refresh(queries: &FleetQueries, budgets: &BudgetHandle, interval: Duration) {
    let list: Vec<_> = budgets
        .budgets()
        .into_iter()
        .filter(|b| b.block_at.is_some())
        .collect();
    if list.is_empty() {
        budgets.set_fleet_spend(None);
        return;
    }
    let today = queries.zone().date_of(ai_usage_core::now_timestamp());
    match queries.budget_status(&list) {
        Ok(status) => {
            let spend = status
                .into_iter()
                .map(|s| (s.name, s.period.bounds(today).0, s.spent));
            budgets.set_fleet_spend(Some(FleetSpend::new(spend, Instant::now() + interval * 3)));
        }
        // The last figures stay valid until they expire.
        Err(e) => tracing::warn!(error = %e, "cannot read the fleet's spend for the hard limits"),
    }
}
