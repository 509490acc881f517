//! The day files on disk: their names, listing them, and reading them back
//! line by line without letting one bad line cost the rest of the file.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;

use crate::error::{Error, Result};
use crate::record::UsageRecord;

/// File name prefix of day files.
pub const DAY_FILE_PREFIX: &str = "usage_";
/// File name suffix of day files.
pub const DAY_FILE_SUFFIX: &str = ".jsonl";
/// Default records directory, as in the seed.
pub const DEFAULT_DIR: &str = "records/ai_usage";
/// Environment variable overriding the records directory.
pub const DIR_ENV: &str = "AI_USAGE_DIR";

/// `usage_YYYY-MM-DD.jsonl` for a local date.
pub fn day_file_name(date: NaiveDate) -> String {
    format!(
        "{DAY_FILE_PREFIX}{}{DAY_FILE_SUFFIX}",
        date.format("%Y-%m-%d")
    )
}

/// The path of a day file in `dir`.
pub fn day_file_path(dir: &Path, date: NaiveDate) -> PathBuf {
    dir.join(day_file_name(date))
}

/// The date a day file's name stands for, if it is one.
pub fn parse_day_file_name(name: &str) -> Option<NaiveDate> {
    let date = name
        .strip_prefix(DAY_FILE_PREFIX)?
        .strip_suffix(DAY_FILE_SUFFIX)?;
    if date.len() != 10 {
        return None;
    }
    NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()
}

/// Day files in `dir`, oldest first. A missing directory has none.
pub fn list_day_files(dir: &Path) -> Result<Vec<(NaiveDate, PathBuf)>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("cannot list records directory", dir, e)),
    };
    let mut files = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        if let Some(date) = name.to_str().and_then(parse_day_file_name) {
            files.push((date, entry.path()));
        }
    }
    files.sort();
    Ok(files)
}

/// Longest line a reader accepts (1 MiB; a record is about 300 bytes).
/// Longer lines are skipped and counted (`long_lines`) without being parsed.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Opens `path` for reading only if it is a regular file with a single link:
/// a symbolic link is not followed (`O_NOFOLLOW`), a FIFO does not block the
/// open (`O_NONBLOCK`), and the type and link count are checked on the
/// opened file (`fstat`), so nothing can be swapped in between. Refusals are
/// [`std::io::ErrorKind::InvalidInput`] errors saying why.
pub fn open_regular_file(path: &Path) -> std::io::Result<File> {
    let mut options = fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    let file = match options.open(path) {
        Ok(f) => f,
        #[cfg(unix)]
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(refused("is a symbolic link"));
        }
        Err(e) => return Err(e),
    };
    check_regular(&file)?;
    Ok(file)
}

/// Refuses an open file that is not a regular file or has more than one link.
pub(crate) fn check_regular(file: &File) -> std::io::Result<()> {
    let meta = file.metadata()?;
    if !meta.is_file() {
        let what = if meta.is_dir() {
            "is a directory"
        } else {
            "is not a regular file (FIFO, device or socket)"
        };
        return Err(refused(what));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if meta.nlink() > 1 {
            return Err(refused("has more than one hard link"));
        }
    }
    Ok(())
}

fn refused(why: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, why.to_owned())
}

/// What reading one file found.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReadStats {
    /// Lines that held a record.
    pub records: u64,
    /// Lines skipped because they were not a valid record (garbage, non-UTF-8,
    /// missing `timestamp` or `model`).
    pub skipped_lines: u64,
    /// 1 when the file ended in a partial line (a write cut short), else 0.
    pub torn_tail: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Bytes of complete lines (where reading may resume when the file grows).
    pub complete_bytes: u64,
    /// Lines longer than [`MAX_LINE_BYTES`] (also in `skipped_lines`).
    pub long_lines: u64,
    /// Files named like day files but refused: symbolic links, directories,
    /// FIFOs, devices, files with more than one hard link.
    pub skipped_files: u64,
}

impl ReadStats {
    /// Adds another file's counts.
    pub fn merge(&mut self, other: &ReadStats) {
        self.records += other.records;
        self.skipped_lines += other.skipped_lines;
        self.torn_tail += other.torn_tail;
        self.bytes += other.bytes;
        self.complete_bytes += other.complete_bytes;
        self.long_lines += other.long_lines;
        self.skipped_files += other.skipped_files;
    }

    /// Adds what reading on from where these counts' complete lines ended
    /// found (a snapshot's tail), so the sum is what reading everything at
    /// once finds: the tail reads every file's end again, so the findings
    /// about ends and files (torn tail, refused files) are the tail's only.
    pub fn then(&mut self, tail: &ReadStats) {
        self.records += tail.records;
        self.skipped_lines += tail.skipped_lines;
        self.long_lines += tail.long_lines;
        self.bytes = self.complete_bytes + tail.bytes;
        self.complete_bytes += tail.complete_bytes;
        self.torn_tail = tail.torn_tail;
        self.skipped_files = tail.skipped_files;
    }
}

/// Reads every record of a day file, calling `each` for each valid line.
///
/// Bad lines are skipped and counted, with one warning per file naming the
/// first; a final line without its `\n` is a torn write and never counted as
/// data, even if it happens to parse. A missing file reads as empty. Only a
/// regular file with one link is read (see [`open_regular_file`]); anything
/// else named like a day file is skipped with one warning and counted in
/// `skipped_files`.
pub fn read_day_file(path: &Path, each: impl FnMut(UsageRecord)) -> Result<ReadStats> {
    let mut bytes = Vec::new();
    match open_regular_file(path) {
        Ok(mut f) => {
            f.read_to_end(&mut bytes)
                .map_err(|e| Error::io("cannot read day file", path, e))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ReadStats::default()),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
            tracing::warn!(file = %path.display(), reason = %e, "skipping a day file that is not a plain file");
            return Ok(ReadStats {
                skipped_files: 1,
                ..ReadStats::default()
            });
        }
        Err(e) => return Err(Error::io("cannot open day file", path, e)),
    }
    Ok(parse_lines(&bytes, &path.display().to_string(), each))
}

/// Reads the records of bytes `from..to` of a day file (`from` at the start
/// of a line, e.g. where an earlier read's complete lines ended), like
/// [`read_day_file`]; what lies past `to` (appended since `to` was taken)
/// is left for a later read. `complete_bytes` of the result counts from
/// `from`.
pub fn read_day_file_range(
    path: &Path,
    from: u64,
    to: u64,
    mut each: impl FnMut(UsageRecord),
) -> Result<ReadStats> {
    use std::io::{Seek, SeekFrom};
    if to <= from {
        return Ok(ReadStats::default());
    }
    let mut bytes = Vec::new();
    match open_regular_file(path) {
        Ok(mut f) => {
            f.seek(SeekFrom::Start(from))
                .and_then(|_| f.take(to - from).read_to_end(&mut bytes))
                .map_err(|e| Error::io("cannot read day file", path, e))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ReadStats::default()),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
            tracing::warn!(file = %path.display(), reason = %e, "skipping a day file that is not a plain file");
            return Ok(ReadStats {
                skipped_files: 1,
                ..ReadStats::default()
            });
        }
        Err(e) => return Err(Error::io("cannot open day file", path, e)),
    }
    Ok(parse_lines_at(
        &bytes,
        from,
        &path.display().to_string(),
        true,
        |_, r| each(r),
    ))
}

/// Parses JSON lines from a buffer (see [`read_day_file`]); `origin` names the
/// source in warnings.
pub fn parse_lines(bytes: &[u8], origin: &str, mut each: impl FnMut(UsageRecord)) -> ReadStats {
    parse_lines_at(bytes, 0, origin, true, |_, r| each(r))
}

/// Parses JSON lines that start at byte `base` of their file, passing each
/// record with the file offset of its line. A partial last line is reported
/// (`torn_tail`) and warned about when `warn_torn`; `complete_bytes` says
/// where the complete lines end.
pub fn parse_lines_at(
    bytes: &[u8],
    base: u64,
    origin: &str,
    warn_torn: bool,
    mut each: impl FnMut(u64, UsageRecord),
) -> ReadStats {
    let mut stats = ReadStats {
        bytes: bytes.len() as u64,
        ..ReadStats::default()
    };
    let mut pos = 0usize;
    let mut line_no = 0u64;
    // The first bad line and why: one warning per buffer, not one per line.
    let mut first_bad: Option<(u64, String)> = None;
    while pos < bytes.len() {
        line_no += 1;
        let rest = &bytes[pos..];
        let Some(end) = memchr_newline(rest) else {
            // No newline: the writer was cut off mid-line. Never data.
            stats.torn_tail = 1;
            break;
        };
        let start = pos;
        pos += end + 1;
        stats.complete_bytes = pos as u64;
        if end > MAX_LINE_BYTES {
            stats.long_lines += 1;
            stats.skipped_lines += 1;
            first_bad.get_or_insert_with(|| {
                (line_no, format!("line longer than {MAX_LINE_BYTES} bytes"))
            });
            continue;
        }
        let line = rest[..end].trim_ascii();
        if line.is_empty() {
            continue;
        }
        match parse_record(line) {
            Ok(r) => {
                stats.records += 1;
                each(base + start as u64, r);
            }
            Err(reason) => {
                stats.skipped_lines += 1;
                first_bad.get_or_insert((line_no, reason));
            }
        }
    }
    let torn = stats.torn_tail == 1 && warn_torn;
    if let Some((line, reason)) = first_bad {
        tracing::warn!(
            file = origin,
            skipped = stats.skipped_lines,
            first_line = line,
            %reason,
            torn_tail = torn,
            "skipped lines that are not usage records"
        );
    } else if torn {
        tracing::warn!(
            file = origin,
            line = line_no,
            "skipping a partial last line (torn write)"
        );
    }
    stats
}

/// Parses one line into a record; the error says why it is not one.
pub fn parse_record(line: &[u8]) -> std::result::Result<UsageRecord, String> {
    let text = std::str::from_utf8(line).map_err(|e| format!("not UTF-8 ({e})"))?;
    let mut r: UsageRecord = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if !r.timestamp.is_finite() {
        return Err("timestamp is not a finite number".into());
    }
    if r.model.is_empty() {
        return Err("model is empty".into());
    }
    // The seed keeps total_tokens as max(given, in + out); old files may not.
    r.total_tokens = r
        .total_tokens
        .max(r.input_tokens.saturating_add(r.output_tokens));
    Ok(r)
}

fn memchr_newline(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"timestamp": 1761403494.6, "user_id": "42", "anchor_id": null, "session_id": "s1", "model": "deepseek-chat", "function": "实时分析", "input_tokens": 2716, "output_tokens": 176, "total_tokens": 2892, "cost": 0.003068, "duration_ms": 3948.1, "success": false, "error_msg": "上游错误"}"#;

    #[test]
    fn names_round_trip() {
        let d = NaiveDate::from_ymd_opt(2025, 10, 26).unwrap();
        assert_eq!(day_file_name(d), "usage_2025-10-26.jsonl");
        assert_eq!(parse_day_file_name("usage_2025-10-26.jsonl"), Some(d));
        assert_eq!(parse_day_file_name("usage_report_20251026.json"), None);
        assert_eq!(parse_day_file_name("usage_2025-13-01.jsonl"), None);
    }

    #[test]
    fn bad_lines_cost_only_themselves() {
        let mut buf = Vec::new();
        buf.extend_from_slice(GOOD.as_bytes());
        buf.push(b'\n');
        buf.extend_from_slice(b"{garbage\n");
        buf.extend_from_slice(b"\xff\xfe not utf8\n");
        buf.extend_from_slice(b"{\"timestamp\": 1.0}\n"); // no model
        buf.extend_from_slice(b"\n   \n");
        buf.extend_from_slice(GOOD.as_bytes());
        buf.push(b'\n');
        buf.extend_from_slice(&GOOD.as_bytes()[..40]); // torn tail
        let mut got = Vec::new();
        let s = parse_lines(&buf, "t", |r| got.push(r));
        assert_eq!(s.records, 2);
        assert_eq!(s.skipped_lines, 3);
        assert_eq!(s.torn_tail, 1);
        assert_eq!(got[0].cost.micros(), 3068);
        assert!(!got[0].success);
        assert_eq!(got[0].error_msg.as_deref(), Some("上游错误"));
    }

    #[test]
    fn complete_but_unterminated_last_line_is_not_data() {
        let s = parse_lines(GOOD.as_bytes(), "t", |_| panic!("must not be counted"));
        assert_eq!((s.records, s.torn_tail), (0, 1));
    }

    #[test]
    fn unknown_fields_and_missing_optional_fields() {
        let line = br#"{"timestamp": 5.5, "model": "qwen-plus", "input_tokens": 3, "output_tokens": 4, "total_tokens": 2, "future_field": [1,2]}"#;
        let r = parse_record(line).unwrap();
        assert_eq!(r.total_tokens, 7);
        assert!(r.success);
        assert_eq!(r.user_id, None);
        assert_eq!(r.function, "");
        assert_eq!(r.currency, None);
    }
}
