//! Companions: background work a monitor starts after it is built and stops
//! when it shuts down, e.g. shipping the day files to a fleet database.
//!
//! The core knows nothing of what a companion does (no database, no HTTP):
//! it hands over the records directory and the pricing table, keeps the
//! handle, shows its health and stops it after the writer's last flush.

use std::path::Path;

use crate::pricing::PricingTable;
use crate::zone::Zone;

use super::budgets::BudgetHandle;

/// What a companion is given when the monitor starts it.
#[derive(Debug, Clone, Copy)]
pub struct CompanionContext<'a> {
    /// The monitor's records directory (its day files).
    pub dir: &'a Path,
    /// The monitor's pricing table at build time.
    pub pricing: &'a PricingTable,
    /// The monitor's zone (its local days).
    pub zone: Zone,
    /// The monitor's budgets, for a companion that alerts on them.
    pub budgets: &'a BudgetHandle,
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::{UsageEvent, UsageMonitor};

    /// What the test companion saw: the directory it was started with and
    /// how many records were on disk when it was stopped.
    #[derive(Debug, Default)]
    struct Seen {
        dir: Option<std::path::PathBuf>,
        lines_at_stop: Option<usize>,
    }

    #[derive(Debug, Clone, Default)]
    struct Probe {
        seen: Arc<Mutex<Seen>>,
        fail: bool,
    }

    struct Running {
        seen: Arc<Mutex<Seen>>,
        stopped: AtomicBool,
    }

    impl Companion for Probe {
        fn start(
            &self,
            cx: CompanionContext<'_>,
        ) -> std::result::Result<Box<dyn CompanionHandle>, String> {
            if self.fail {
                return Err("refused".into());
            }
            self.seen.lock().unwrap().dir = Some(cx.dir.to_path_buf());
            Ok(Box::new(Running {
                seen: Arc::clone(&self.seen),
                stopped: AtomicBool::new(false),
            }))
        }
    }

    impl CompanionHandle for Running {
        fn health(&self) -> CompanionHealth {
            CompanionHealth {
                name: "probe".into(),
                ok: !self.stopped.load(Ordering::Relaxed),
                details: serde_json::json!({ "lag_bytes": 0 }),
            }
        }

        fn stop(self: Box<Self>) {
            self.stopped.store(true, Ordering::Relaxed);
            let mut seen = self.seen.lock().unwrap();
            let dir = seen.dir.clone().unwrap();
            let lines = std::fs::read_dir(&dir)
                .unwrap()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".jsonl"))
                .map(|e| std::fs::read_to_string(e.path()).unwrap().lines().count())
                .sum();
            seen.lines_at_stop = Some(lines);
        }
    }

    #[test]
    fn a_companion_starts_after_build_shows_in_health_and_stops_after_the_last_flush() {
        let dir = tempfile::tempdir().unwrap();
        let probe = Probe::default();
        let m = UsageMonitor::builder()
            .dir(dir.path())
            .replay(false)
            // A long flush interval: only the shutdown's flush writes.
            .flush_interval(std::time::Duration::from_secs(3600))
            .companion(probe.clone())
            .build()
            .unwrap();
        assert_eq!(probe.seen.lock().unwrap().dir.as_deref(), Some(dir.path()));
        let h = m.health();
        assert_eq!(h.companions.len(), 1);
        assert_eq!(h.companions[0].name, "probe");
        assert!(h.companions[0].ok);
        m.record(&UsageEvent::new("qwen-plus", "f").tokens(10, 5));
        m.record(&UsageEvent::new("qwen-plus", "f").tokens(10, 5));
        m.shutdown().unwrap();
        // Stopped after the writer's last flush: it saw both records on disk.
        assert_eq!(probe.seen.lock().unwrap().lines_at_stop, Some(2));
        assert!(m.health().companions.is_empty());
    }

    #[test]
    fn a_companion_that_cannot_start_fails_the_build() {
        let dir = tempfile::tempdir().unwrap();
        let err = UsageMonitor::builder()
            .dir(dir.path())
            .replay(false)
            .companion(Probe {
                fail: true,
                ..Probe::default()
            })
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("refused"), "{err}");
    }

    #[test]
    fn builder_observer_sees_new_records_not_the_replayed_ones() {
        let dir = tempfile::tempdir().unwrap();
        {
            let m = UsageMonitor::builder().dir(dir.path()).build().unwrap();
            m.record(&UsageEvent::new("qwen-plus", "old").tokens(1, 1));
            m.shutdown().unwrap();
        }
        let seen = Arc::new(Mutex::new(Vec::new()));
        let keep = Arc::clone(&seen);
        let m = UsageMonitor::builder()
            .dir(dir.path())
            .observer(move |call| keep.lock().unwrap().push(call.record.function.clone()))
            .build()
            .unwrap();
        assert!(m.wait_until_loaded(std::time::Duration::from_secs(10)));
        assert_eq!(
            m.health().records_in_memory,
            1,
            "the old record was replayed"
        );
        m.record(&UsageEvent::new("qwen-plus", "new").tokens(1, 1));
        // Observers run on the counting thread; `settle` waits for them.
        m.settle();
        assert_eq!(*seen.lock().unwrap(), vec!["new".to_string()]);
    }
}
