//! Background work for a long-running process (`ai-usage serve`, an
//! application): shipping ([`ShipperThread`]) and the fleet's budget alerts
//! ([`FleetAlertThread`]), each on its own thread, never on the caller's
//! path, with its state readable for health checks.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use ai_usage_core::{
    BudgetHandle, Companion, CompanionContext, CompanionHandle, CompanionHealth, MonitorBuilder,
};

use crate::alerts::{ClickHouseAlerts, FleetAlerter};
use crate::client::Client;
use crate::endpoint::Endpoint;
use crate::queries::FleetQueries;
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
    /// Adjustment lines (cost corrections) shipped since start.
    pub shipped_adjustments: u64,
    /// Bad lines skipped since start.
    pub skipped_lines: u64,
    /// Aggregate buckets repaired since start (after inserts whose outcome
    /// was unknown; see [`ShipReport::aggregate_repairs`](crate::ShipReport)).
    pub aggregate_repairs: u64,
    /// The last pass's error; `None` after a pass that succeeded.
    pub last_error: Option<String>,
    /// False once the thread ended (stopped, or a non-transient error while
    /// shipping; failures to start are retried, never end it).
    pub running: bool,
}

/// A named thread with a stop flag and a status it keeps up to date;
/// stopped and joined when dropped. The one mechanism behind
/// [`ShipperThread`] and [`FleetAlertThread`].
#[derive(Debug)]
struct Worker<S> {
    name: &'static str,
    stop: Arc<AtomicBool>,
    status: Arc<Mutex<S>>,
    handle: Option<JoinHandle<()>>,
}

impl<S: Clone + Send + 'static> Worker<S> {
    /// Runs `work(stop, status)` on a thread called `name`.
    fn spawn(
        name: &'static str,
        status: S,
        work: impl FnOnce(&AtomicBool, &Mutex<S>) + Send + 'static,
    ) -> std::io::Result<Worker<S>> {
        let stop = Arc::new(AtomicBool::new(false));
        let status = Arc::new(Mutex::new(status));
        let (s, st) = (Arc::clone(&stop), Arc::clone(&status));
        let handle = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || work(&s, &st))?;
        Ok(Worker {
            name,
            stop,
            status,
            handle: Some(handle),
        })
    }

    fn status(&self) -> S {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl<S> Worker<S> {
    /// Asks the thread to stop after the work in progress and waits for it.
    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            if h.join().is_err() {
                tracing::error!(thread = self.name, "a background thread panicked");
            }
        }
    }
}

impl<S> Drop for Worker<S> {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Applies `f` to a worker's status.
fn update<S>(status: &Mutex<S>, f: impl FnOnce(&mut S)) {
    f(&mut status.lock().unwrap_or_else(PoisonError::into_inner));
}

/// A [`Shipper`] running on its own thread until stopped or dropped.
#[derive(Debug)]
pub struct ShipperThread {
    worker: Worker<ShipStatus>,
}

impl ShipperThread {
    /// Starts shipping `cfg.dir`, one pass every `poll`. ClickHouse being
    /// down (at start or later) is waited out with backoff; so is any other
    /// failure to start (refused credentials, the ship lock held by another
    /// shipper, a checkpoint that does not fit): records wait on disk
    /// meanwhile, and `status().last_error` says why.
    pub fn spawn(cfg: ShipperConfig, poll: Duration) -> std::io::Result<ShipperThread> {
        let status = ShipStatus {
            running: true,
            ..ShipStatus::default()
        };
        let worker = Worker::spawn("ai-usage-ship", status, move |stop, status| {
            run(cfg, poll, stop, status)
        })?;
        Ok(ShipperThread { worker })
    }

    /// The shipper's current state.
    pub fn status(&self) -> ShipStatus {
        self.worker.status()
    }

    /// Stops after the pass in progress and waits for the thread.
    pub fn stop(mut self) {
        self.worker.halt();
    }
}

fn run(cfg: ShipperConfig, poll: Duration, stop: &AtomicBool, status: &Mutex<ShipStatus>) {
    let max_backoff = Duration::from_secs(30);
    let mut backoff = poll;
    // Open (which creates or migrates the schema), retrying with backoff
    // whatever the failure: a proxy answering 401 while credentials
    // propagate, a lock another shipper releases, a checkpoint an operator
    // fixes. Giving up here stopped shipping until a restart.
    let mut shipper = loop {
        if stop.load(Ordering::Relaxed) {
            update(status, |s| s.running = false);
            return;
        }
        match Shipper::open(cfg.clone()) {
            Ok(s) => break s,
            Err(e) => {
                if e.is_transient() {
                    tracing::warn!(error = %e, retry_in = ?backoff, "ClickHouse not ready; will retry");
                } else {
                    tracing::error!(error = %e, retry_in = ?backoff, "cannot start shipping; will retry");
                }
                update(status, |s| s.last_error = Some(e.to_string()));
                sleep_unless(stop, backoff);
                backoff = (backoff * 2).min(max_backoff);
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
                    s.shipped_adjustments += r.adjustments;
                    s.skipped_lines += r.skipped_lines;
                    s.aggregate_repairs += r.aggregate_repairs;
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

/// Shipping from inside an application: attached to a monitor with
/// [`ClickHouseExt::clickhouse`] (or [`MonitorBuilder::companion`]), it
/// starts a [`ShipperThread`] over the monitor's directory once the monitor
/// is built and stops it when the monitor shuts down (after the writer's
/// last flush; what the last pass did not reach waits on disk for the next
/// start). `health().companions` shows its [`ShipStatus`].
#[derive(Debug, Clone)]
pub struct ClickHouseShipping {
    /// Where to ship.
    pub endpoint: Endpoint,
    /// This host's id (default: the checkpoint's, else the records directory's own).
    pub host_id: Option<String>,
    /// Pause between passes (default 1 s).
    pub poll: Duration,
    /// Rows per insert (default: [`ShipperConfig::new`]'s).
    pub batch_rows: Option<usize>,
}

impl ClickHouseShipping {
    /// Ships to `endpoint` once a second.
    pub fn new(endpoint: Endpoint) -> ClickHouseShipping {
        ClickHouseShipping {
            endpoint,
            host_id: None,
            poll: Duration::from_secs(1),
            batch_rows: None,
        }
    }
}

impl Companion for ClickHouseShipping {
    fn start(&self, cx: CompanionContext<'_>) -> Result<Box<dyn CompanionHandle>, String> {
        let mut cfg = ShipperConfig::new(cx.dir, self.endpoint.clone());
        cfg.host_id.clone_from(&self.host_id);
        cfg.pricing = cx.pricing.clone();
        if let Some(rows) = self.batch_rows {
            cfg.batch_rows = rows.max(1);
        }
        ShipperThread::spawn(cfg, self.poll)
            .map(|t| Box::new(t) as Box<dyn CompanionHandle>)
            .map_err(|e| format!("cannot start the ClickHouse shipping thread: {e}"))
    }
}

impl CompanionHandle for ShipperThread {
    fn health(&self) -> CompanionHealth {
        let status = self.status();
        CompanionHealth {
            name: "clickhouse".into(),
            ok: status.running && status.last_error.is_none(),
            details: serde_json::to_value(&status).unwrap_or_default(),
        }
    }

    fn stop(self: Box<Self>) {
        ShipperThread::stop(*self);
    }
}

/// `MonitorBuilder::clickhouse(..)`: ship the monitor's day files to
/// ClickHouse from inside the application, on a background thread.
///
/// ```no_run
/// use ai_usage_clickhouse::{ClickHouseExt, Endpoint};
/// use ai_usage_core::UsageMonitor;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let monitor = UsageMonitor::builder()
///     .dir("records/ai_usage")
///     .clickhouse(Endpoint::parse("http://127.0.0.1:8123", "ai_usage")?)
///     .build()?;
/// // … record calls; `monitor.health().companions` shows the shipping lag.
/// # Ok(()) }
/// ```
pub trait ClickHouseExt {
    /// Ships to `endpoint` once a second with the default settings.
    fn clickhouse(self, endpoint: Endpoint) -> Self;
    /// Ships with explicit settings.
    fn clickhouse_shipping(self, shipping: ClickHouseShipping) -> Self;
    /// Opt-in: the monitor's budgets alert on the whole fleet's spend (a
    /// [`FleetAlertThread`]; its per-record alerts are turned off). Every
    /// host doing so delivers each threshold once in all (see the `alerts`
    /// module); `health().companions` shows the poller.
    fn clickhouse_alerts(self, alerts: ClickHouseAlerts) -> Self;
}

impl ClickHouseExt for MonitorBuilder {
    fn clickhouse(self, endpoint: Endpoint) -> Self {
        self.clickhouse_shipping(ClickHouseShipping::new(endpoint))
    }

    fn clickhouse_shipping(self, shipping: ClickHouseShipping) -> Self {
        self.companion(shipping)
    }

    fn clickhouse_alerts(self, alerts: ClickHouseAlerts) -> Self {
        self.companion(alerts)
    }
}

/// What the fleet alert poller last did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct FleetAlertStatus {
    /// This poller's id in the claims table.
    pub claimant: String,
    /// When the last poll succeeded (epoch seconds).
    pub last_poll: Option<f64>,
    /// Polls that succeeded since start.
    pub polls: u64,
    /// Alerts this poller delivered since start.
    pub delivered: u64,
    /// The last poll's error; `None` after a poll that succeeded.
    pub last_error: Option<String>,
    /// False once the thread ended.
    pub running: bool,
}

/// A [`FleetAlerter`] polling on its own thread every interval, delivering
/// what it wins through a monitor's [`BudgetHandle`] (the monitor's warning
/// and callbacks). ClickHouse being down is logged, shown in the status and
/// retried at the next poll; recording never waits on it.
#[derive(Debug)]
pub struct FleetAlertThread {
    worker: Worker<FleetAlertStatus>,
}

impl FleetAlertThread {
    /// Starts polling for `budgets`' budgets (read at each poll, so budgets
    /// added later count) with `queries` (whose zone makes the periods),
    /// and turns the monitor's per-record alerts off. The schema (with the
    /// claims table) is migrated before the first poll.
    pub fn spawn(
        cfg: &ClickHouseAlerts,
        queries: FleetQueries,
        budgets: BudgetHandle,
    ) -> std::io::Result<FleetAlertThread> {
        let alerter = FleetAlerter::new(queries, cfg);
        let status = FleetAlertStatus {
            claimant: alerter.claimant().to_string(),
            running: true,
            ..FleetAlertStatus::default()
        };
        let (interval, local) = (cfg.interval, budgets.clone());
        let worker = Worker::spawn("ai-usage-alerts", status, move |stop, status| {
            poll_loop(alerter, &budgets, interval, stop, status)
        })?;
        // Only once the poller runs: a thread that failed to start leaves
        // the local alerts on.
        local.set_local_alerts(false);
        Ok(FleetAlertThread { worker })
    }

    /// The poller's current state.
    pub fn status(&self) -> FleetAlertStatus {
        self.worker.status()
    }

    /// Stops after the poll in progress (a claim in progress is decided
    /// first) and waits for the thread.
    pub fn stop(mut self) {
        self.worker.halt();
    }
}

fn poll_loop(
    mut alerter: FleetAlerter,
    budgets: &BudgetHandle,
    interval: Duration,
    stop: &AtomicBool,
    status: &Mutex<FleetAlertStatus>,
) {
    let set = |f: &dyn Fn(&mut FleetAlertStatus)| update(status, f);
    let mut migrated = false;
    while !stop.load(Ordering::Relaxed) {
        let list = budgets.budgets();
        let polled = if list.is_empty() {
            Ok(Vec::new())
        } else if migrated {
            alerter.poll(&list)
        } else {
            let q = alerter.queries();
            crate::schema::migrate_in(q.client(), q.zone())
                .map(|_| migrated = true)
                .and_then(|()| alerter.poll(&list))
        };
        match polled {
            Ok(alerts) => {
                budgets.deliver(&alerts);
                let n = alerts.len() as u64;
                let now = ai_usage_core::now_timestamp();
                set(&|s| {
                    s.polls += 1;
                    s.delivered += n;
                    s.last_poll = Some(now);
                    s.last_error = None;
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?interval, "fleet budget alert poll failed; will retry");
                let message = e.to_string();
                set(&|s| s.last_error = Some(message.clone()));
            }
        }
        sleep_unless(stop, interval);
    }
    set(&|s| s.running = false);
}

impl Companion for ClickHouseAlerts {
    fn start(&self, cx: CompanionContext<'_>) -> Result<Box<dyn CompanionHandle>, String> {
        let client = Client::new(self.endpoint.clone(), Duration::from_secs(60));
        let queries = FleetQueries::new(client, cx.zone, cx.pricing.clone());
        FleetAlertThread::spawn(self, queries, cx.budgets.clone())
            .map(|t| Box::new(t) as Box<dyn CompanionHandle>)
            .map_err(|e| format!("cannot start the fleet budget alert thread: {e}"))
    }
}

impl CompanionHandle for FleetAlertThread {
    fn health(&self) -> CompanionHealth {
        let status = self.status();
        CompanionHealth {
            name: "clickhouse-alerts".into(),
            ok: status.running && status.last_error.is_none(),
            details: serde_json::to_value(&status).unwrap_or_default(),
        }
    }

    fn stop(self: Box<Self>) {
        FleetAlertThread::stop(*self);
    }
}
