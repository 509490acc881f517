//! Adjustment files: corrections to the cost of calls already recorded,
//! appended as their own lines and never written over a usage line.
//!
//! `adjustments_YYYY-MM-DD.jsonl` holds the corrections of the calls in
//! `usage_YYYY-MM-DD.jsonl` (named by the call's day file, not by the day
//! of the correction), one JSON object per line. A line names the call it
//! corrects (its day file and byte offset, and its request id when it has
//! one), carries the call's grouping keys so that applying it needs no
//! usage file, and gives the cost before and after with their currencies.
//! A call's effective cost is the cost of its last adjustment, or its
//! recorded cost when it has none. The format is documented in
//! `docs/records.md`.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::dayfile::{self, MAX_LINE_BYTES};
use crate::error::{Error, Result};
use crate::money::{Currency, Money};
use crate::record::UsageRecord;

/// File name prefix of adjustment files.
pub const ADJUSTMENT_FILE_PREFIX: &str = "adjustments_";

/// One correction of one call's cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Adjustment {
    /// Name of the day file holding the call (`usage_YYYY-MM-DD.jsonl`).
    pub file: String,
    /// Byte offset of the call's line in that file.
    pub offset: u64,
    /// The call's request id, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The call's timestamp (epoch seconds): its day and hour.
    pub timestamp: f64,
    /// The call's model, as recorded.
    pub model: String,
    /// The call's function (功能).
    #[serde(default)]
    pub function: String,
    /// The call's user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The call's anchor (主播).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor_id: Option<String>,
    /// The call's session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// The call's tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// The call's effective cost before this correction.
    pub old_cost: Money,
    /// Currency of `old_cost`.
    pub old_currency: Currency,
    /// Whether the call was priced before this correction.
    pub old_priced: bool,
    /// The call's cost from now on.
    pub new_cost: Money,
    /// Currency of `new_cost`.
    pub currency: Currency,
    /// Where the new price comes from (table entry or catalogue, with its date).
    pub price_source: String,
    /// When the correction was made (RFC 3339, UTC).
    pub corrected_at: String,
}

impl Adjustment {
    /// An adjustment of `record`, the line at `offset` of `file`, from its
    /// effective cost `old` to `new` (cost, currency, priced).
    pub fn of(
        file: &str,
        offset: u64,
        record: &UsageRecord,
        old: (Money, Currency, bool),
        new: (Money, Currency),
        price_source: String,
        corrected_at: chrono::DateTime<chrono::Utc>,
    ) -> Adjustment {
        Adjustment {
            file: file.to_owned(),
            offset,
            request_id: record.request_id.clone(),
            timestamp: record.timestamp,
            model: record.model.clone(),
            function: record.function.clone(),
            user_id: record.user_id.clone(),
            anchor_id: record.anchor_id.clone(),
            session_id: record.session_id.clone(),
            tags: record.tags.clone(),
            old_cost: old.0,
            old_currency: old.1,
            old_priced: old.2,
            new_cost: new.0,
            currency: new.1,
            price_source,
            corrected_at: corrected_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }
    }

    /// The change in `currency` this adjustment makes (zero for others).
    pub fn delta_in(&self, currency: Currency) -> Money {
        let mut d = Money::ZERO;
        if self.old_currency == currency {
            d = d - self.old_cost;
        }
        if self.currency == currency {
            d += self.new_cost;
        }
        d
    }
}

/// `adjustments_YYYY-MM-DD.jsonl` for the calls of a local date.
pub fn adjustment_file_name(date: NaiveDate) -> String {
    format!(
        "{ADJUSTMENT_FILE_PREFIX}{}{}",
        date.format("%Y-%m-%d"),
        dayfile::DAY_FILE_SUFFIX
    )
}

/// The date an adjustment file's name stands for, if it is one.
pub fn parse_adjustment_file_name(name: &str) -> Option<NaiveDate> {
    let date = name
        .strip_prefix(ADJUSTMENT_FILE_PREFIX)?
        .strip_suffix(dayfile::DAY_FILE_SUFFIX)?;
    if date.len() != 10 {
        return None;
    }
    NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()
}

/// Adjustment files in `dir`, oldest first. A missing directory has none.
pub fn list_adjustment_files(dir: &Path) -> Result<Vec<(NaiveDate, PathBuf)>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("cannot list records directory", dir, e)),
    };
    let mut files: Vec<(NaiveDate, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let date = e
                .file_name()
                .to_str()
                .and_then(parse_adjustment_file_name)?;
            Some((date, e.path()))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// What reading adjustments found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AdjustmentStats {
    /// Lines that held an adjustment.
    pub adjustments: u64,
    /// Lines skipped because they were not one (one warning per file).
    pub skipped_lines: u64,
}

/// Reads the complete lines of an adjustment file from byte `offset`,
/// under a shared lock (the writer appends under an exclusive one).
/// Returns the adjustments, where the complete lines end, and what was
/// skipped. A missing file, or one that has not grown, gives nothing.
pub fn read_adjustment_file_from(
    path: &Path,
    offset: u64,
) -> Result<(Vec<Adjustment>, u64, AdjustmentStats)> {
    read_adjustment_file_range(path, offset, u64::MAX)
}

/// [`read_adjustment_file_from`], reading no further than byte `to` (what a
/// start planned to read; the follower reads the rest).
pub fn read_adjustment_file_range(
    path: &Path,
    offset: u64,
    to: u64,
) -> Result<(Vec<Adjustment>, u64, AdjustmentStats)> {
    let mut file = match dayfile::open_regular_file(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((Vec::new(), offset, AdjustmentStats::default()))
        }
        Err(e) => return Err(Error::io("cannot open adjustment file", path, e)),
    };
    let len = file
        .metadata()
        .map_err(|e| Error::io("cannot read adjustment file", path, e))?
        .len();
    if len <= offset || to <= offset {
        return Ok((Vec::new(), offset, AdjustmentStats::default()));
    }
    let mut bytes = Vec::new();
    file.lock_shared()
        .map_err(|e| Error::io("cannot lock adjustment file", path, e))?;
    let read = file.seek(SeekFrom::Start(offset)).and_then(|_| {
        (&mut file)
            .take(to.saturating_sub(offset))
            .read_to_end(&mut bytes)
    });
    let _ = file.unlock();
    read.map_err(|e| Error::io("cannot read adjustment file", path, e))?;
    let (found, complete, stats) = parse_adjustments(&bytes, &path.display().to_string());
    Ok((found, offset + complete, stats))
}

/// Parses adjustment lines; a final line without its `\n` is not complete
/// (a write in progress) and is left for the next read.
fn parse_adjustments(bytes: &[u8], origin: &str) -> (Vec<Adjustment>, u64, AdjustmentStats) {
    let mut out = Vec::new();
    let mut stats = AdjustmentStats::default();
    let mut first_bad: Option<String> = None;
    let mut pos = 0usize;
    while let Some(end) = bytes[pos..].iter().position(|&c| c == b'\n') {
        let line = bytes[pos..pos + end].trim_ascii();
        pos += end + 1;
        if line.is_empty() {
            continue;
        }
        let parsed = if line.len() > MAX_LINE_BYTES {
            Err("line too long".to_owned())
        } else {
            serde_json::from_slice::<Adjustment>(line).map_err(|e| e.to_string())
        };
        match parsed {
            Ok(a) if a.timestamp.is_finite() => {
                stats.adjustments += 1;
                out.push(a);
            }
            Ok(_) => {
                stats.skipped_lines += 1;
                first_bad.get_or_insert_with(|| "timestamp is not finite".into());
            }
            Err(e) => {
                stats.skipped_lines += 1;
                first_bad.get_or_insert(e);
            }
        }
    }
    if let Some(reason) = first_bad {
        tracing::warn!(
            file = origin,
            skipped = stats.skipped_lines,
            %reason,
            "skipped lines that are not adjustments"
        );
    }
    (out, pos as u64, stats)
}

/// Every adjustment of the calls of days from `first_day` on, per day,
/// with where each file's complete lines end (to follow from there).
pub fn read_adjustments(dir: &Path, first_day: NaiveDate) -> Result<ReadAdjustments> {
    let mut out = ReadAdjustments::default();
    for (day, path) in list_adjustment_files(dir)? {
        if day < first_day {
            continue;
        }
        let (found, end, stats) = read_adjustment_file_from(&path, 0)?;
        out.stats.adjustments += stats.adjustments;
        out.stats.skipped_lines += stats.skipped_lines;
        out.offsets.insert(day, end);
        out.adjustments.extend(found);
    }
    Ok(out)
}

/// Adjustments read from a records directory.
#[derive(Debug, Clone, Default)]
pub struct ReadAdjustments {
    /// Every adjustment, in file order (oldest day first).
    pub adjustments: Vec<Adjustment>,
    /// Per adjustment file, where its complete lines end.
    pub offsets: BTreeMap<NaiveDate, u64>,
    /// What the reader found.
    pub stats: AdjustmentStats,
}

impl ReadAdjustments {
    /// The effective (cost, currency, priced) of every adjusted call, keyed
    /// by (day file name, offset): the last adjustment of each call wins.
    pub fn effective(&self) -> HashMap<(String, u64), (Money, Currency, bool)> {
        self.adjustments
            .iter()
            .map(|a| ((a.file.clone(), a.offset), (a.new_cost, a.currency, true)))
            .collect()
    }
}

/// Appends adjustments of the calls of `day` to its adjustment file in one
/// write under an exclusive lock, then syncs it: a reader never sees half
/// of a batch's line, and a crash loses at most the batch being written.
pub fn append_adjustments(dir: &Path, day: NaiveDate, adjustments: &[Adjustment]) -> Result<()> {
    if adjustments.is_empty() {
        return Ok(());
    }
    let mut buf = Vec::with_capacity(adjustments.len() * 400);
    for a in adjustments {
        serde_json::to_writer(&mut buf, a).map_err(|e| Error::InvalidArgument {
            argument: "adjustment",
            message: e.to_string(),
        })?;
        buf.push(b'\n');
    }
    let path = dir.join(adjustment_file_name(day));
    let mut options = OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW);
    }
    let file = options
        .open(&path)
        .map_err(|e| Error::io("cannot open adjustment file", &path, e))?;
    dayfile::check_regular(&file).map_err(|e| Error::io("refusing adjustment file", &path, e))?;
    file.lock()
        .map_err(|e| Error::io("cannot lock adjustment file", &path, e))?;
    let written = (&file).write_all(&buf).and_then(|_| file.sync_data());
    let _ = file.unlock();
    written.map_err(|e| Error::io("cannot write adjustment file", &path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(offset: u64, new: &str) -> Adjustment {
        let r = UsageRecord {
            timestamp: 1_761_403_494.5,
            model: "m".into(),
            function: "f".into(),
            ..UsageRecord::default()
        };
        Adjustment::of(
            "usage_2025-10-26.jsonl",
            offset,
            &r,
            (Money::ZERO, Currency::CNY, false),
            (new.parse().unwrap(), Currency::USD),
            "test".into(),
            chrono::DateTime::from_timestamp(1_761_500_000, 0).unwrap(),
        )
    }

    #[test]
    fn names_round_trip() {
        let d = NaiveDate::from_ymd_opt(2025, 10, 26).unwrap();
        assert_eq!(adjustment_file_name(d), "adjustments_2025-10-26.jsonl");
        assert_eq!(
            parse_adjustment_file_name("adjustments_2025-10-26.jsonl"),
            Some(d)
        );
        assert_eq!(parse_adjustment_file_name("usage_2025-10-26.jsonl"), None);
    }

    #[test]
    fn appended_lines_read_back_and_the_last_one_wins() {
        let dir = tempfile::tempdir().unwrap();
        let d = NaiveDate::from_ymd_opt(2025, 10, 26).unwrap();
        append_adjustments(dir.path(), d, &[sample(0, "0.5"), sample(120, "0.25")]).unwrap();
        append_adjustments(dir.path(), d, &[sample(0, "0.75")]).unwrap();
        // A torn tail is not read yet.
        let path = dir.path().join(adjustment_file_name(d));
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"file\":").unwrap();
        let read = read_adjustments(dir.path(), d).unwrap();
        assert_eq!(read.adjustments.len(), 3);
        assert_eq!(read.stats.skipped_lines, 0);
        let eff = read.effective();
        let key = ("usage_2025-10-26.jsonl".to_string(), 0);
        assert_eq!(eff[&key].0, "0.75".parse::<Money>().unwrap());
        assert_eq!(eff[&key].1, Currency::USD);
        let end = read.offsets[&d];
        assert_eq!(end + 8, fs::metadata(&path).unwrap().len());
        // Reading on from the end gives nothing until the line completes.
        let (more, at, _) = read_adjustment_file_from(&path, end).unwrap();
        assert!(more.is_empty());
        assert_eq!(at, end);
        assert_eq!(
            sample(0, "0.5").delta_in(Currency::USD),
            "0.5".parse().unwrap()
        );
        assert_eq!(sample(0, "0.5").delta_in(Currency::CNY), Money::ZERO);
    }
}
