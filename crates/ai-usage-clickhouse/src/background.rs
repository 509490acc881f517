//! Shipping on a background thread, for a long-running process (`ai-usage
//! serve`, an application): never on the caller's path, with its state
//! readable for health checks.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::shipper::{sleep_unless, Shipper, ShipperConfig};

/// What the background shipper last did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ShipStatus {
    /// This host's id, once the shipper is open.
    pub host_id: Option<String>,
    /// Bytes on disk not yet acknowledged by ClickHouse (`None` before the
    /// first pass).
    pub lag_bytes: Option<u64>,
    /// Records shipped since start.
    pub shipped_records: u64,
    /// Bad lines skipped since start.
    pub skipped_lines: u64,
    /// The last pass's error; `None` after a pass that succeeded.
    pub last_error: Option<String>,
    /// False once the thread ended (stopped, or a non-transient error).
    pub running: bool,
}

/// A [`Shipper`] running on its own thread until stopped or dropped.
#[derive(Debug)]
pub struct ShipperThread {
    stop: Arc<AtomicBool>,
    status: Arc<Mutex<ShipStatus>>,
    handle: Option<JoinHandle<()>>,
}

impl ShipperThread {
    /// Starts shipping `cfg.dir`, one pass every `poll`. ClickHouse being
    /// down (at start or later) is waited out with backoff; records wait on
    /// disk meanwhile.
    pub fn spawn(cfg: ShipperConfig, poll: Duration) -> std::io::Result<ShipperThread> {
        let stop = Arc::new(AtomicBool::new(false));
        let status = Arc::new(Mutex::new(ShipStatus {
            running: true,
            ..ShipStatus::default()
        }));
        let (s, st) = (Arc::clone(&stop), Arc::clone(&status));
        let handle = std::thread::Builder::new()
            .name("ai-usage-ship".into())
            .spawn(move || run(cfg, poll, &s, &st))?;
        Ok(ShipperThread {
            stop,
            status,
            handle: Some(handle),
        })
    }

    /// The shipper's current state.
    pub fn status(&self) -> ShipStatus {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Stops after the pass in progress and waits for the thread.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            if h.join().is_err() {
                tracing::error!("the shipping thread panicked");
            }
        }
    }
}

impl Drop for ShipperThread {
    fn drop(&mut self) {
        self.halt();
    }
}

fn update(status: &Mutex<ShipStatus>, f: impl FnOnce(&mut ShipStatus)) {
    f(&mut status.lock().unwrap_or_else(PoisonError::into_inner));
}

fn run(cfg: ShipperConfig, poll: Duration, stop: &AtomicBool, status: &Mutex<ShipStatus>) {
    let max_backoff = Duration::from_secs(30);
    let mut backoff = poll;
    // Open (which creates or migrates the schema), retrying while down.
    let mut shipper = loop {
        if stop.load(Ordering::Relaxed) {
            update(status, |s| s.running = false);
            return;
        }
        match Shipper::open(cfg.clone()) {
            Ok(s) => break s,
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, retry_in = ?backoff, "ClickHouse not ready; will retry");
                update(status, |s| s.last_error = Some(e.to_string()));
                sleep_unless(stop, backoff);
                backoff = (backoff * 2).min(max_backoff);
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot start shipping");
                update(status, |s| {
                    s.last_error = Some(e.to_string());
                    s.running = false;
                });
                return;
            }
        }
    };
    let host = shipper.host_id().to_string();
    update(status, |s| s.host_id = Some(host));
    backoff = poll;
    while !stop.load(Ordering::Relaxed) {
        let pass = shipper.ship_once();
        let lag = shipper.lag().ok();
        match pass {
            Ok(r) => {
                update(status, |s| {
                    s.shipped_records += r.records;
                    s.skipped_lines += r.skipped_lines;
                    s.lag_bytes = lag;
                    s.last_error = None;
                });
                backoff = poll;
            }
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, retry_in = ?backoff, "shipping failed; will retry");
                update(status, |s| {
                    s.lag_bytes = lag;
                    s.last_error = Some(e.to_string());
                });
                backoff = (backoff * 2).min(max_backoff);
            }
            Err(e) => {
                tracing::error!(error = %e, "shipping stopped");
                update(status, |s| {
                    s.lag_bytes = lag;
                    s.last_error = Some(e.to_string());
                    s.running = false;
                });
                return;
            }
        }
        sleep_unless(stop, backoff);
    }
    update(status, |s| s.running = false);
}
