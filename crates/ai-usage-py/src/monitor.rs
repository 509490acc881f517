//! `Monitor`: one engine monitor (records directory, rollups, writer) behind
//! the Python class `AIUsageMonitor`, which subclasses it.
//!
//! Recording is a native method (the per-call path must stay in the
//! microseconds); queries return JSON text that the Python layer shapes into
//! the original's objects. Every call that can wait (on the queue, on disk,
//! on a lock another thread holds) runs with the GIL released.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ai_usage_core::bounds::{self, QueryBound};
use ai_usage_core::intake::TokenCount;
use ai_usage_core::{
    Budget, BudgetAlert, Currency, Error, Money, RankBy, RankKind, TokenUsage, UsageEvent,
    UsageMonitor,
};
use arc_swap::ArcSwap;
use chrono::Datelike;
use pyo3::exceptions::{PyOSError, PyOverflowError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use serde::Serialize;

use crate::record::PyUsageRecord;
use crate::summary::summary_kwargs;

/// Maps an engine error to the Python exception a caller expects.
fn to_py(e: Error) -> PyErr {
    match e {
        Error::InvalidArgument { .. } | Error::Config { .. } | Error::Pricing(_) => {
            PyValueError::new_err(e.to_string())
        }
        Error::Io { .. } => PyOSError::new_err(e.to_string()),
        _ => PyRuntimeError::new_err(e.to_string()),
    }
}

fn json<T: Serialize>(v: &T) -> PyResult<String> {
    ai_usage_core::json_text::to_string(v)
        .map_err(|e| PyRuntimeError::new_err(format!("serialising: {e}")))
}

/// An id given as `str` (or anything else, e.g. an `int` user id, taken by
/// its `str()`), as the original stored whatever it was handed.
fn id_text(v: Option<&Bound<'_, PyAny>>) -> PyResult<Option<String>> {
    match v {
        None => Ok(None),
        Some(v) if v.is_none() => Ok(None),
        Some(v) => match v.cast::<PyString>() {
            Ok(s) => Ok(Some(s.to_cow()?.into_owned())),
            Err(_) => Ok(Some(v.str()?.to_cow()?.into_owned())),
        },
    }
}

/// A Python `int` query argument checked against the core's bound (the same
/// ranges as the HTTP parameters and the CLI flags): `ValueError` when out
/// of range, however large; `TypeError` (unchanged) when not an integer.
fn bounded(v: &Bound<'_, PyAny>, bound: &QueryBound) -> PyResult<i64> {
    match v.extract::<i64>() {
        Ok(n) => bound.check(n).map_err(to_py),
        Err(e) if e.is_instance_of::<PyOverflowError>(v.py()) => {
            let shown = v.str()?.to_cow()?.into_owned();
            Err(to_py(bound.out_of_range(shown)))
        }
        Err(e) => Err(e),
    }
}

/// [`bounded`] for the engine's `u32` arguments.
fn bounded_u32(v: &Bound<'_, PyAny>, bound: &QueryBound) -> PyResult<u32> {
    let n = bounded(v, bound)?;
    u32::try_from(n).map_err(|_| to_py(bound.out_of_range(n)))
}

/// A snake_case enum value from its name.
fn parse_name<T: serde::de::DeserializeOwned>(what: &str, v: &str) -> PyResult<T> {
    serde_json::from_value(serde_json::Value::String(v.to_owned()))
        .map_err(|_| PyValueError::new_err(format!("unknown {what} {v:?}")))
}

/// Builds an engine monitor for `dir`, following other processes' appends.
fn build(dir: &Path, follow: Option<Duration>) -> Result<UsageMonitor, Error> {
    let mut b = UsageMonitor::builder().dir(dir);
    if let Some(interval) = follow {
        b = b.follow(interval);
    }
    b.build()
}

/// Set once the interpreter starts exiting: engine threads (the follower
/// counts other processes' records) must not call into Python after that.
static EXITING: AtomicBool = AtomicBool::new(false);

/// Called from the package's `atexit` hook, before the final flush.
#[pyfunction]
pub fn _mark_exiting() {
    EXITING.store(true, Ordering::SeqCst);
}

/// Subscribes a Python callback to `m`'s budget alerts: it is called with the
/// alert as JSON text, with the GIL taken; an exception in it is reported
/// through `sys.unraisablehook`, never raised into the recorder.
fn subscribe_alerts(m: &UsageMonitor, callback: Py<PyAny>) {
    m.on_budget_alert(move |alert: &BudgetAlert| {
        if EXITING.load(Ordering::SeqCst) {
            return; // the engine still logs the alert
        }
        let text = match ai_usage_core::json_text::to_string(alert) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "cannot serialise a budget alert");
                return;
            }
        };
        Python::attach(|py| {
            if let Err(e) = callback.call1(py, (text,)) {
                e.write_unraisable(py, None);
            }
        });
    });
}

/// What was configured from Python after opening, replayed on the fresh
/// engine a forked child opens.
#[derive(Default)]
struct Settings {
    /// Budgets added from Python, by name, as the engine's JSON.
    budgets: BTreeMap<String, String>,
    /// Budget alert callbacks.
    alert_callbacks: Vec<Py<PyAny>>,
}

/// One monitor: a records directory, its rollups and its writer thread.
///
/// The engine sits in an [`ArcSwap`], not behind a lock or `&mut self`: a
/// child forked while other threads were recording inherits their
/// borrows and locks as held forever, and must still be able to swap in a
/// fresh engine (see [`Monitor::_reinit_after_fork`]).
#[pyclass(subclass, weakref, module = "ai_usage_monitor._native")]
pub struct Monitor {
    inner: ArcSwap<UsageMonitor>,
    follow: Option<Duration>,
    settings: Mutex<Settings>,
}

impl Monitor {
    fn m(&self) -> Arc<UsageMonitor> {
        self.inner.load_full()
    }

    fn settings(&self) -> std::sync::MutexGuard<'_, Settings> {
        // A panic while holding it cannot leave the settings half-changed.
        self.settings.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[pymethods]
impl Monitor {
    /// Opens (creating it if needed) the records directory `data_dir`
    /// (default `AI_USAGE_DIR`, else `records/ai_usage`) and replays its
    /// recent day files. `follow_interval` (seconds, `None` = off) makes the
    /// monitor count what other processes append to the same directory.
    #[new]
    #[pyo3(signature = (data_dir=None, *, follow_interval=Some(1.0)))]
    fn new(
        py: Python<'_>,
        data_dir: Option<PathBuf>,
        follow_interval: Option<f64>,
    ) -> PyResult<Self> {
        if data_dir
            .as_ref()
            .is_some_and(|d| d.to_string_lossy().trim().is_empty())
        {
            // `''` would silently mean the working directory.
            return Err(PyValueError::new_err(
                "data_dir is empty: give a directory, or None for AI_USAGE_DIR / records/ai_usage",
            ));
        }
        let dir =
            data_dir.unwrap_or_else(|| match std::env::var(ai_usage_core::dayfile::DIR_ENV) {
                Ok(d) if !d.trim().is_empty() => PathBuf::from(d),
                _ => PathBuf::from(ai_usage_core::dayfile::DEFAULT_DIR),
            });
        let follow = match follow_interval {
            None => None,
            Some(s) if s.is_finite() && s > 0.0 => Some(Duration::from_secs_f64(s)),
            Some(s) => {
                return Err(PyValueError::new_err(format!(
                    "follow_interval must be a positive number of seconds or None, got {s}"
                )))
            }
        };
        let inner = py.detach(|| build(&dir, follow)).map_err(to_py)?;
        Ok(Monitor {
            inner: ArcSwap::from_pointee(inner),
            follow,
            settings: Mutex::default(),
        })
    }

    /// The records directory.
    #[getter]
    fn data_dir(&self) -> PathBuf {
        self.m().dir().to_path_buf()
    }

    /// Records one AI call and returns the priced record. An explicit `cost`
    /// (in `currency`, else the model's, else CNY) is kept as given.
    #[pyo3(signature = (model, function, input_tokens=0, output_tokens=0, duration_ms=0.0, *,
        cost=None, total_tokens=None, success=true, user_id=None, anchor_id=None,
        session_id=None, error_msg=None, currency=None, request_id=None, timestamp=None,
        provider=None, **token_details))]
    #[allow(clippy::too_many_arguments)]
    fn record_usage(
        &self,
        py: Python<'_>,
        model: &str,
        function: &str,
        input_tokens: i64,
        output_tokens: i64,
        duration_ms: f64,
        cost: Option<f64>,
        total_tokens: Option<i64>,
        success: bool,
        user_id: Option<&Bound<'_, PyAny>>,
        anchor_id: Option<&Bound<'_, PyAny>>,
        session_id: Option<&Bound<'_, PyAny>>,
        error_msg: Option<&str>,
        currency: Option<&str>,
        request_id: Option<&str>,
        timestamp: Option<f64>,
        provider: Option<&str>,
        token_details: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<PyUsageRecord> {
        let cost = match cost {
            None => None,
            Some(c) => Some(Money::from_f64(c).ok_or_else(|| {
                PyValueError::new_err(format!("cost must be a finite amount, got {c}"))
            })?),
        };
        let currency = match currency {
            None => None,
            Some(c) => Some(Currency::new(c).ok_or_else(|| {
                PyValueError::new_err(format!("currency must be a 3-letter code, got {c:?}"))
            })?),
        };
        let (user_id, anchor_id, session_id) =
            (id_text(user_id)?, id_text(anchor_id)?, id_text(session_id)?);
        // Counts are checked by the core's intake rule (negative refused).
        let count = |field: &'static str, n: i64| {
            TokenCount::from_i64(field, n)
                .map(|c| c.0)
                .map_err(|e| PyValueError::new_err(e.to_string()))
        };
        let mut usage = TokenUsage {
            total_tokens: total_tokens.map(|t| count("total_tokens", t)).transpose()?,
            ..TokenUsage::new(
                count("input_tokens", input_tokens)?,
                count("output_tokens", output_tokens)?,
            )
        };
        // The token details (cached, reasoning, cache-write and audio
        // counts), keyword-only, by the core's names.
        if let Some(details) = token_details {
            for (k, v) in details.iter() {
                let name: String = k.extract()?;
                let Some((field, slot)) = usage.count_mut(&name) else {
                    return Err(PyTypeError::new_err(format!(
                        "record_usage() got an unexpected keyword argument '{name}'"
                    )));
                };
                *slot = count(field, v.extract()?)?;
            }
        }
        let ev = UsageEvent {
            model,
            function,
            usage,
            duration_ms,
            success,
            error_msg,
            user_id: user_id.as_deref(),
            anchor_id: anchor_id.as_deref(),
            session_id: session_id.as_deref(),
            cost,
            currency,
            request_id,
            tags: &[],
            timestamp,
            provider: provider.filter(|p| !p.trim().is_empty()),
        };
        let m = self.m();
        // The one set of intake rules every door applies (timestamps in
        // the window around the clock, no negative cost, the id rule, …).
        m.validate(&ev)
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        // Released: a full queue (lossless policy) or a budget callback that
        // needs the GIL on this thread must not deadlock other Python threads.
        let record = py.detach(|| m.record(&ev));
        Ok(PyUsageRecord::from(&record))
    }

    /// A summary as the keyword arguments of `UsageSummary`: `kind` is
    /// `hourly` (`a` = hours ago), `daily` (`a` = days ago) or `monthly`
    /// (`a` = year, `b` = month; both `None` = this month). Every number is
    /// checked against the core's bounds (`ValueError` outside them).
    #[pyo3(signature = (kind, a=None, b=None))]
    fn _summary<'py>(
        &self,
        py: Python<'py>,
        kind: &str,
        a: Option<&Bound<'py, PyAny>>,
        b: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let m = self.m();
        let zero = 0_i64.into_pyobject(py)?.into_any();
        let a_or_zero = a.unwrap_or(&zero);
        let summary = match kind {
            "hourly" => {
                let h = bounded_u32(a_or_zero, &bounds::HOURS_AGO)?;
                py.detach(|| m.get_hourly_summary(h))
            }
            "daily" => {
                let d = bounded_u32(a_or_zero, &bounds::DAYS_AGO)?;
                py.detach(|| m.get_daily_summary(d))
            }
            "monthly" => {
                let (year, month) = match (a, b) {
                    (None, None) => {
                        // The current month in the monitor's zone.
                        let today = m.today();
                        (today.year(), today.month())
                    }
                    (Some(y), Some(mo)) => (
                        i32::try_from(bounded(y, &bounds::YEAR)?)
                            .map_err(|_| PyValueError::new_err("invalid year"))?,
                        bounded_u32(mo, &bounds::MONTH)?,
                    ),
                    _ => {
                        return Err(PyValueError::new_err(
                            "give both year and month, or neither",
                        ))
                    }
                };
                py.detach(|| m.get_monthly_summary(year, month))
                    .map_err(to_py)?
            }
            other => return Err(PyValueError::new_err(format!("unknown period {other:?}"))),
        };
        summary_kwargs(py, &summary)
    }

    /// One session's figures as JSON, `None` for an unknown session.
    fn _session_json(&self, py: Python<'_>, session_id: &str) -> PyResult<Option<String>> {
        let m = self.m();
        match py.detach(|| m.get_session_stats(session_id)) {
            None => Ok(None),
            Some(s) => json(&s).map(Some),
        }
    }

    /// A ranking as JSON: `kind` is `user`, `anchor`, `function` or `model`;
    /// `by` is `tokens` (the original's order), `cost` or `calls`.
    #[pyo3(signature = (kind, limit, days, by="tokens"))]
    fn _top_json(
        &self,
        py: Python<'_>,
        kind: &str,
        limit: &Bound<'_, PyAny>,
        days: &Bound<'_, PyAny>,
        by: &str,
    ) -> PyResult<String> {
        let kind: RankKind = parse_name("ranking", kind)?;
        let by: RankBy = parse_name("order", by)?;
        let limit = bounded_u32(limit, &bounds::LIMIT)? as usize;
        let days = bounded_u32(days, &bounds::DAYS)?;
        let m = self.m();
        let rows = py.detach(|| {
            let (from, to) = m.last_days(days);
            m.top(kind, from, to, by, limit)
        });
        json(&rows)
    }

    /// The cost of each of the last `days` days as JSON, oldest first.
    fn _trend_json(&self, py: Python<'_>, days: &Bound<'_, PyAny>) -> PyResult<String> {
        let days = bounded_u32(days, &bounds::DAYS)?;
        let m = self.m();
        json(&py.detach(|| m.get_cost_trend(days)))
    }

    /// The month forecast as JSON.
    fn _forecast_json(&self, py: Python<'_>) -> PyResult<String> {
        let m = self.m();
        json(&py.detach(|| m.forecast()))
    }

    /// Savings advice over the last `days` days as JSON.
    fn _savings_json(&self, py: Python<'_>, days: &Bound<'_, PyAny>) -> PyResult<String> {
        let days = bounded_u32(days, &bounds::DAYS)?;
        let m = self.m();
        json(&py.detach(|| m.savings(days)))
    }

    /// Health (writer state, replay figures) as JSON.
    fn _health_json(&self, py: Python<'_>) -> PyResult<String> {
        let m = self.m();
        json(&py.detach(|| m.health()))
    }

    /// Writes the JSON report of the last `days` days; returns its path.
    #[pyo3(signature = (output_path=None, days=None))]
    fn _export_report(
        &self,
        py: Python<'_>,
        output_path: Option<PathBuf>,
        days: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PathBuf> {
        let days = days.map_or(Ok(7), |d| bounded_u32(d, &bounds::DAYS))?;
        let m = self.m();
        py.detach(|| m.export_report(output_path.as_deref(), days))
            .map_err(to_py)
    }

    /// Writes the daily CSV of the last `days` days (with a UTF-8 BOM for
    /// Excel when `bom`); returns its path.
    #[pyo3(signature = (output_path=None, days=None, bom=false))]
    fn _export_csv(
        &self,
        py: Python<'_>,
        output_path: Option<PathBuf>,
        days: Option<&Bound<'_, PyAny>>,
        bom: bool,
    ) -> PyResult<PathBuf> {
        let days = days.map_or(Ok(7), |d| bounded_u32(d, &bounds::DAYS))?;
        let m = self.m();
        py.detach(|| m.export_csv(output_path.as_deref(), days, bom))
            .map_err(to_py)
    }

    /// Adds (or replaces, by name) a budget given as the engine's JSON form.
    fn _add_budget_json(&self, py: Python<'_>, budget: &str) -> PyResult<()> {
        let parsed: Budget = serde_json::from_str(budget)
            .map_err(|e| PyValueError::new_err(format!("invalid budget: {e}")))?;
        let name = parsed.name.clone();
        let m = self.m();
        py.detach(|| m.add_budget(parsed)).map_err(to_py)?;
        self.settings().budgets.insert(name, budget.to_owned());
        Ok(())
    }

    /// `None` when no budget matching the call is at its hard limit, else
    /// the refusal as JSON (`budget`, `scope`, `period_label`, `spent`,
    /// `limit`, `block_at`, `currency`).
    #[pyo3(signature = (user_id=None, anchor_id=None, function=None, model=None, tags=Vec::new()))]
    fn _check_budget_json(
        &self,
        py: Python<'_>,
        user_id: Option<String>,
        anchor_id: Option<String>,
        function: Option<String>,
        model: Option<String>,
        tags: Vec<String>,
    ) -> PyResult<Option<String>> {
        let m = self.m();
        let refused = py.detach(|| {
            let tags: Vec<&str> = tags.iter().map(String::as_str).collect();
            m.check_budget(&ai_usage_core::CallScope {
                user_id: user_id.as_deref(),
                anchor_id: anchor_id.as_deref(),
                function: function.as_deref(),
                model: model.as_deref(),
                tags: &tags,
            })
        });
        match refused {
            Ok(()) => Ok(None),
            Err(e) => json(&e).map(Some),
        }
    }

    /// Removes a budget; true when it existed.
    fn remove_budget(&self, name: &str) -> bool {
        self.settings().budgets.remove(name);
        self.m().remove_budget(name)
    }

    /// Where every budget stands, as JSON.
    fn _budget_status_json(&self, py: Python<'_>) -> PyResult<String> {
        let m = self.m();
        json(&py.detach(|| m.budget_status()))
    }

    /// Calls `callback(alert_json)` for each budget threshold crossed, on the
    /// recording thread.
    fn _on_budget_alert_json(&self, py: Python<'_>, callback: Py<PyAny>) {
        subscribe_alerts(&self.m(), callback.clone_ref(py));
        self.settings().alert_callbacks.push(callback);
    }

    /// Waits until every record made so far is written and fsynced.
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        let m = self.m();
        py.detach(|| m.flush()).map_err(to_py)
    }

    /// Flushes and stops the writer; later records are counted, not written.
    fn shutdown(&self, py: Python<'_>) -> PyResult<()> {
        let m = self.m();
        py.detach(|| m.shutdown()).map_err(to_py)
    }

    /// Counts now what other processes appended since the last look.
    fn refresh(&self, py: Python<'_>) {
        let m = self.m();
        py.detach(|| m.refresh());
    }

    /// Swaps in the price catalogue installed in the records directory (by
    /// `ai-usage pricing update`, or a rollback) when it changed since the
    /// last look; True when it did. Later records are priced with it; costs
    /// already recorded stay. A damaged install is logged and ignored.
    fn refresh_price_catalogue(&self, py: Python<'_>) -> bool {
        let m = self.m();
        py.detach(|| m.refresh_price_catalogue())
    }

    /// In a child after `os.fork()`: the parent's writer and follower threads
    /// do not exist here, so the inherited engine is abandoned (never dropped:
    /// dropping would wait for those threads) and a fresh one, with its own
    /// queue, locks and writer thread, opened on the same directory,
    /// replaying what the parent had written. Budgets and alert callbacks set
    /// from Python carry over.
    ///
    /// `&self`, not `&mut self`: parent threads that were inside a method
    /// when the process forked left their borrows behind, and an exclusive
    /// borrow would fail with "Already borrowed". Nothing the old engine
    /// holds (its locks may be held by threads that no longer exist) is
    /// touched; the GIL is kept, since no other thread runs in the child yet.
    fn _reinit_after_fork(&self, py: Python<'_>) -> PyResult<()> {
        let old = self.inner.load_full();
        let dir = old.dir().to_path_buf();
        let follow = self.follow;
        let fresh = build(&dir, follow).map_err(to_py)?;
        // A parent thread may have held the settings lock at the fork: it
        // would never be released, so wait for it only briefly.
        let settings = match self.settings.try_lock() {
            Ok(s) => Some(s),
            Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        };
        let Some(settings) = settings else {
            tracing::error!(
                "budgets and alert callbacks set from Python were being changed at fork: not carried over"
            );
            self.swap_after_fork(old, fresh);
            return Ok(());
        };
        for (name, text) in &settings.budgets {
            let added = serde_json::from_str::<Budget>(text)
                .map_err(|e| e.to_string())
                .and_then(|b| fresh.add_budget(b).map_err(|e| e.to_string()));
            if let Err(e) = added {
                tracing::error!(budget = %name, error = %e, "budget lost after fork");
            }
        }
        for cb in &settings.alert_callbacks {
            subscribe_alerts(&fresh, cb.clone_ref(py));
        }
        drop(settings);
        self.swap_after_fork(old, fresh);
        Ok(())
    }
}

impl Monitor {
    /// Puts `fresh` in place of `old`, which is leaked on purpose: dropping
    /// the last handle would join threads that do not exist in this process.
    fn swap_after_fork(&self, old: Arc<UsageMonitor>, fresh: UsageMonitor) {
        let previous = self.inner.swap(Arc::new(fresh));
        std::mem::forget(previous);
        std::mem::forget(old);
    }
}
