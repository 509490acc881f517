//! Odd files named like day files: a symbolic link to `/dev/zero`, a FIFO, a
//! hard link, a directory, a huge line and a megabyte of garbage. Start-up
//! neither hangs nor runs out of memory, each is skipped with one warning,
//! and the good files still count.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ai_usage_core::dayfile;
use ai_usage_core::{UsageEvent, UsageMonitor};
use chrono::NaiveDate;
use tracing::span;

/// A subscriber that counts WARN events on the current thread.
struct WarnCounter(Arc<AtomicUsize>);

impl tracing::Subscriber for WarnCounter {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }
    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        if *event.metadata().level() == tracing::Level::WARN {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
}

/// Reads one day file and returns what the reader found and how many
/// warnings it logged.
fn read_counting_warnings(path: &Path) -> (dayfile::ReadStats, usize) {
    let warnings = Arc::new(AtomicUsize::new(0));
    let stats = tracing::subscriber::with_default(WarnCounter(warnings.clone()), || {
        dayfile::read_day_file(path, |_| {}).unwrap()
    });
    (stats, warnings.load(Ordering::SeqCst))
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 1, d).unwrap()
}

const GOOD: &str = "{\"timestamp\": 1767225600.5, \"model\": \"qwen-plus\", \"function\": \"问答\", \"input_tokens\": 3, \"output_tokens\": 4, \"total_tokens\": 7, \"cost\": 0.001}\n";

fn refused_once(path: &Path) {
    let (stats, warnings) = read_counting_warnings(path);
    assert_eq!(stats.skipped_files, 1, "{}", path.display());
    assert_eq!(stats.records, 0);
    assert_eq!(warnings, 1, "one warning for {}", path.display());
}

#[cfg(unix)]
#[test]
fn symlink_to_dev_zero_is_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let path = dayfile::day_file_path(tmp.path(), day(1));
    std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
    refused_once(&path);
    // Also a symlink to a good file: not followed.
    let good = tmp.path().join("elsewhere.jsonl");
    std::fs::write(&good, GOOD).unwrap();
    let path2 = dayfile::day_file_path(tmp.path(), day(2));
    std::os::unix::fs::symlink(&good, &path2).unwrap();
    refused_once(&path2);
}

#[cfg(unix)]
#[test]
fn fifo_is_skipped_without_hanging() {
    let tmp = tempfile::tempdir().unwrap();
    let path = dayfile::day_file_path(tmp.path(), day(3));
    match std::process::Command::new("mkfifo").arg(&path).status() {
        Ok(s) if s.success() => {}
        _ if std::env::var_os("CI").is_some() => panic!("mkfifo is required under CI"),
        _ => {
            println!("skipped: install mkfifo (coreutils)");
            return;
        }
    }
    refused_once(&path);
}

#[cfg(unix)]
#[test]
fn hard_link_is_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("secret.txt");
    std::fs::write(&target, GOOD).unwrap();
    let path = dayfile::day_file_path(tmp.path(), day(4));
    std::fs::hard_link(&target, &path).unwrap();
    refused_once(&path);
}

#[test]
fn directory_is_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let path = dayfile::day_file_path(tmp.path(), day(5));
    std::fs::create_dir(&path).unwrap();
    refused_once(&path);
}

#[test]
fn huge_line_is_skipped_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let path = dayfile::day_file_path(tmp.path(), day(6));
    let mut data = GOOD.as_bytes().to_vec();
    // A 2 MiB line that would even parse as a record.
    let padding = "x".repeat(2 << 20);
    data.extend_from_slice(
        format!(
            "{{\"timestamp\": 1767225600.5, \"model\": \"m\", \"error_msg\": \"{padding}\"}}\n"
        )
        .as_bytes(),
    );
    data.extend_from_slice(GOOD.as_bytes());
    std::fs::write(&path, data).unwrap();
    let (stats, warnings) = read_counting_warnings(&path);
    assert_eq!(stats.records, 2);
    assert_eq!((stats.long_lines, stats.skipped_lines), (1, 1));
    assert_eq!(warnings, 1);
}

#[test]
fn a_megabyte_of_garbage_logs_one_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let path = dayfile::day_file_path(tmp.path(), day(7));
    let mut data = Vec::new();
    let mut lines = 0;
    while data.len() < 1 << 20 {
        data.extend_from_slice(b"{not json at all, just noise}\n\xff\xfe\n");
        lines += 2;
    }
    data.extend_from_slice(GOOD.as_bytes());
    data.extend_from_slice(b"torn tail without newline");
    std::fs::write(&path, data).unwrap();
    let (stats, warnings) = read_counting_warnings(&path);
    assert_eq!(stats.records, 1);
    assert_eq!(stats.skipped_lines, lines);
    assert_eq!(stats.torn_tail, 1);
    assert_eq!(warnings, 1, "one summary warning per file");
}

#[cfg(unix)]
#[test]
fn startup_skips_odd_files_and_counts_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let now = ai_usage_core::now_timestamp();
    let zone: ai_usage_core::Zone = "+08:00".parse().unwrap();
    let today = zone.date_of(now);
    std::os::unix::fs::symlink(
        "/dev/zero",
        dayfile::day_file_path(tmp.path(), today - chrono::Duration::days(1)),
    )
    .unwrap();
    std::fs::create_dir(dayfile::day_file_path(
        tmp.path(),
        today - chrono::Duration::days(2),
    ))
    .unwrap();
    {
        let m = UsageMonitor::builder()
            .dir(tmp.path())
            .timezone(zone)
            .build()
            .unwrap();
        m.record(&UsageEvent::new("qwen-plus", "问答").tokens(1, 1).at(now));
    }
    let m = UsageMonitor::builder()
        .dir(tmp.path())
        .timezone(zone)
        .build()
        .unwrap();
    assert!(m.wait_until_loaded(std::time::Duration::from_secs(60)));
    let replay = m.health().replay;
    assert_eq!((replay.records, replay.skipped_files), (1, 2));
}

#[cfg(unix)]
#[test]
fn the_writer_never_appends_through_a_symlink() {
    let tmp = tempfile::tempdir().unwrap();
    let now = ai_usage_core::now_timestamp();
    let zone: ai_usage_core::Zone = "+08:00".parse().unwrap();
    let victim = tmp.path().join("victim.txt");
    std::fs::write(&victim, "keep me\n").unwrap();
    std::os::unix::fs::symlink(
        &victim,
        dayfile::day_file_path(tmp.path(), zone.date_of(now)),
    )
    .unwrap();
    let m = UsageMonitor::builder()
        .dir(tmp.path())
        .timezone(zone)
        .build()
        .unwrap();
    m.record(&UsageEvent::new("qwen-plus", "问答").at(now));
    assert!(m.flush().is_err(), "refusing the file is a write error");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me\n");
    assert!(m.health().writer.unwrap().write_errors > 0);
}
