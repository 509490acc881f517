//! Start-up replay: rebuilds the rollups from the day files of the
//! retention window (planned before the writer starts, read by the
//! monitor's loader thread), files parsed in parallel, so a restart answers exactly
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

/// The part of one day file a replay reads: bytes `from..to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayFilePart {
    /// The file's local date.
    pub day: NaiveDate,
    /// Its path.
    pub path: PathBuf,
    /// First byte read (the start of a line).
    pub from: u64,
    /// End of the bytes read: what was appended after stays for the live
    /// monitor (its own records, or the follower's).
    pub to: u64,
}

/// What a replay of a directory will read, fixed before anything new is
/// written: every day file of the window, up to its length now.
#[derive(Debug, Clone)]
pub struct ReplayPlan {
    /// The files, oldest first, each up to its length when planned.
    pub parts: Vec<DayFilePart>,
    /// Timestamps counted (others are skipped and counted as out of window).
    pub window: TimeWindow,
    /// The adjustment files of the window's days, each with its length when
    /// planned: their corrections are applied after the calls are counted.
    pub adjustment_files: Vec<(NaiveDate, PathBuf, u64)>,
}

impl ReplayPlan {
    /// Whether any cost correction is planned to be read.
    pub fn has_adjustments(&self) -> bool {
        self.adjustment_files.iter().any(|(_, _, len)| *len > 0)
    }

    /// Where following the adjustment files starts: their planned ends.
    pub fn adjustment_ends(&self) -> std::collections::BTreeMap<NaiveDate, u64> {
        self.adjustment_files
            .iter()
            .map(|(d, _, len)| (*d, *len))
            .collect()
    }

    /// Reads the planned corrections (each file up to its planned length)
    /// and applies those of calls in the window to `rollups`.
    pub fn apply_adjustments(&self, rollups: &mut Rollups, zone: &Zone) -> Result<AdjustmentStats> {
        let mut stats = AdjustmentStats::default();
        for (_, path, len) in &self.adjustment_files {
            let (found, _, st) = adjustments::read_adjustment_file_range(path, 0, *len)?;
            stats.adjustments += st.adjustments;
            stats.skipped_lines += st.skipped_lines;
            for a in found.iter().filter(|a| self.window.contains(a.timestamp)) {
                rollups.adjust(zone, a);
            }
        }
        Ok(stats)
    }
}

/// Plans the replay of the retention window of `dir` (see [`ReplayPlan`]).
pub fn plan_replay(dir: &Path, zone: &Zone, retention_days: u32) -> Result<ReplayPlan> {
    let today = zone.today();
    let first = today - chrono::Duration::days(retention_days as i64 - 1);
    let parts = dayfile::list_day_files(dir)?
        .into_iter()
        .filter(|(d, _)| *d >= first)
        .map(|(day, path)| {
            // A file that cannot be looked at is read (and reported) later.
            // Plain bytes, whether the day is stored plain or compressed.
            let to = match dayfile::open_day_file(&path) {
                Ok(Some(f)) => f.len(),
                Ok(None) => 0,
                Err(_) => u64::MAX,
            };
            DayFilePart {
                day,
                path,
                from: 0,
                to,
            }
        })
        .collect();
    // Lines outside the window (the first day's start to an hour ahead of
    // the clock) are skipped and counted: a stray far-future line must not
    // create days the queries then treat as the newest.
    let window = TimeWindow {
        earliest: zone.day_bounds(first).0,
        latest: now_timestamp() + MAX_FUTURE_SECS,
    };
    // Cost corrections of the window's calls, each file up to its length
    // now (the follower reads what is appended later).
    let adjustment_files = adjustments::list_adjustment_files(dir)?
        .into_iter()
        .filter(|(d, _)| *d >= first)
        .map(|(day, path)| {
            let to = std::fs::symlink_metadata(&path).map_or(0, |m| m.len());
            (day, path, to)
        })
        .collect();
    Ok(ReplayPlan {
        parts,
        window,
        adjustment_files,
    })
}

/// Progress of a replay, shared with whoever reports it; setting `cancel`
/// stops the replay after the files being read (its result is then partial).
#[derive(Debug, Default)]
pub struct Progress {
    /// Files read to their planned end.
    pub files_done: std::sync::atomic::AtomicU64,
    /// Bytes of the files read.
    pub bytes_done: std::sync::atomic::AtomicU64,
    /// Set to stop early (the monitor is shutting down).
    pub cancel: std::sync::atomic::AtomicBool,
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

/// Replays parts of day files (see [`DayFilePart`]), files parsed in
/// parallel, reporting to `progress`. `offsets` of the result are where
/// each part's complete lines end.
pub fn replay_parts(
    files: &[DayFilePart],
    zone: &Zone,
    pricing: &PricingTable,
    window: TimeWindow,
    progress: &Progress,
) -> Result<Replayed> {
    use std::sync::atomic::Ordering;
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
                        if progress.cancel.load(Ordering::Relaxed) {
                            break;
                        }
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(part) = files.get(i) else {
                            break;
                        };
                        let (day, path) = (&part.day, &part.path);
                        // A bug that panics on one file must not silently drop
                        // its records: it becomes an error naming the file.
                        let read = std::panic::catch_unwind(AssertUnwindSafe(|| {
                            dayfile::read_day_file_range(path, part.from, part.to, |r| {
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
                        offsets.push((*day, part.from + st.complete_bytes));
                        progress.files_done.fetch_add(1, Ordering::Relaxed);
                        progress.bytes_done.fetch_add(st.bytes, Ordering::Relaxed);
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
