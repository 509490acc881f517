//! Keeping old days small: day files older than a few days are compressed
//! (zstd) to `usage_YYYY-MM-DD.jsonl.zst`, and days past an optional
//! deletion age are removed.
//!
//! Compressing never risks a record. Under the plain file's exclusive lock
//! (the writer appends under it, a follower reads under a shared one, so a
//! busy file is left for the next pass), the day's bytes are compressed to
//! a temporary file, synced, decompressed again and compared byte for byte,
//! renamed into place and the directory synced; only then is the plain file
//! removed. A crash at any step leaves the plain file or the checked
//! compressed file (or both, which readers resolve: see
//! [`dayfile::open_day_file`]).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use chrono::NaiveDate;

use crate::error::{Error, Result};
use crate::storage::dayfile;

/// Default age (days) after which a day file is compressed.
pub const DEFAULT_COMPRESS_AFTER_DAYS: u32 = 7;

/// Default zstd level: a compressed day takes about 22 bytes per record (284
/// plain) at about 20 MB/s with 20 MB of memory (see `docs/performance.md`);
/// level 19 saves two more bytes per record at a fifteenth of the speed.
/// No long-distance mode: it gained nothing here and would make every
/// reader allocate a 128 MB window.
pub const DEFAULT_LEVEL: i32 = 9;

/// Temporary files of a compaction start with this (they are removed by a
/// later pass when a crash left one behind).
const TEMP_PREFIX: &str = ".compacting.";

/// What a compaction pass does.
#[derive(Debug, Clone)]
pub struct CompactOptions {
    /// Compress day files whose day is more than this many days before
    /// today (at least 1: today's and yesterday's files stay plain).
    pub older_than_days: u32,
    /// Remove day files whose day is more than this many days before today.
    pub delete_after_days: Option<u32>,
    /// zstd level (1–22).
    pub level: i32,
}

impl Default for CompactOptions {
    fn default() -> Self {
        CompactOptions {
            older_than_days: DEFAULT_COMPRESS_AFTER_DAYS,
            delete_after_days: None,
            level: DEFAULT_LEVEL,
        }
    }
}

impl CompactOptions {
    /// Checks the settings, naming the one that is wrong.
    pub fn validate(&self) -> Result<()> {
        if self.older_than_days == 0 {
            return Err(Error::Config {
                setting: "--older-than",
                message: "must be at least 1 day (today's file is still being written)".into(),
            });
        }
        if self.delete_after_days == Some(0) {
            return Err(Error::Config {
                setting: "--delete-after",
                message: "must be at least 1 day (today's file is still being written)".into(),
            });
        }
        if !(1..=22).contains(&self.level) {
            return Err(Error::Config {
                setting: "compression level",
                message: format!("{} is not a zstd level (1–22)", self.level),
            });
        }
        Ok(())
    }
}

/// What a compaction pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CompactReport {
    /// Days compressed in this pass.
    pub compressed: u64,
    /// Their plain bytes.
    pub plain_bytes: u64,
    /// Their compressed bytes on disk.
    pub compressed_bytes: u64,
    /// Their lines.
    pub lines: u64,
    /// Days left plain because a writer or follower held the file.
    pub busy: u64,
    /// Days removed (past the deletion age).
    pub deleted: u64,
    /// Days past the deletion age kept because they are not fully shipped.
    pub kept_unshipped: Vec<String>,
}

/// Compresses and removes old day files of `dir` (see the module docs);
/// `today` is the monitor's local date. `may_delete(name, len)` says whether
/// the day file `name` (its plain name), holding `len` plain bytes, may be
/// removed: in fleet mode, only once all of it is shipped.
pub fn compact_dir(
    dir: &Path,
    today: NaiveDate,
    opts: &CompactOptions,
    may_delete: &dyn Fn(&str, u64) -> bool,
) -> Result<CompactReport> {
    opts.validate()?;
    remove_stale_temps(dir);
    let mut report = CompactReport::default();
    for (day, path) in dayfile::list_day_files(dir)? {
        let age = (today - day).num_days();
        if let Some(limit) = opts.delete_after_days {
            if age > i64::from(limit) {
                delete_day(&path, may_delete, &mut report)?;
                continue;
            }
        }
        if age > i64::from(opts.older_than_days) && path.exists() {
            compress_day(&path, opts.level, &mut report)?;
        }
    }
    Ok(report)
}

/// Compresses one day whose plain file exists (see the module docs).
fn compress_day(path: &Path, level: i32, report: &mut CompactReport) -> Result<()> {
    let lock = match dayfile::open_regular_file(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("cannot open day file", path, e)),
    };
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            tracing::debug!(file = %path.display(), "day file in use; compressing it later");
            report.busy += 1;
            return Ok(());
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(Error::io("cannot lock day file", path, e))
        }
    }
    // The day's bytes as every reader sees them (a compressed part from an
    // earlier pass plus late lines, when both exist), streamed: a large day
    // is never held in memory. A first pass measures it.
    let shape = measure(path).map_err(|e| Error::io("cannot read day file", path, e))?;
    let Some(shape) = shape else {
        return Ok(());
    };
    let dir = parent_dir(path);
    let zpath = dayfile::compressed_path(path);
    let mut tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(|e| Error::io("cannot create temporary file", &dir, e))?;
    encode(path, &shape, level, tmp.as_file_mut())
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| Error::io("cannot write compressed day file", tmp.path(), e))?;
    verify(tmp.path(), path, &shape).map_err(|message| Error::Compaction {
        path: path.to_path_buf(),
        message,
    })?;
    let compressed_bytes = tmp.as_file().metadata().map_or(0, |m| m.len());
    tmp.persist(&zpath)
        .map_err(|e| Error::io("cannot rename compressed day file", &zpath, e.error))?;
    sync_dir(&dir)?;
    std::fs::remove_file(path).map_err(|e| Error::io("cannot remove plain day file", path, e))?;
    sync_dir(&dir)?;
    drop(lock);
    report.compressed += 1;
    report.plain_bytes += shape.len;
    report.compressed_bytes += compressed_bytes;
    report.lines += shape.lines;
    tracing::info!(file = %zpath.display(), plain = shape.len, compressed = compressed_bytes, "compressed an old day file");
    Ok(())
}

/// What the compressed file will hold: the day's bytes, plus a newline
/// when its last line is torn (ended as the writer would end it, so lines
/// appended later never join it).
struct Shape {
    /// Plain bytes, the added newline included.
    len: u64,
    lines: u64,
    torn: bool,
}

fn measure(path: &Path) -> std::io::Result<Option<Shape>> {
    let Some(mut day) = dayfile::open_day_file(path)? else {
        return Ok(None);
    };
    let mut buf = vec![0u8; 256 * 1024];
    let (mut len, mut lines, mut last) = (0u64, 0u64, b'\n');
    loop {
        let n = day.read(&mut buf)?;
        if n == 0 {
            break;
        }
        len += n as u64;
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        last = buf[n - 1];
    }
    let torn = last != b'\n';
    Ok(Some(Shape {
        len: len + u64::from(torn),
        lines: lines + u64::from(torn),
        torn,
    }))
}

/// The day's bytes as they will be stored (see [`Shape`]).
fn stored_bytes(path: &Path, shape: &Shape) -> std::io::Result<impl Read> {
    let day = dayfile::open_day_file(path)?
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "day file disappeared"))?;
    let end: &'static [u8] = if shape.torn { b"\n" } else { b"" };
    Ok(day.chain(end))
}

/// One zstd frame that records its plain size (readers take the day's
/// length from it without decompressing).
fn encode(path: &Path, shape: &Shape, level: i32, out: &mut std::fs::File) -> std::io::Result<()> {
    let mut enc = zstd::stream::write::Encoder::new(std::io::BufWriter::new(out), level)?;
    enc.include_contentsize(true)?;
    enc.set_pledged_src_size(Some(shape.len))?;
    std::io::copy(&mut stored_bytes(path, shape)?, &mut enc)?;
    enc.finish()?.flush()
}

/// Decompresses the written file and compares it, byte for byte, with the
/// day read again (unchanged: its lock is held).
fn verify(tmp: &Path, path: &Path, shape: &Shape) -> std::result::Result<(), String> {
    let compare = || -> std::io::Result<Option<String>> {
        let mut back = zstd::stream::read::Decoder::new(dayfile::open_regular_file(tmp)?)?;
        let mut original = stored_bytes(path, shape)?;
        let mut a = vec![0u8; 256 * 1024];
        let mut b = vec![0u8; 256 * 1024];
        let mut at = 0u64;
        loop {
            let n = read_full(&mut original, &mut a)?;
            let m = read_full(&mut back, &mut b)?;
            if n != m || a[..n] != b[..m] {
                let first = a[..n.min(m)]
                    .iter()
                    .zip(&b[..n.min(m)])
                    .position(|(x, y)| x != y)
                    .unwrap_or(n.min(m));
                return Ok(Some(format!(
                    "it decompresses to bytes that differ from the plain ones at byte {}",
                    at + first as u64
                )));
            }
            if n == 0 {
                return Ok(None);
            }
            at += n as u64;
        }
    };
    match compare() {
        Ok(None) => Ok(()),
        Ok(Some(diff)) => Err(diff),
        Err(e) => Err(format!("cannot decompress it again ({e})")),
    }
}

/// Fills `buf` unless the reader ends first; the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            got => n += got,
        }
    }
    Ok(n)
}

/// Removes a day past the deletion age, if `may_delete` allows it.
fn delete_day(
    path: &Path,
    may_delete: &dyn Fn(&str, u64) -> bool,
    report: &mut CompactReport,
) -> Result<()> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    let len = match dayfile::open_day_file(path) {
        Ok(Some(day)) => day.len(),
        Ok(None) => return Ok(()),
        Err(e) => return Err(Error::io("cannot open day file", path, e)),
    };
    if !may_delete(&name, len) {
        tracing::warn!(file = %name, "past the deletion age but not fully shipped; kept");
        report.kept_unshipped.push(name);
        return Ok(());
    }
    for p in [dayfile::compressed_path(path), path.to_path_buf()] {
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("cannot remove day file", &p, e)),
        }
    }
    sync_dir(&parent_dir(path))?;
    report.deleted += 1;
    tracing::info!(file = %name, "removed a day file past the deletion age");
    Ok(())
}

/// Temporary files a crashed pass left (over an hour old: a running pass's
/// own file is younger).
fn remove_stale_temps(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let stale = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age.as_secs() > 3600);
        if name.to_string_lossy().starts_with(TEMP_PREFIX) && stale {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("cannot sync directory", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(i: u64) -> String {
        format!(
            "{{\"timestamp\": {}.5, \"user_id\": \"u{}\", \"anchor_id\": null, \"session_id\": \"s1\", \"model\": \"qwen-plus\", \"function\": \"实时分析\", \"input_tokens\": {}, \"output_tokens\": 7, \"total_tokens\": {}, \"cost\": 0.0001, \"duration_ms\": 12.0, \"success\": true, \"error_msg\": null}}\n",
            1_700_000_000 + i,
            i % 13,
            100 + i,
            107 + i
        )
    }

    fn day(n: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2025, 1, 1).unwrap() + chrono::Duration::days(n.into())
    }

    fn write_day(dir: &Path, d: NaiveDate, lines: std::ops::Range<u64>) -> PathBuf {
        let path = dayfile::day_file_path(dir, d);
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        for i in lines {
            f.write_all(line(i).as_bytes()).unwrap();
        }
        path
    }

    fn plain_bytes(path: &Path) -> Vec<u8> {
        let mut out = Vec::new();
        dayfile::open_day_file(path)
            .unwrap()
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    fn all_records(dir: &Path) -> Vec<(NaiveDate, f64, u64)> {
        let mut out = Vec::new();
        for (d, p) in dayfile::list_day_files(dir).unwrap() {
            dayfile::read_day_file(&p, |r| out.push((d, r.timestamp, r.input_tokens))).unwrap();
        }
        out
    }

    #[test]
    fn old_days_are_compressed_and_read_back_identically() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        for n in 0..10 {
            write_day(dir, day(n), u64::from(n) * 100..u64::from(n) * 100 + 300);
        }
        let before = all_records(dir);
        let bytes_before: Vec<Vec<u8>> = dayfile::list_day_files(dir)
            .unwrap()
            .iter()
            .map(|(_, p)| std::fs::read(p).unwrap())
            .collect();
        let opts = CompactOptions::default();
        // Today is day 9: days 0 and 1 are more than 7 days old.
        let r = compact_dir(dir, day(9), &opts, &|_, _| false).unwrap();
        assert_eq!(r.compressed, 2);
        assert_eq!(r.lines, 600);
        for n in 0..10 {
            let plain = dayfile::day_file_path(dir, day(n));
            let zst = dayfile::compressed_path(&plain);
            assert_eq!(plain.exists(), n >= 2, "day {n}");
            assert_eq!(zst.exists(), n < 2, "day {n}");
        }
        // Every reader sees the same bytes, records and lengths.
        assert_eq!(all_records(dir), before);
        let files = dayfile::list_day_files(dir).unwrap();
        assert_eq!(files.len(), 10);
        for ((_, p), b) in files.iter().zip(&bytes_before) {
            assert_eq!(&plain_bytes(p), b);
            assert_eq!(
                dayfile::open_day_file(p).unwrap().unwrap().len(),
                b.len() as u64
            );
        }
        // Skipping into a compressed day lands on the same byte.
        let p = &files[0].1;
        let mut rest = Vec::new();
        dayfile::open_day_file(p)
            .unwrap()
            .unwrap()
            .skip_to(1000)
            .unwrap()
            .read_to_end(&mut rest)
            .unwrap();
        assert_eq!(rest, bytes_before[0][1000..]);
        assert!(r.compressed_bytes * 5 < r.plain_bytes, "{r:?}");
        // A second pass has nothing to do.
        let again = compact_dir(dir, day(9), &opts, &|_, _| false).unwrap();
        assert_eq!(again.compressed, 0);
    }

    #[test]
    fn a_crash_between_rename_and_removal_counts_each_line_once() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let plain = write_day(dir, day(0), 0..50);
        let original = std::fs::read(&plain).unwrap();
        let before = all_records(dir);
        // The state a crash after the rename leaves: both files, same bytes.
        let written = dir.join("written.tmp");
        let mut z = std::fs::File::create(&written).unwrap();
        let shape = measure(&plain).unwrap().unwrap();
        assert_eq!(shape.len, original.len() as u64);
        encode(&plain, &shape, 3, &mut z).unwrap();
        std::fs::rename(&written, dayfile::compressed_path(&plain)).unwrap();
        assert_eq!(all_records(dir), before);
        // A writer may even have appended to the plain file since.
        write_day(dir, day(0), 50..60);
        let grown = all_records(dir);
        assert_eq!(grown.len(), 60);
        assert_eq!(grown[..50], before[..]);
        // The next pass finishes the job.
        let r = compact_dir(dir, day(30), &CompactOptions::default(), &|_, _| false).unwrap();
        assert_eq!(r.compressed, 1);
        assert!(!plain.exists());
        assert_eq!(all_records(dir), grown);
    }

    #[test]
    fn a_crash_before_the_rename_leaves_the_plain_file_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let plain = write_day(dir, day(0), 0..50);
        let before = all_records(dir);
        // A half-written temporary file of a pass that died.
        std::fs::write(dir.join(format!("{TEMP_PREFIX}abc.tmp")), b"\x28\xb5\x2f").unwrap();
        assert_eq!(all_records(dir), before);
        assert!(plain.exists());
        compact_dir(dir, day(30), &CompactOptions::default(), &|_, _| false).unwrap();
        assert_eq!(all_records(dir), before);
    }

    #[test]
    fn late_lines_for_a_compressed_day_are_joined_then_merged() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let plain = write_day(dir, day(0), 0..40);
        compact_dir(dir, day(30), &CompactOptions::default(), &|_, _| false).unwrap();
        assert!(!plain.exists());
        // A back-filled record for that day lands in a new plain file.
        write_day(dir, day(0), 1000..1003);
        let joined = all_records(dir);
        assert_eq!(joined.len(), 43);
        assert_eq!(joined[40].2, 1100);
        let len = dayfile::open_day_file(&plain).unwrap().unwrap().len();
        compact_dir(dir, day(30), &CompactOptions::default(), &|_, _| false).unwrap();
        assert!(!plain.exists());
        assert_eq!(all_records(dir), joined);
        assert_eq!(dayfile::open_day_file(&plain).unwrap().unwrap().len(), len);
    }

    #[test]
    fn a_torn_last_line_is_ended_so_later_lines_stay_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let plain = write_day(dir, day(0), 0..5);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&plain)
            .unwrap()
            .write_all(b"{\"timestamp\": 17")
            .unwrap();
        compact_dir(dir, day(30), &CompactOptions::default(), &|_, _| false).unwrap();
        write_day(dir, day(0), 5..6);
        assert_eq!(all_records(dir).len(), 6);
    }

    #[test]
    fn a_file_in_use_is_left_for_later() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let plain = write_day(dir, day(0), 0..5);
        let holder = std::fs::File::open(&plain).unwrap();
        holder.lock_shared().unwrap();
        let r = compact_dir(dir, day(30), &CompactOptions::default(), &|_, _| false).unwrap();
        assert_eq!((r.compressed, r.busy), (0, 1));
        assert!(plain.exists());
        holder.unlock().unwrap();
        let r = compact_dir(dir, day(30), &CompactOptions::default(), &|_, _| false).unwrap();
        assert_eq!((r.compressed, r.busy), (1, 0));
    }

    #[test]
    fn deletion_keeps_what_may_not_be_deleted() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        for n in 0..4 {
            write_day(dir, day(n), 0..10);
        }
        compact_dir(dir, day(20), &CompactOptions::default(), &|_, _| false).unwrap();
        let opts = CompactOptions {
            delete_after_days: Some(17),
            ..CompactOptions::default()
        };
        let full = dayfile::open_day_file(&dayfile::day_file_path(dir, day(0)))
            .unwrap()
            .unwrap()
            .len();
        // Days 0-2 are past the age; only day 1 may go (say, fully shipped).
        let seen = std::sync::Mutex::new(Vec::new());
        let r = compact_dir(dir, day(20), &opts, &|name, len| {
            seen.lock().unwrap().push((name.to_string(), len));
            name == dayfile::day_file_name(day(1))
        })
        .unwrap();
        assert_eq!(r.deleted, 1);
        assert_eq!(r.kept_unshipped.len(), 2);
        let left: Vec<NaiveDate> = dayfile::list_day_files(dir)
            .unwrap()
            .into_iter()
            .map(|(d, _)| d)
            .collect();
        assert_eq!(left, vec![day(0), day(2), day(3)]);
        assert!(seen.lock().unwrap().iter().all(|(_, len)| *len == full));
    }

    #[test]
    fn a_compressed_file_that_does_not_give_back_the_day_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let plain = write_day(dir, day(0), 0..20);
        let other = write_day(dir, day(1), 5..25);
        let shape = measure(&plain).unwrap().unwrap();
        let written = dir.join("x.tmp");
        // Another day's bytes.
        let other_shape = measure(&other).unwrap().unwrap();
        encode(
            &other,
            &other_shape,
            3,
            &mut std::fs::File::create(&written).unwrap(),
        )
        .unwrap();
        let e = verify(&written, &plain, &shape).unwrap_err();
        assert!(e.contains("differ"), "{e}");
        std::fs::write(&written, b"not zstd").unwrap();
        let e = verify(&written, &plain, &shape).unwrap_err();
        assert!(e.contains("cannot decompress"), "{e}");
        encode(
            &plain,
            &shape,
            3,
            &mut std::fs::File::create(&written).unwrap(),
        )
        .unwrap();
        verify(&written, &plain, &shape).unwrap();
    }

    #[test]
    fn settings_are_checked() {
        let bad = CompactOptions {
            older_than_days: 0,
            ..CompactOptions::default()
        };
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("--older-than"));
        let bad = CompactOptions {
            level: 40,
            ..CompactOptions::default()
        };
        assert!(bad.validate().unwrap_err().to_string().contains("level"));
    }
}
