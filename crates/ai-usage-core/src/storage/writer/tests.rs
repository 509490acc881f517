//! Fault-injection tests of the writer: a simulated small disk that runs
//! full (short writes, then `ENOSPC`), optionally refuses to truncate, and is
//! freed later. Every record must land exactly once and memory stay bounded.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::{FileIo, Writer, WriterConfig};
use crate::storage::dayfile::{self, ReadStats};
use crate::{Error, QueuePolicy, UsageEvent, UsageMonitor, UsageRecord};

/// A disk with `space` bytes left that writes at most `max_write` bytes per
/// call (short writes) and answers `ENOSPC` when full.
#[derive(Debug)]
struct SmallDisk {
    state: Mutex<DiskState>,
}

#[derive(Debug)]
struct DiskState {
    space: u64,
    max_write: usize,
    fail_truncate: bool,
    enospc: u64,
}

const ENOSPC: i32 = 28;

impl SmallDisk {
    fn new(space: u64, max_write: usize, fail_truncate: bool) -> Arc<SmallDisk> {
        Arc::new(SmallDisk {
            state: Mutex::new(DiskState {
                space,
                max_write,
                fail_truncate,
                enospc: 0,
            }),
        })
    }

    fn free(&self) {
        self.state.lock().space = u64::MAX;
    }

    fn enospc(&self) -> u64 {
        self.state.lock().enospc
    }
}

impl FileIo for SmallDisk {
    fn write(&self, mut file: &File, buf: &[u8]) -> std::io::Result<usize> {
        let mut st = self.state.lock();
        if st.space == 0 {
            st.enospc += 1;
            return Err(std::io::Error::from_raw_os_error(ENOSPC));
        }
        let n = buf.len().min(st.max_write).min(st.space as usize);
        let n = file.write(&buf[..n])?;
        st.space -= n as u64;
        Ok(n)
    }

    fn set_len(&self, file: &File, len: u64) -> std::io::Result<()> {
        let mut st = self.state.lock();
        if st.fail_truncate {
            return Err(std::io::Error::other("injected: truncate refused"));
        }
        let cur = file.metadata()?.len();
        file.set_len(len)?;
        st.space = st.space.saturating_add(cur.saturating_sub(len));
        Ok(())
    }

    fn sync_data(&self, file: &File) -> std::io::Result<()> {
        file.sync_data()
    }
}

fn monitor(
    dir: &Path,
    disk: &Arc<SmallDisk>,
    capacity: usize,
    policy: QueuePolicy,
) -> UsageMonitor {
    UsageMonitor::builder()
        .dir(dir)
        .timezone("+08:00".parse().unwrap())
        .flush_interval(Duration::from_millis(5))
        .queue_capacity(capacity)
        .queue_policy(policy)
        .file_io(disk.clone())
        .build()
        .unwrap()
}

fn read_all(dir: &Path) -> (Vec<UsageRecord>, ReadStats) {
    let mut out = Vec::new();
    let mut stats = ReadStats::default();
    for (_, path) in dayfile::list_day_files(dir).unwrap() {
        stats.merge(&dayfile::read_day_file(&path, |r| out.push(r)).unwrap());
    }
    (out, stats)
}

/// Flushes until the writer has caught up after the disk was freed (a flush
/// may still report the failed round that began before the space came back).
fn flush_after_recovery(m: &UsageMonitor) {
    for _ in 0..100 {
        if m.flush().is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    m.flush().unwrap();
}

/// Each request id's count on disk.
fn id_counts(records: &[UsageRecord]) -> BTreeMap<String, u32> {
    let mut counts = BTreeMap::new();
    for r in records {
        *counts
            .entry(r.request_id.clone().unwrap_or_default())
            .or_insert(0) += 1;
    }
    counts
}

fn full_disk_round(fail_truncate: bool) {
    const N: u64 = 2_000;
    let tmp = tempfile::tempdir().unwrap();
    // ~300-byte lines, 20 KB of room, 1,000-byte writes: the disk fills in
    // the middle of a batch, with short writes before it does.
    let disk = SmallDisk::new(20_000, 1_000, fail_truncate);
    let m = monitor(tmp.path(), &disk, 65_536, QueuePolicy::Block);
    let now = crate::now_timestamp();
    for i in 0..N {
        let id = format!("req-{i}");
        m.record(
            &UsageEvent::new("qwen-plus", "问答")
                .tokens(100 + i, 10)
                .request_id(&id)
                .at(now),
        );
    }
    let err = m.flush().unwrap_err();
    assert!(matches!(err, Error::NotDurable(_)), "{err}");
    assert!(disk.enospc() > 0, "the disk really ran full");
    let w = m.health().writer.unwrap();
    assert!(w.truncations > 0, "a partial batch was undone: {w:?}");
    assert!(w.written < N);

    disk.free();
    flush_after_recovery(&m);
    let (records, stats) = read_all(tmp.path());
    let counts = id_counts(&records);
    assert_eq!(counts.len() as u64, N, "every record is on disk");
    assert!(
        counts.values().all(|&c| c == 1),
        "no record twice: {:?}",
        counts
            .iter()
            .filter(|(_, &c)| c > 1)
            .take(5)
            .collect::<Vec<_>>()
    );
    assert_eq!(stats.torn_tail, 0);
    if fail_truncate {
        // An undo that failed leaves its torn fragment as one skipped line.
        assert!(stats.skipped_lines >= 1, "{stats:?}");
    } else {
        assert_eq!(stats.skipped_lines, 0, "no torn line anywhere");
    }
    assert_eq!(m.health().writer.unwrap().written, N);

    // What a restart counts equals what the live process counted.
    let day = m.zone().date_of(now);
    let live = m.get_summary_for_date(day);
    drop(m);
    let restarted = UsageMonitor::builder()
        .dir(tmp.path())
        .timezone("+08:00".parse().unwrap())
        .build()
        .unwrap();
    let again = restarted.get_summary_for_date(day);
    assert_eq!(again.total_calls, N);
    assert_eq!(
        (
            again.total_calls,
            again.total_input_tokens,
            again.total_cost
        ),
        (live.total_calls, live.total_input_tokens, live.total_cost)
    );
}

#[test]
fn full_disk_then_freed_writes_every_record_exactly_once() {
    full_disk_round(false);
}

#[test]
fn failed_undo_keeps_whole_lines_and_never_duplicates() {
    full_disk_round(true);
}

#[test]
fn blocking_queue_stays_bounded_while_the_disk_is_full() {
    const CAP: usize = 64;
    const N: u64 = 5_000;
    let tmp = tempfile::tempdir().unwrap();
    let disk = SmallDisk::new(0, usize::MAX, false);
    let m = Arc::new(monitor(tmp.path(), &disk, CAP, QueuePolicy::Block));
    let now = crate::now_timestamp();
    let day = m.zone().date_of(now);
    let recorder = {
        let m = m.clone();
        std::thread::spawn(move || {
            for i in 0..N {
                let id = format!("b-{i}");
                m.record(&UsageEvent::new("qwen-plus", "问答").request_id(&id).at(now));
            }
        })
    };
    // Let the writer fail a few rounds while the recorder presses on.
    std::thread::sleep(Duration::from_millis(300));
    let w = m.health().writer.unwrap();
    assert!(w.in_memory <= CAP as u64, "{w:?}");
    // Pending: the writer's queue plus what waits for the counting thread
    // (at most as many again for a small queue).
    assert!(w.pending() <= 2 * CAP as u64, "{w:?}");
    assert!(
        w.enqueued < N,
        "the recorder is blocked, not buffering: {w:?}"
    );
    // try_record refuses at once and counts nothing.
    let before = m.get_summary_for_date(day).total_calls;
    let err = m
        .try_record(&UsageEvent::new("qwen-plus", "问答").at(now))
        .unwrap_err();
    assert!(matches!(err, Error::QueueFull { capacity: CAP }), "{err}");
    assert_eq!(m.get_summary_for_date(day).total_calls, before);

    disk.free();
    recorder.join().unwrap();
    flush_after_recovery(&m);
    let (records, stats) = read_all(tmp.path());
    assert_eq!(stats.skipped_lines + stats.torn_tail, 0);
    let counts = id_counts(&records);
    assert_eq!(counts.len() as u64, N);
    assert!(counts.values().all(|&c| c == 1));
}

#[test]
fn dropping_queue_stays_bounded_and_counts_drops() {
    const CAP: usize = 64;
    const N: u64 = 5_000;
    let tmp = tempfile::tempdir().unwrap();
    let disk = SmallDisk::new(0, usize::MAX, false);
    let m = monitor(tmp.path(), &disk, CAP, QueuePolicy::DropNewest);
    let now = crate::now_timestamp();
    for i in 0..N {
        let id = format!("d-{i}");
        m.record(&UsageEvent::new("qwen-plus", "问答").request_id(&id).at(now));
        if i % 500 == 0 {
            let w = m.health().writer.unwrap();
            assert!(w.in_memory <= CAP as u64, "{w:?}");
        }
    }
    // The last records left by `record` reach the writer (and its drop
    // count) once published.
    m.settle();
    let w = m.health().writer.unwrap();
    assert!(w.in_memory <= CAP as u64, "{w:?}");
    assert!(w.dropped >= N - CAP as u64, "{w:?}");
    disk.free();
    flush_after_recovery(&m);
    let w = m.health().writer.unwrap();
    let (records, _) = read_all(tmp.path());
    assert_eq!(records.len() as u64, w.written);
    assert_eq!(w.written + w.dropped, N);
    assert!(id_counts(&records).values().all(|&c| c == 1));
}

/// A batch larger than the write chunk is appended in parts while it is
/// formatted; the disk runs full after a few parts (short writes first).
/// Every record lands exactly once and in order, with the undo working
/// (`fail_truncate: false`) or failing.
fn early_appends_round(fail_truncate: bool) {
    const N: usize = 3_000;
    let tmp = tempfile::tempdir().unwrap();
    // ~240-byte lines: 720 KB in all, room for 200 KB, written 1,000 bytes
    // at most per call; a part every 512 lines (the chunk is 2 KB), so the
    // first part lands and the second fills the disk.
    let disk = SmallDisk::new(200_000, 1_000, fail_truncate);
    let mut config = WriterConfig::new(tmp.path());
    config.io = disk.clone();
    config.write_chunk = 2_000;
    config.flush_interval = Duration::from_millis(20);
    let w = Writer::start(config).unwrap();
    let day = chrono::NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
    let record = |i: usize| UsageRecord {
        timestamp: 1_772_323_200.0 + i as f64,
        model: "qwen-plus".into(),
        function: "问答".into(),
        request_id: Some(format!("early-{i:05}")),
        ..UsageRecord::default()
    };
    // Queued under one lock: the writer takes them as one batch.
    let mut batch: Vec<_> = (0..N).map(|i| (day, Box::new(record(i)))).collect();
    let mut slots = Vec::new();
    w.submit_owned(&mut batch, &mut slots);
    assert_eq!(w.health().enqueued, N as u64);
    let err = w.flush().unwrap_err();
    assert!(matches!(err, Error::NotDurable(_)), "{err}");
    assert!(disk.enospc() > 0, "the disk really ran full");
    let written = w.health().written;
    assert!(
        written > 0 && (written as usize) < N,
        "some parts landed before the disk was full: {written}"
    );

    disk.free();
    for _ in 0..100 {
        if w.flush().is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    w.flush().unwrap();
    assert_eq!(w.health().written, N as u64);
    let (records, stats) = read_all(tmp.path());
    let ids: Vec<String> = records
        .iter()
        .map(|r| r.request_id.clone().unwrap_or_default())
        .collect();
    let want: Vec<String> = (0..N).map(|i| format!("early-{i:05}")).collect();
    assert_eq!(ids, want, "every record once, in order");
    assert_eq!(stats.torn_tail, 0);
    if !fail_truncate {
        assert_eq!(stats.skipped_lines, 0, "no torn line anywhere");
    }
    // What is on disk is each record's own line, byte for byte.
    let text = std::fs::read(dayfile::day_file_path(tmp.path(), day)).unwrap();
    let mut lines = Vec::new();
    for i in 0..N {
        record(i).write_line(&mut lines);
    }
    if fail_truncate {
        // An undo that failed leaves its torn fragment as a line of its own.
        assert!(text.len() > lines.len());
    } else {
        assert_eq!(text, lines);
    }
}

#[test]
fn early_appends_of_a_large_batch_keep_every_record_once_in_order() {
    early_appends_round(false);
}

#[test]
fn early_appends_with_a_failed_undo_never_duplicate() {
    early_appends_round(true);
}
