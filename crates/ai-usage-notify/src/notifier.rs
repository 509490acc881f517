//! The notifier: a monitor companion that puts each budget alert into the
//! [`Outbox`] (synced before anything is sent) for every channel its budget
//! names, and a sender thread that delivers the outbox with retries.
//!
//! - A crossed threshold reaches the notifier through the monitor's alert
//!   callbacks: per record (local alerts), or as decided by the fleet's
//!   claims (`ai-usage-clickhouse`'s poller, which delivers through the same
//!   callbacks on the one host that won the claim). The outbox then makes
//!   it once per channel across restarts.
//! - 5xx, 429, timeouts and refused connections are retried with a doubling
//!   delay (from [`RetryPolicy::first_delay`] up to
//!   [`RetryPolicy::max_delay`], or the receiver's `Retry-After`) until
//!   [`RetryPolicy::give_up_after`] (24 h) from when it was queued.
//! - Any other failure (a 4xx other than 429, a provider's refusal such as
//!   a bad signature) is a configuration error: not retried, shown in the
//!   monitor's `health()` (so `/healthz`) and by `ai-usage budgets`.
//! - A restart resumes the pending deliveries. Delivery is at least once:
//!   a process killed after the receiver accepted a message but before the
//!   outbox recorded it sends it again; the webhook's event id lets a
//!   receiver drop that repeat.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ai_usage_core::{
    BudgetAlert, BudgetHandle, BudgetPeriod, Companion, CompanionContext, CompanionHandle,
    CompanionHealth, Zone,
};
use parking_lot::{Condvar, Mutex};
use serde::Serialize;

use crate::config::{ChannelConfig, ConfigError};
use crate::delivery::{send_notice, SendError, DEFAULT_TIMEOUT};
use crate::message::AlertMessage;
use crate::notice::Notice;
use crate::outbox::{Delivery, DeliveryState, Outbox, OutboxError};

/// How failed deliveries are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay before the second attempt (doubled after each failure).
    pub first_delay: Duration,
    /// Longest delay between two attempts.
    pub max_delay: Duration,
    /// Stop retrying this long after the alert was queued (default 24 h).
    pub give_up_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            first_delay: Duration::from_secs(5),
            max_delay: Duration::from_secs(15 * 60),
            give_up_after: Duration::from_secs(24 * 3600),
        }
    }
}

impl RetryPolicy {
    /// The delay after the `failures`-th failed attempt.
    pub fn delay(&self, failures: u32) -> Duration {
        let factor = 1u32 << failures.saturating_sub(1).min(20);
        self.first_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// The channels by name, checked; the error names the channel.
pub fn channels_from_json(
    raw: &BTreeMap<String, serde_json::Value>,
) -> Result<BTreeMap<String, ChannelConfig>, ConfigError> {
    raw.iter()
        .map(|(name, value)| {
            let config = serde_json::from_value::<ChannelConfig>(value.clone()).map_err(|e| {
                // serde wraps the channel's own error; keep its text (no values).
                ConfigError::Json(format!("channel `{name}`: {e}"))
            })?;
            Ok((name.clone(), config))
        })
        .collect()
}

/// Delivers budget alerts to channels; attach it to a monitor with
/// `MonitorBuilder::companion` or `UsageMonitor::attach`.
///
/// ```no_run
/// use ai_usage_core::{Budget, BudgetPeriod, BudgetScope, Currency, UsageMonitor};
/// use ai_usage_notify::{ChannelConfig, ChannelKind, Notifier};
/// let notifier = Notifier::new().channel(
///     "ops",
///     ChannelConfig::new(ChannelKind::Slack, "https://hooks.slack.com/services/T/B/X")?,
/// );
/// let monitor = UsageMonitor::builder().companion(notifier).build()?;
/// monitor.add_budget(
///     Budget::new("daily", BudgetScope::Global, BudgetPeriod::Daily, "50".parse()?, Currency::CNY)
///         .with_notify(["ops"]),
/// )?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    channels: BTreeMap<String, ChannelConfig>,
    retry: RetryPolicy,
    timeout: Option<Duration>,
    public_url: Option<String>,
    /// The running notifier, once started (shared by clones), so that a
    /// digest thread can enter its digests in the same outbox.
    running: Running,
}

/// The started notifier's shared state, if any (weak: the monitor owns it).
#[derive(Clone, Default)]
struct Running(Arc<Mutex<std::sync::Weak<Shared>>>);

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.lock().strong_count() > 0 {
            "running"
        } else {
            "not running"
        })
    }
}

impl Notifier {
    /// A notifier without channels, with the default retries.
    pub fn new() -> Notifier {
        Notifier::default()
    }

    /// A notifier for the `"notify"` map of a budgets file
    /// ([`ai_usage_core::BudgetsConfig::channels`]).
    pub fn from_channels(
        raw: &BTreeMap<String, serde_json::Value>,
    ) -> Result<Notifier, ConfigError> {
        Ok(Notifier {
            channels: channels_from_json(raw)?,
            ..Notifier::default()
        })
    }

    /// Adds (or replaces) the channel `name`.
    pub fn channel(mut self, name: impl Into<String>, config: ChannelConfig) -> Notifier {
        self.channels.insert(name.into(), config);
        self
    }

    /// Replaces the retry policy.
    pub fn retry(mut self, retry: RetryPolicy) -> Notifier {
        self.retry = retry;
        self
    }

    /// Longest time of one attempt (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Notifier {
        self.timeout = Some(timeout);
        self
    }

    /// The dashboard's public URL, linked from every message.
    pub fn public_url(mut self, url: impl Into<String>) -> Notifier {
        self.public_url = Some(url.into());
        self
    }

    /// The channels, by name.
    pub fn channels(&self) -> &BTreeMap<String, ChannelConfig> {
        &self.channels
    }

    /// True once attached to a monitor (and until that monitor stops it).
    pub fn is_running(&self) -> bool {
        self.running.0.lock().strong_count() > 0
    }

    /// The dashboard's public URL, if set.
    pub fn public_url_of(&self) -> Option<&str> {
        self.public_url.as_deref()
    }

    /// True when (`id`, `channel`) is in the running notifier's outbox.
    pub(crate) fn has_entry(&self, id: &str, channel: &str) -> bool {
        self.running
            .0
            .lock()
            .upgrade()
            .is_some_and(|s| s.outbox.contains(id, channel))
    }

    /// Enters `notice` for `channel` in the running notifier's outbox and
    /// wakes its sender; false when it was entered before.
    pub(crate) fn enter(&self, channel: &str, notice: &Notice) -> Result<bool, String> {
        let Some(shared) = self.running.0.lock().upgrade() else {
            return Err("the notifier is not running".into());
        };
        if !self.channels.contains_key(channel) {
            return Err(format!("channel `{channel}` is not configured"));
        }
        let added = shared.outbox.enqueue_notice(channel, notice).map_err(|e| {
            shared.io_failed(&e);
            format!("{}: {}", e.action, e.source)
        })?;
        if added {
            shared.wake();
        }
        Ok(added)
    }

    /// Shows the digest thread's `status` in the running notifier's health.
    pub(crate) fn report_digest(&self, status: crate::digest::DigestStatus) {
        if let Some(shared) = self.running.0.lock().upgrade() {
            *shared.digest.lock() = Some(status);
        }
    }

    /// The message for `alert`, as the notifier sends it.
    fn message(&self, alert: &BudgetAlert, zone: &Zone, budgets: &BudgetHandle) -> AlertMessage {
        let mut m = AlertMessage::from_budget_alert(alert, zone);
        if alert.period == BudgetPeriod::Monthly {
            if let Some(s) = budgets
                .status()
                .into_iter()
                .find(|s| s.name == alert.budget)
            {
                if s.period_label == alert.period_label {
                    m = m.with_projection(s.projected_end_of_period);
                }
            }
        }
        if let Some(url) = &self.public_url {
            m = m.with_public_url(url.clone());
        }
        m
    }
}

/// What the sender thread and the alert callback share.
struct Shared {
    outbox: Outbox,
    notifier: Notifier,
    /// True once stopping; the sender leaves what is pending on disk.
    stop: Mutex<bool>,
    wake: Condvar,
    /// Set (under `stop`'s lock) by [`Shared::wake`]: work arrived, maybe
    /// while the sender was busy rather than waiting, so it must look again
    /// before it waits (else that wake-up is lost until the next minute).
    kicked: std::sync::atomic::AtomicBool,
    /// Per (id, channel): failures so far, next attempt, last error.
    retries: Mutex<HashMap<(String, String), Retry>>,
    /// Last outbox I/O error (alerts may be lost: shown in health).
    io_error: Mutex<Option<String>>,
    /// What the digest thread posting through this notifier last did.
    digest: Mutex<Option<crate::digest::DigestStatus>>,
}

#[derive(Debug, Clone)]
struct Retry {
    failures: u32,
    next: Instant,
    last_error: String,
}

impl Shared {
    fn wake(&self) {
        let _guard = self.stop.lock();
        self.kicked.store(true, std::sync::atomic::Ordering::SeqCst);
        self.wake.notify_all();
    }

    fn io_failed(&self, e: &OutboxError) {
        tracing::error!(error = %e, "alert outbox");
        // Without the path: health may be shown to anyone (`/healthz`).
        *self.io_error.lock() = Some(format!("{}: {}", e.action, e.source));
    }

    /// Enters `alert` for each channel its budget names.
    fn enqueue(&self, alert: &BudgetAlert, zone: &Zone, budgets: &BudgetHandle) {
        let Some(budget) = budgets
            .budgets()
            .into_iter()
            .find(|b| b.name == alert.budget)
        else {
            return;
        };
        if budget.notify.is_empty() {
            return;
        }
        let message = self.notifier.message(alert, zone, budgets);
        let mut added = false;
        for channel in &budget.notify {
            if !self.notifier.channels.contains_key(channel) {
                tracing::warn!(budget = %budget.name, channel = %channel, "budget names an unknown notify channel");
                continue;
            }
            match self.outbox.enqueue(channel, &message) {
                Ok(true) => added = true,
                Ok(false) => {
                    tracing::debug!(id = %message.id, channel = %channel, "alert already in the outbox")
                }
                Err(e) => self.io_failed(&e),
            }
        }
        if added {
            self.wake();
        }
    }

    /// Tries every due delivery once; returns when the next one is due.
    fn round(&self) -> Option<Instant> {
        let mut next_due: Option<Instant> = None;
        for d in self.outbox.pending() {
            if *self.stop.lock() {
                return None;
            }
            let key = (d.id.clone(), d.channel.clone());
            let now = Instant::now();
            if let Some(r) = self.retries.lock().get(&key) {
                if r.next > now {
                    next_due = Some(next_due.map_or(r.next, |n| n.min(r.next)));
                    continue;
                }
            }
            if let Some(at) = self.attempt(&d, key) {
                next_due = Some(next_due.map_or(at, |n| n.min(at)));
            }
        }
        next_due
    }

    /// One attempt; the time of the next one if it is to be retried.
    fn attempt(&self, d: &Delivery, key: (String, String)) -> Option<Instant> {
        let failures = self.retries.lock().get(&key).map_or(0, |r| r.failures);
        let Some(config) = self.notifier.channels.get(&d.channel) else {
            let error = format!("channel `{}` is not configured any more", d.channel);
            self.settle_failed(d, failures, &error, true);
            return None;
        };
        let timeout = self.notifier.timeout.unwrap_or(DEFAULT_TIMEOUT);
        match send_notice(config, &d.message, timeout) {
            Ok(()) => {
                if let Err(e) = self.outbox.mark_sent(&d.id, &d.channel, failures + 1) {
                    self.io_failed(&e);
                }
                self.retries.lock().remove(&key);
                tracing::info!(subject = %d.message.subject(), channel = %d.channel, "notice delivered");
                None
            }
            Err(e) if e.is_retryable() => self.retry_later(d, key, failures + 1, &e),
            Err(e) => {
                self.settle_failed(d, failures + 1, &e.to_string(), true);
                self.retries.lock().remove(&key);
                None
            }
        }
    }

    fn retry_later(
        &self,
        d: &Delivery,
        key: (String, String),
        failures: u32,
        e: &SendError,
    ) -> Option<Instant> {
        let policy = self.notifier.retry;
        let age = ai_usage_core::now_timestamp() - d.queued_at;
        if age >= policy.give_up_after.as_secs_f64() {
            let error = format!(
                "gave up after {failures} attempts over {:?}: {e}",
                policy.give_up_after
            );
            self.settle_failed(d, failures, &error, false);
            self.retries.lock().remove(&key);
            return None;
        }
        let delay = e
            .retry_after()
            .map_or(policy.delay(failures), |r| r.min(policy.max_delay));
        let next = Instant::now() + delay;
        self.retries.lock().insert(
            key,
            Retry {
                failures,
                next,
                last_error: e.to_string(),
            },
        );
        Some(next)
    }

    fn settle_failed(&self, d: &Delivery, attempts: u32, error: &str, configuration: bool) {
        if configuration {
            tracing::error!(subject = %d.message.subject(), channel = %d.channel, error = %error, "notice not delivered: configuration error");
        } else {
            tracing::error!(subject = %d.message.subject(), channel = %d.channel, error = %error, "notice not delivered");
        }
        if let Err(e) = self
            .outbox
            .mark_failed(&d.id, &d.channel, attempts, error, configuration)
        {
            self.io_failed(&e);
        }
    }

    fn run(&self) {
        loop {
            let next = self.round();
            let mut stop = self.stop.lock();
            if *stop {
                return;
            }
            if self.kicked.swap(false, std::sync::atomic::Ordering::SeqCst) {
                continue;
            }
            // New alerts wake the thread; a pending retry sets the deadline;
            // the minute-long wait is a safety net only.
            let deadline = next
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(60))
                .min(Instant::now() + Duration::from_secs(60));
            if deadline > Instant::now() {
                self.wake.wait_until(&mut stop, deadline);
            }
            if *stop {
                return;
            }
        }
    }
}

/// A channel's configuration error, as health shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelProblem {
    /// The channel's name.
    pub channel: String,
    /// The budget whose alert failed (`digest …` for a digest).
    pub budget: String,
    /// What went wrong (redacted).
    pub error: String,
}

/// Configuration errors of an outbox's failed deliveries, latest per
/// channel (what `health()` and `ai-usage budgets` show).
pub fn configuration_problems(entries: &[Delivery]) -> Vec<ChannelProblem> {
    let mut latest: BTreeMap<&str, (f64, ChannelProblem)> = BTreeMap::new();
    for d in entries {
        if let DeliveryState::Failed {
            at,
            error,
            configuration: true,
            ..
        } = &d.state
        {
            let p = ChannelProblem {
                channel: d.channel.clone(),
                budget: d.message.subject(),
                error: error.clone(),
            };
            match latest.get(d.channel.as_str()) {
                Some((t, _)) if *t > *at => {}
                _ => {
                    latest.insert(d.channel.as_str(), (*at, p));
                }
            }
        }
    }
    latest.into_values().map(|(_, p)| p).collect()
}

/// The running notifier.
pub struct NotifierHandle {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for NotifierHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotifierHandle")
            .field("outbox", &self.shared.outbox)
            .finish()
    }
}

impl NotifierHandle {
    /// The outbox it delivers.
    pub fn outbox(&self) -> &Outbox {
        &self.shared.outbox
    }
}

impl Companion for Notifier {
    fn start(&self, cx: CompanionContext<'_>) -> Result<Box<dyn CompanionHandle>, String> {
        let outbox = Outbox::open(cx.dir).map_err(|e| e.to_string())?;
        let shared = Arc::new(Shared {
            outbox,
            notifier: self.clone(),
            stop: Mutex::new(false),
            wake: Condvar::new(),
            kicked: std::sync::atomic::AtomicBool::new(false),
            retries: Mutex::new(HashMap::new()),
            io_error: Mutex::new(None),
            digest: Mutex::new(None),
        });
        *self.running.0.lock() = Arc::downgrade(&shared);
        let pending = shared.outbox.pending().len();
        if pending > 0 {
            tracing::info!(pending, "alert outbox: resuming pending deliveries");
        }
        {
            let shared = Arc::clone(&shared);
            let budgets = cx.budgets.clone();
            let zone = cx.zone;
            cx.budgets.subscribe(Arc::new(move |alert: &BudgetAlert| {
                shared.enqueue(alert, &zone, &budgets);
            }));
        }
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("ai-usage-notify".into())
                .spawn(move || shared.run())
                .map_err(|e| format!("cannot start the alert sender: {e}"))?
        };
        Ok(Box::new(NotifierHandle {
            shared,
            thread: Some(thread),
        }))
    }
}

impl CompanionHandle for NotifierHandle {
    fn health(&self) -> CompanionHealth {
        let entries = self.shared.outbox.entries();
        let counts = crate::outbox::count(entries.iter());
        let problems = configuration_problems(&entries);
        let retrying: Vec<serde_json::Value> = self
            .shared
            .retries
            .lock()
            .iter()
            .map(|((_, channel), r)| {
                serde_json::json!({"channel": channel, "failures": r.failures, "last_error": r.last_error})
            })
            .collect();
        let io_error = self.shared.io_error.lock().clone();
        let digest = self.shared.digest.lock().clone();
        let digest_ok = digest.as_ref().is_none_or(|d| d.last_error.is_none());
        CompanionHealth {
            name: "notify".into(),
            ok: problems.is_empty() && io_error.is_none() && digest_ok,
            details: serde_json::json!({
                "channels": self.shared.notifier.channels.keys().collect::<Vec<_>>(),
                "pending": counts.pending,
                "sent": counts.sent,
                "failed": counts.failed,
                "configuration_errors": problems,
                "retrying": retrying,
                "outbox_error": io_error,
                "digest": digest,
            }),
        }
    }

    fn stop(mut self: Box<Self>) {
        *self.shared.stop.lock() = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for NotifierHandle {
    fn drop(&mut self) {
        *self.shared.stop.lock() = true;
        self.shared.wake.notify_all();
    }
}
