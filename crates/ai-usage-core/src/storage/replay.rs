//! Start-up replay: rebuilds the rollups from the day files of the
//! retention window, files parsed in parallel, so a restart answers exactly
//! as the process that wrote them did.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;

use super::adjustments::{self, AdjustmentStats};
use super::dayfile::{self, ReadStats};
use crate::error::{Error, Result};
use crate::intake::{TimeWindow, MAX_FUTURE_SECS};
use crate::money::Currency;
use crate::pricing::PricingTable;
use crate::record::UsageRecord;
use crate::rollups::Rollups;
use crate::zone::{now_timestamp, Zone};

/// Replays the day files of the retention window into fresh rollups, files
/// parsed in parallel (one thread per core, at most 4).
pub fn replay_dir(
    dir: &Path,
    zone: &Zone,
    pricing: &PricingTable,
    retention_days: u32,
) -> Result<Replayed> {
    let today = zone.today();
    let first = today - chrono::Duration::days(retention_days as i64 - 1);
    let files: Vec<(NaiveDate, PathBuf)> = dayfile::list_day_files(dir)?
        .into_iter()
        .filter(|(d, _)| *d >= first)
        .collect();
    // Lines outside the window (the first day's start to an hour ahead of
    // the clock) are skipped and counted: a stray far-future line must not
    // create days the queries then treat as the newest.
    let window = TimeWindow {
        earliest: zone.day_bounds(first).0,
        latest: now_timestamp() + MAX_FUTURE_SECS,
    };
    // Corrections are read before the day files: the call of every
    // correction read was on disk before it, so the replay counts it, and
    // the corrections are applied after the calls.
    let read = adjustments::read_adjustments(dir, first)?;
    let mut replayed = replay_files(&files, zone, pricing, window)?;
    for a in &read.adjustments {
        if window.contains(a.timestamp) {
            replayed.rollups.adjust(zone, a);
        }
    }
    replayed.adjustment_offsets = read.offsets;
    replayed.adjustments = read.stats;
    Ok(replayed)
}

/// What a replay rebuilt.
#[derive(Debug, Default)]
pub struct Replayed {
    /// Rollups of every record read.
    pub rollups: Rollups,
    /// What the reader found.
    pub stats: ReadStats,
    /// Per day file, the bytes of complete lines read (where following resumes).
    pub offsets: std::collections::BTreeMap<NaiveDate, u64>,
    /// Lines skipped because their timestamp is outside the window.
    pub out_of_window: u64,
    /// Per adjustment file, where its complete lines end (where following
    /// resumes).
    pub adjustment_offsets: std::collections::BTreeMap<NaiveDate, u64>,
    /// What reading the adjustment files found.
    pub adjustments: AdjustmentStats,
}

/// The currency and priced flag of a stored record (see
/// [`UsageRecord::stored_currency`]); `cache` keeps whether the table knows
/// each model.
pub(crate) fn stored_currency(
    r: &UsageRecord,
    pricing: &PricingTable,
    cache: &mut rustc_hash::FxHashMap<String, bool>,
) -> (Currency, bool) {
    let known = match cache.get(r.model.as_str()) {
        Some(k) => *k,
        None => {
            let k = pricing.resolve(&r.model).is_some();
            cache.insert(r.model.clone(), k);
            k
        }
    };
    r.stored_currency(known)
}

/// Replays the given day files (see [`replay_dir`]).
pub fn replay_files(
    files: &[(NaiveDate, PathBuf)],
    zone: &Zone,
    pricing: &PricingTable,
    window: TimeWindow,
) -> Result<Replayed> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4);
    let next = std::sync::atomic::AtomicUsize::new(0);
    type Part = (Rollups, ReadStats, Vec<(NaiveDate, u64)>, u64);
    let results: Vec<Result<Part>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads.min(files.len().max(1)))
            .map(|_| {
                s.spawn(|| {
                    let mut rollups = Rollups::default();
                    let mut stats = ReadStats::default();
                    let mut offsets = Vec::new();
                    let mut currencies = rustc_hash::FxHashMap::default();
                    let mut out_of_window = 0u64;
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some((day, path)) = files.get(i) else {
                            break;
                        };
                        // A bug that panics on one file must not silently drop
                        // its records: it becomes an error naming the file.
                        let read = std::panic::catch_unwind(AssertUnwindSafe(|| {
                            dayfile::read_day_file(path, |r| {
                                if !window.contains(r.timestamp) {
                                    out_of_window += 1;
                                    return;
                                }
                                let (currency, priced) =
                                    stored_currency(&r, pricing, &mut currencies);
                                let (date, hour) = rollups.locate(zone, r.timestamp);
                                rollups.add(&r, date, hour, currency, priced);
                            })
                        }));
                        let st = match read {
                            Ok(st) => st?,
                            Err(panic) => {
                                return Err(Error::ReplayPanicked {
                                    path: path.clone(),
                                    message: panic_message(panic.as_ref()),
                                })
                            }
                        };
                        offsets.push((*day, st.complete_bytes));
                        stats.merge(&st);
                    }
                    Ok((rollups, stats, offsets, out_of_window))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|panic| {
                    Err(Error::ReplayPanicked {
                        path: PathBuf::from("<replay thread>"),
                        message: panic_message(panic.as_ref()),
                    })
                })
            })
            .collect()
    });
    let mut out = Replayed::default();
    for r in results {
        let (rollups, st, offsets, skipped) = r?;
        out.out_of_window += skipped;
        if out.rollups.days.is_empty() && out.rollups.sessions.is_empty() {
            out.rollups = rollups;
        } else {
            out.rollups.merge(&rollups);
        }
        out.stats.merge(&st);
        out.offsets.extend(offsets);
    }
    Ok(out)
}

/// Current sizes (complete lines) of the day files, to follow from there.
pub(crate) fn current_ends(dir: &Path) -> std::collections::BTreeMap<NaiveDate, u64> {
    dayfile::list_day_files(dir)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(d, p)| match dayfile::open_day_file(&p) {
            Ok(Some(day)) => Some((d, day.len())),
            _ => None,
        })
        .collect()
}

/// Current sizes of the adjustment files, to follow from there.
pub(crate) fn current_adjustment_ends(dir: &Path) -> std::collections::BTreeMap<NaiveDate, u64> {
    adjustments::list_adjustment_files(dir)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(d, p)| std::fs::metadata(&p).ok().map(|m| (d, m.len())))
        .collect()
}

/// The text of a panic payload (`&str` or `String`), for the error.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_owned()
    }
}
