//! Following day files that other processes append to.
//!
//! A monitor sees its own records the moment they are made. With
//! `MonitorBuilder::follow`, its background thread also picks up, once per
//! interval, the complete lines other processes (app workers,
//! `ai-usage record`) appended since it last looked: a dashboard in its own
//! process stays current. This module only reads; the monitor counts.
//!
//! Its own lines are not counted twice: the writer notes the byte range of
//! every batch it appends while still holding the file's exclusive lock, and
//! the follower reads under a shared lock, so any line it reads that this
//! process wrote is already in the noted ranges.

use std::collections::BTreeMap;
use std::io::Read;

use chrono::NaiveDate;
use parking_lot::Mutex;

use crate::record::UsageRecord;
use crate::storage::adjustments::{self, Adjustment};
use crate::storage::dayfile;

/// Byte ranges this process appended, per day file, not yet passed by the
/// follower.
#[derive(Debug, Default)]
pub struct OwnWrites {
    ranges: BTreeMap<NaiveDate, Vec<(u64, u64)>>,
}

impl OwnWrites {
    /// Notes that `[start, end)` of a day file is ours.
    pub fn note(&mut self, day: NaiveDate, start: u64, end: u64) {
        self.ranges.entry(day).or_default().push((start, end));
    }

    fn is_own(&self, day: NaiveDate, offset: u64) -> bool {
        self.ranges
            .get(&day)
            .is_some_and(|v| v.iter().any(|&(s, e)| offset >= s && offset < e))
    }

    fn forget_before(&mut self, day: NaiveDate, offset: u64) {
        if let Some(v) = self.ranges.get_mut(&day) {
            v.retain(|&(_, e)| e > offset);
        }
    }
}

/// The follower's position in each day file.
#[derive(Debug)]
pub(crate) struct Follower {
    pub(crate) own: std::sync::Arc<Mutex<OwnWrites>>,
    state: Mutex<FollowState>,
    /// Held from a poll until its records are counted: an explicit refresh
    /// must not return while the follower thread holds lines it took from
    /// disk but has not counted yet (a query right after would miss them).
    counting: Mutex<()>,
}

#[derive(Debug, Default)]
struct FollowState {
    offsets: BTreeMap<NaiveDate, u64>,
    /// Where each adjustment file has been read to.
    adjustment_offsets: BTreeMap<NaiveDate, u64>,
}

impl Follower {
    pub(crate) fn new(
        offsets: BTreeMap<NaiveDate, u64>,
        adjustment_offsets: BTreeMap<NaiveDate, u64>,
    ) -> Follower {
        Follower {
            own: Default::default(),
            state: Mutex::new(FollowState {
                offsets,
                adjustment_offsets,
            }),
            counting: Mutex::new(()),
        }
    }

    /// Reads the adjustments appended (by `ai-usage reprice`, say) since
    /// the last look, for calls of days from `first_day` on. Call before
    /// [`Follower::poll`] and apply after counting what it finds: the
    /// calls they correct are counted by then.
    pub(crate) fn poll_adjustments(
        &self,
        dir: &std::path::Path,
        first_day: NaiveDate,
    ) -> Vec<Adjustment> {
        let mut st = self.state.lock();
        let files = match adjustments::list_adjustment_files(dir) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "cannot follow the adjustment files");
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for (day, path) in files.into_iter().filter(|(d, _)| *d >= first_day) {
            let offset = st.adjustment_offsets.get(&day).copied().unwrap_or(0);
            match adjustments::read_adjustment_file_from(&path, offset) {
                Ok((found, end, _)) => {
                    out.extend(found);
                    st.adjustment_offsets.insert(day, end);
                }
                Err(e) => tracing::warn!(error = %e, "cannot follow adjustment file"),
            }
        }
        st.adjustment_offsets.retain(|d, _| *d >= first_day);
        out
    }

    /// One look at a time, from the poll until its records are counted.
    pub(crate) fn look(&self) -> parking_lot::MutexGuard<'_, ()> {
        self.counting.lock()
    }

    /// Reads what other processes appended since the last look (one look
    /// at a time: a second caller waits, then finds what is left).
    /// Returns the new records with their local dates.
    pub(crate) fn poll(
        &self,
        dir: &std::path::Path,
        first_day: NaiveDate,
    ) -> Vec<(NaiveDate, UsageRecord)> {
        let mut st = self.state.lock();
        let files = match dayfile::list_day_files(dir) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "cannot follow the records directory");
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for (day, path) in files.into_iter().filter(|(d, _)| *d >= first_day) {
            let offset = st.offsets.get(&day).copied().unwrap_or(0);
            let bytes = match read_from(&path, offset) {
                Ok(Some(b)) => b,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "cannot follow day file");
                    continue;
                }
            };
            let mut found = Vec::new();
            let origin = path.display().to_string();
            let stats = dayfile::parse_lines_at(&bytes, offset, &origin, false, |at, r| {
                found.push((at, r))
            });
            let end = offset + stats.complete_bytes;
            {
                let mut own = self.own.lock();
                out.extend(
                    found
                        .into_iter()
                        .filter(|(at, _)| !own.is_own(day, *at))
                        .map(|(_, r)| (day, r)),
                );
                own.forget_before(day, end);
            }
            st.offsets.insert(day, end);
        }
        st.offsets.retain(|d, _| *d >= first_day);
        out
    }
}

/// The plain bytes of a day from `offset` to its end (compressed or not),
/// read under a shared lock of its plain file; `None` when the day has not
/// grown. A day compacted since the last look reads the same bytes, so the
/// offset still holds.
fn read_from(path: &std::path::Path, offset: u64) -> std::io::Result<Option<Vec<u8>>> {
    let Some(day) = dayfile::open_day_file(path)? else {
        return Ok(None);
    };
    if day.len() <= offset {
        return Ok(None);
    }
    let lock = day.plain_file().map(|f| f.try_clone()).transpose()?;
    if let Some(f) = &lock {
        f.lock_shared()?;
    }
    let mut buf = Vec::new();
    let read = day
        .skip_to(offset)
        .and_then(|mut d| d.read_to_end(&mut buf));
    if let Some(f) = &lock {
        f.unlock()?;
    }
    read?;
    Ok(Some(buf))
}
