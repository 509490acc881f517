//! The day files on disk: their names, listing them, and reading them back
//! line by line without letting one bad line cost the rest of the file.
//!
//! A day may be stored plain (`usage_YYYY-MM-DD.jsonl`) or, once old,
//! compressed (`usage_YYYY-MM-DD.jsonl.zst`, see [`crate::storage::compact`]).
//! Every reader names a day by its plain path and opens it with
//! [`open_day_file`], which yields the day's plain bytes whatever its
//! storage; offsets are always in plain bytes.

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

/// Day files in `dir`, oldest first, one per day, each by its plain path
/// (`usage_YYYY-MM-DD.jsonl`) whether the day is stored plain, compressed
/// or both: open them with [`open_day_file`] / [`read_day_file`]. A missing
/// directory has none.
pub fn list_day_files(dir: &Path) -> Result<Vec<(NaiveDate, PathBuf)>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("cannot list records directory", dir, e)),
    };
    let mut files = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let plain = name.strip_suffix(COMPRESSED_SUFFIX).unwrap_or(name);
        if let Some(date) = parse_day_file_name(plain) {
            files.push((date, dir.join(plain)));
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

/// Suffix added to a compressed day file's plain name (zstd).
pub const COMPRESSED_SUFFIX: &str = ".zst";

/// The compressed sibling of a plain file path: `X` → `X.zst`.
pub fn compressed_path(plain: &Path) -> PathBuf {
    let mut s = plain.as_os_str().to_owned();
    s.push(COMPRESSED_SUFFIX);
    PathBuf::from(s)
}

/// A day's plain bytes, however they are stored: the compressed file, the
/// plain file, or (rarely) both. Both exist after a crash between a
/// compaction's rename and its removal of the plain file (the plain file
/// then starts with everything the compressed one holds, and is read
/// alone), or when a late record for a compacted day was appended to a new
/// plain file (the day is then the compressed bytes followed by the plain
/// ones). The next compaction pass merges them.
pub struct DayReader {
    compressed: Option<(File, u64)>,
    plain: Option<(File, u64)>,
    reader: Box<dyn Read + Send>,
}

impl std::fmt::Debug for DayReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DayReader")
            .field("compressed", &self.compressed)
            .field("plain", &self.plain)
            .finish_non_exhaustive()
    }
}

impl DayReader {
    /// Total plain bytes of the day (both parts).
    pub fn len(&self) -> u64 {
        self.compressed.as_ref().map_or(0, |c| c.1) + self.plain.as_ref().map_or(0, |p| p.1)
    }

    /// Whether the day holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether any of the day is read from a compressed file.
    pub fn is_compressed(&self) -> bool {
        self.compressed.is_some()
    }

    /// The plain file's handle, if the day has one (to lock it while
    /// reading, as the follower does).
    pub fn plain_file(&self) -> Option<&File> {
        self.plain.as_ref().map(|p| &p.0)
    }

    /// Bytes on disk (compressed file plus plain file).
    pub fn disk_bytes(&self) -> u64 {
        let len = |f: &File| f.metadata().map_or(0, |m| m.len());
        self.compressed.as_ref().map_or(0, |c| len(&c.0))
            + self.plain.as_ref().map_or(0, |p| len(&p.0))
    }

    /// Moves a reader not yet read from to plain offset `offset`: seeks in
    /// the plain file, decompresses and discards in the compressed one.
    pub fn skip_to(mut self, offset: u64) -> std::io::Result<DayReader> {
        let zlen = self.compressed.as_ref().map_or(0, |c| c.1);
        if offset >= zlen {
            if let Some((f, _)) = &self.plain {
                use std::io::Seek;
                let mut f = f.try_clone()?;
                f.seek(std::io::SeekFrom::Start(offset - zlen))?;
                self.reader = Box::new(f);
                return Ok(self);
            }
        }
        let skipped = std::io::copy(&mut (&mut self.reader).take(offset), &mut std::io::sink())?;
        if skipped < offset.min(self.len()) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "day file ended before the offset",
            ));
        }
        Ok(self)
    }
}

impl Read for DayReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.reader.read(buf)
    }
}

/// Opens a day (by its plain path, see [`list_day_files`]) for reading its
/// plain bytes, whatever its storage; `None` when neither the plain nor the
/// compressed file exists. Works for any `X.jsonl` / `X.jsonl.zst` pair.
/// Both files are opened as [`open_regular_file`] does.
pub fn open_day_file(plain: &Path) -> std::io::Result<Option<DayReader>> {
    let zpath = compressed_path(plain);
    // The compressed file first: a compaction renames it in before it
    // removes the plain file. If neither is found, that rename happened
    // between the two opens, and a second look finds the compressed file.
    let mut compressed = open_if_present(&zpath)?;
    let mut plain_opened = open_if_present(plain)?;
    if compressed.is_none() && plain_opened.is_none() {
        compressed = open_if_present(&zpath)?;
        plain_opened = open_if_present(plain)?;
    }
    let plain_part = match plain_opened {
        Some(f) => {
            let len = f.metadata()?.len();
            Some((f, len))
        }
        None => None,
    };
    let Some(z) = compressed else {
        return match plain_part {
            Some((f, len)) => Ok(Some(DayReader {
                reader: Box::new(f.try_clone()?),
                compressed: None,
                plain: Some((f, len)),
            })),
            None => Ok(None),
        };
    };
    let zlen = compressed_len(&z, &zpath)?;
    if let Some((p, plen)) = plain_part {
        if plen >= zlen && starts_with_decompressed(&p, &z)? {
            // Left by a compaction cut short: the plain file holds it all.
            rewind(&p)?;
            return Ok(Some(DayReader {
                reader: Box::new(p.try_clone()?),
                compressed: None,
                plain: Some((p, plen)),
            }));
        }
        rewind(&p)?;
        rewind(&z)?;
        let decoder = zstd::stream::read::Decoder::new(z.try_clone()?)?;
        return Ok(Some(DayReader {
            reader: Box::new(decoder.chain(p.try_clone()?)),
            compressed: Some((z, zlen)),
            plain: Some((p, plen)),
        }));
    }
    rewind(&z)?;
    let decoder = zstd::stream::read::Decoder::new(z.try_clone()?)?;
    Ok(Some(DayReader {
        reader: Box::new(decoder),
        compressed: Some((z, zlen)),
        plain: None,
    }))
}

fn open_if_present(path: &Path) -> std::io::Result<Option<File>> {
    match open_regular_file(path) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn rewind(mut f: &File) -> std::io::Result<()> {
    use std::io::Seek;
    f.seek(std::io::SeekFrom::Start(0)).map(drop)
}

/// The plain length of a compressed file: from its frame header (compaction
/// writes one frame, with its size), else by decompressing it.
fn compressed_len(z: &File, path: &Path) -> std::io::Result<u64> {
    let mut head = [0u8; 18];
    let mut n = 0;
    rewind(z)?;
    let mut f = z;
    while n < head.len() {
        let got = f.read(&mut head[n..])?;
        if got == 0 {
            break;
        }
        n += got;
    }
    if let Ok(Some(len)) = zstd::zstd_safe::get_frame_content_size(&head[..n]) {
        return Ok(len);
    }
    tracing::debug!(file = %path.display(), "compressed day file without a size header; measuring it");
    rewind(z)?;
    let mut d = zstd::stream::read::Decoder::new(z)?;
    std::io::copy(&mut d, &mut std::io::sink())
}

/// Whether the plain file begins with every byte the compressed one holds.
fn starts_with_decompressed(plain: &File, z: &File) -> std::io::Result<bool> {
    rewind(plain)?;
    rewind(z)?;
    let mut d = zstd::stream::read::Decoder::new(z)?;
    let mut p = std::io::BufReader::new(plain);
    let mut a = vec![0u8; 64 * 1024];
    let mut b = vec![0u8; 64 * 1024];
    loop {
        let n = d.read(&mut a)?;
        if n == 0 {
            return Ok(true);
        }
        p.read_exact(&mut b[..n])?;
        if a[..n] != b[..n] {
            return Ok(false);
        }
    }
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

/// Reads every record of a day file (plain or compressed: see
/// [`open_day_file`]), calling `each` for each valid line.
///
/// Bad lines are skipped and counted, with one warning per file naming the
/// first; a final line without its `\n` is a torn write and never counted as
/// data, even if it happens to parse. A missing file reads as empty. Only a
/// regular file with one link is read (see [`open_regular_file`]); anything
/// else named like a day file is skipped with one warning and counted in
/// `skipped_files`.
pub fn read_day_file(path: &Path, mut each: impl FnMut(UsageRecord)) -> Result<ReadStats> {
    read_day_file_at(path, |_, r| each(r))
}

/// [`read_day_file`], passing each record with the byte offset of its line
/// (what an adjustment names the call by).
pub fn read_day_file_at(path: &Path, each: impl FnMut(u64, UsageRecord)) -> Result<ReadStats> {
    let mut bytes = Vec::new();
    match open_day_file(path) {
        Ok(Some(mut f)) => {
            f.read_to_end(&mut bytes)
                .map_err(|e| Error::io("cannot read day file", path, e))?;
        }
        Ok(None) => return Ok(ReadStats::default()),
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
        0,
        &path.display().to_string(),
        true,
        each,
    ))
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
    if to <= from {
        return Ok(ReadStats::default());
    }
    let mut bytes = Vec::new();
    // Plain or compressed alike: offsets are in plain bytes.
    match open_day_file(path) {
        Ok(Some(f)) => {
            f.skip_to(from)
                .and_then(|f| f.take(to - from).read_to_end(&mut bytes))
                .map_err(|e| Error::io("cannot read day file", path, e))?;
        }
        Ok(None) => return Ok(ReadStats::default()),
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
