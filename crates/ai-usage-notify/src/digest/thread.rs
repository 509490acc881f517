//! The digest's schedule thread: at each tick it looks for the latest
//! period due, and if that period's digest is not in the outbox yet it
//! builds it from the queries, claims it (fleet) and enters it for every
//! channel, for the notifier's sender thread to deliver.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use ai_usage_core::UsageQueries;
use parking_lot::{Condvar, Mutex};
use serde::Serialize;

use super::report::DigestMessage;
use super::schedule::DigestConfig;
use crate::notice::Notice;
use crate::notifier::Notifier;

/// The clock a digest thread reads (epoch seconds): the system's, or a
/// test's.
pub type Clock = Arc<dyn Fn() -> f64 + Send + Sync>;

/// Decides which host of a fleet posts a period's digest (each host has its
/// own outbox). The ClickHouse fleet implements it with the alerts' claims
/// table.
pub trait DigestClaims: Send + Sync {
    /// True when this host is to post the digest `period_label` (called once
    /// per period and host, after the digest was built; false when another
    /// host claimed it first, including before a restart).
    fn claim(&self, period_label: &str) -> Result<bool, String>;
}

/// What the digest thread last did: shown in the notifier's health
/// (`companions` → `notify` → `digest`, so in `/healthz`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DigestStatus {
    /// The latest period due (`2026-11-30~2026-12-06`).
    pub latest_period: Option<String>,
    /// `entered` (in the outbox), `claimed_elsewhere` (another host posts
    /// it), `too_late` (due more than half a period ago when first seen),
    /// or `None` yet.
    pub latest_state: Option<String>,
    /// The next period's due time (RFC 3339, the monitor's offset).
    pub next_due: Option<String>,
    /// The last error (building the digest, a claim, the outbox), if the
    /// last attempt failed; retried at the next tick.
    pub last_error: Option<String>,
}

struct Shared {
    config: DigestConfig,
    notifier: Notifier,
    queries: Arc<dyn UsageQueries>,
    claims: Option<Arc<dyn DigestClaims>>,
    clock: Clock,
    tick: Duration,
    stop: Mutex<bool>,
    wake: Condvar,
    status: Mutex<DigestStatus>,
    /// The id of the latest period settled (entered or claimed elsewhere).
    settled: Mutex<Option<String>>,
}

/// Posts a [`DigestConfig`]'s digests through a running [`Notifier`].
pub struct DigestThread {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for DigestThread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestThread")
            .field("config", &self.shared.config)
            .field("status", &self.status())
            .finish()
    }
}

impl DigestThread {
    /// Starts posting `config`'s digests, built from `queries`, through
    /// `notifier` (which must be attached to a monitor: its outbox and
    /// sender deliver them). Checks every 30 s on the system clock.
    pub fn spawn(
        config: DigestConfig,
        notifier: &Notifier,
        queries: Arc<dyn UsageQueries>,
        claims: Option<Arc<dyn DigestClaims>>,
    ) -> Result<DigestThread, String> {
        DigestThread::spawn_with_clock(
            config,
            notifier,
            queries,
            claims,
            Arc::new(ai_usage_core::now_timestamp),
            Duration::from_secs(30),
        )
    }

    /// As [`DigestThread::spawn`], reading `clock` every `tick`.
    pub fn spawn_with_clock(
        config: DigestConfig,
        notifier: &Notifier,
        queries: Arc<dyn UsageQueries>,
        claims: Option<Arc<dyn DigestClaims>>,
        clock: Clock,
        tick: Duration,
    ) -> Result<DigestThread, String> {
        if !notifier.is_running() {
            return Err(
                "the digest needs a running notifier (attach it to the monitor first)".into(),
            );
        }
        let shared = Arc::new(Shared {
            config,
            notifier: notifier.clone(),
            queries,
            claims,
            clock,
            tick,
            stop: Mutex::new(false),
            wake: Condvar::new(),
            status: Mutex::new(DigestStatus::default()),
            settled: Mutex::new(None),
        });
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("ai-usage-digest".into())
                .spawn(move || shared.run())
                .map_err(|e| format!("cannot start the digest thread: {e}"))?
        };
        Ok(DigestThread {
            shared,
            thread: Some(thread),
        })
    }

    /// What it last did.
    pub fn status(&self) -> DigestStatus {
        self.shared.status.lock().clone()
    }

    /// Stops it and waits for its thread.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        *self.shared.stop.lock() = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for DigestThread {
    fn drop(&mut self) {
        self.halt();
    }
}

impl Shared {
    fn run(&self) {
        loop {
            if let Err(e) = self.check() {
                tracing::warn!(error = %e, "digest not posted yet; retrying");
                self.status.lock().last_error = Some(e);
            }
            // Shown under `notify` → `digest` in health and /healthz.
            self.notifier.report_digest(self.status.lock().clone());
            let mut stop = self.stop.lock();
            if *stop {
                return;
            }
            self.wake.wait_for(&mut stop, self.tick);
            if *stop {
                return;
            }
        }
    }

    /// One tick: enters the latest due period's digest unless it is settled.
    fn check(&self) -> Result<(), String> {
        let zone = self.queries.zone();
        let now = (self.clock)();
        let period = self.config.latest_due(now, &zone);
        let id = period.id();
        {
            let next = self.config.next_due(now, &zone);
            let mut status = self.status.lock();
            status.latest_period = Some(period.label());
            status.next_due = Some(crate::message::time_in_zone(next.due, &zone).to_rfc3339());
        }
        if self.settled.lock().as_deref() == Some(id.as_str()) {
            return Ok(());
        }
        if now - period.due > period.schedule.max_lateness_secs() {
            // Configured (or started) long after it was due: not news any more.
            tracing::info!(period = %period.label(), "digest not posted: more than half a period late");
            self.settle(&id, "too_late");
            return Ok(());
        }
        let channels = self.config.notify();
        let missing: Vec<&String> = channels
            .iter()
            .filter(|c| !self.notifier.has_entry(&id, c))
            .collect();
        if missing.is_empty() {
            // Entered before (this run or before a restart).
            self.settle(&id, "entered");
            return Ok(());
        }
        // Built before claiming: a failed build must not lose the claim.
        let digest = DigestMessage::build(
            self.queries.as_ref(),
            &period,
            self.config.top_entries(),
            now,
        )
        .map_err(|e| format!("cannot build the digest of {}: {e}", period.label()))?
        .with_language(self.config.forced_language());
        let digest = match self.notifier.public_url_of() {
            Some(url) => digest.with_public_url(url),
            None => digest,
        };
        if let Some(claims) = &self.claims {
            // Only a period no channel has yet is claimed: a restart that
            // entered some channels finishes the others.
            if missing.len() == channels.len() && !claims.claim(&period.label())? {
                tracing::info!(period = %period.label(), "digest posted by another host");
                self.settle(&id, "claimed_elsewhere");
                return Ok(());
            }
        }
        let notice = Notice::Digest(Box::new(digest));
        for channel in missing {
            self.notifier.enter(channel, &notice)?;
        }
        tracing::info!(period = %period.label(), "digest entered for delivery");
        self.settle(&id, "entered");
        Ok(())
    }

    fn settle(&self, id: &str, state: &str) {
        *self.settled.lock() = Some(id.to_string());
        let mut status = self.status.lock();
        status.latest_state = Some(state.to_string());
        status.last_error = None;
    }
}
