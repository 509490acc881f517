//! The process-wide monitor: created on first use from the environment, or
//! configured once by [`init_global`].

use std::sync::OnceLock;

use crate::error::{Error, Result};
use crate::record::{UsageEvent, UsageRecord};

use super::{exit_flush, MonitorBuilder, UsageMonitor};

static GLOBAL: OnceLock<UsageMonitor> = OnceLock::new();

/// The global monitor, created on first use from the environment
/// (`AI_USAGE_DIR`, `AI_USAGE_PRICING`, `AI_USAGE_TZ`).
///
/// Never fails: if the directory or pricing file is unusable, the error is
/// logged and the monitor keeps counting in memory (see
/// [`UsageMonitor::health`]).
///
/// It is flushed when the process exits normally (return from `main`,
/// [`std::process::exit`]), so a short program keeps every record without a
/// guard or an explicit [`UsageMonitor::flush`]. A panic-abort, a fatal
/// signal (SIGKILL) or `_exit` skip that flush: records still queued then
/// (at most one `flush_interval`'s worth, default 200 ms) are lost.
pub fn get_usage_monitor() -> &'static UsageMonitor {
    GLOBAL.get_or_init(|| {
        exit_flush::register(flush_at_exit);
        UsageMonitor::builder().build().unwrap_or_else(|e| {
            tracing::error!(error = %e, "usage monitor cannot write records; counting in memory only");
            MonitorBuilder::default().build_in_memory(e.to_string())
        })
    })
}

/// Flushes the global monitor, if it exists, as the process exits.
fn flush_at_exit() {
    if let Some(monitor) = existing() {
        if let Err(e) = monitor.flush() {
            tracing::error!(error = %e, "could not flush usage records at exit");
        }
    }
}

/// The global monitor if it exists, without creating it.
fn existing() -> Option<&'static UsageMonitor> {
    GLOBAL.get()
}

/// Configures the global monitor before first use and returns a guard that
/// flushes it when dropped. The monitor is also flushed at a normal process
/// exit without the guard; the guard makes the flush happen at a point you
/// choose (and reports nothing more).
///
/// Errors if the builder fails, or if the global monitor already exists.
pub fn init_global(builder: MonitorBuilder) -> Result<FlushGuard> {
    let monitor = builder.build()?;
    exit_flush::register(flush_at_exit);
    GLOBAL.set(monitor).map_err(|_| Error::Config {
        setting: "global monitor",
        message: "already initialised (init_global must run before the first record)".into(),
    })?;
    Ok(FlushGuard { _private: () })
}

/// Flushes the global monitor when dropped.
#[must_use = "the guard flushes the global monitor when it is dropped; keep it alive in main"]
#[derive(Debug)]
pub struct FlushGuard {
    _private: (),
}

impl FlushGuard {
    /// A guard for an already-initialised global monitor.
    pub fn new() -> FlushGuard {
        FlushGuard { _private: () }
    }
}

impl Default for FlushGuard {
    fn default() -> Self {
        FlushGuard::new()
    }
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        if let Some(m) = GLOBAL.get() {
            if let Err(e) = m.flush() {
                tracing::error!(error = %e, "could not flush usage records at exit");
            }
        }
    }
}

/// Records one call on the global monitor (the original's `record_ai_usage`).
///
/// ```no_run
/// use ai_usage_core::{record_ai_usage, UsageEvent};
/// let rec = record_ai_usage(&UsageEvent::new("qwen-plus", "实时分析").tokens(1200, 300).duration_ms(850.0).anchor("anchor_123").session("session_456"));
/// println!("cost ¥{}", rec.cost);
/// ```
pub fn record_ai_usage(ev: &UsageEvent<'_>) -> UsageRecord {
    get_usage_monitor().record(ev)
}
