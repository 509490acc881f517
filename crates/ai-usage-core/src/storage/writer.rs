//! The background writer: a bounded queue in front of one thread that owns the
//! day files.
//!
//! Durability rules, in one place:
//! - a batch for one day file is appended with a single `write` call on a file
//!   opened with `O_APPEND`, while holding an exclusive advisory lock
//!   ([`std::fs::File::lock`]), so several processes can record into one
//!   directory and lines never interleave;
//! - before the first append to a file, a file that does not end in `\n` (a
//!   write cut short by a crash) gets one, so the torn fragment stays a line of
//!   its own and the next record is not glued to it;
//! - [`Writer::flush`] returns once everything queued before it is written and
//!   `fdatasync`ed;
//! - a failed write keeps its bytes and is retried; errors are counted and
//!   logged, never returned into the caller's AI call.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use parking_lot::{Condvar, Mutex};

use crate::error::{Error, Result};
use crate::record::UsageRecord;
use crate::storage::dayfile;

/// When the writer calls `fdatasync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// After every batch written (safest, slowest).
    EveryBatch,
    /// At most this long after a write (default: at the flush interval).
    Interval(Duration),
    /// Only on an explicit [`UsageMonitor::flush`](crate::UsageMonitor::flush) / shutdown.
    OnFlush,
}

/// What recording does when the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueuePolicy {
    /// Wait for room: lossless (default).
    #[default]
    Block,
    /// Drop the line from the file (rollups still count it) and count the drop.
    DropNewest,
}

/// Writer settings.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Records directory.
    pub dir: PathBuf,
    /// Queue capacity in records.
    pub queue_capacity: usize,
    /// Longest time a record waits in memory before it is written.
    pub flush_interval: Duration,
    /// When to fsync.
    pub fsync: FsyncPolicy,
    /// Full-queue behaviour.
    pub queue_policy: QueuePolicy,
    /// Where to note the byte ranges appended (for a following monitor).
    pub own_writes: Option<Arc<Mutex<crate::storage::follow::OwnWrites>>>,
}

impl WriterConfig {
    /// Defaults for `dir`: 65,536-record queue, 200 ms write interval, fsync
    /// at most 1 s after a write, blocking when full.
    pub fn new(dir: impl Into<PathBuf>) -> WriterConfig {
        WriterConfig {
            dir: dir.into(),
            queue_capacity: 65_536,
            flush_interval: Duration::from_millis(200),
            fsync: FsyncPolicy::Interval(Duration::from_secs(1)),
            queue_policy: QueuePolicy::Block,
            own_writes: None,
        }
    }
}

/// The writer's counters, for health checks.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct WriterHealth {
    /// Records handed to the queue.
    pub enqueued: u64,
    /// Records appended to a day file.
    pub written: u64,
    /// Records dropped because the queue was full (lossy mode only).
    pub dropped: u64,
    /// Failed write or sync attempts (each is retried).
    pub write_errors: u64,
    /// `fdatasync` calls made.
    pub syncs: u64,
    /// The last I/O error, if any.
    pub last_error: Option<String>,
    /// True while the writer thread runs.
    pub running: bool,
}

impl WriterHealth {
    /// Records accepted but not yet written.
    pub fn pending(&self) -> u64 {
        self.enqueued
            .saturating_sub(self.written)
            .saturating_sub(self.dropped)
    }
}

/// State shared by recording threads and the writer thread, behind one lock.
///
/// Records wait in `items`; the writer swaps the whole vector out at once, so
/// a recording thread only ever pushes (no syscall, no wake-up per record).
/// After writing, the writer hands the records back through `spare`, and
/// recording threads refill them in place: in steady state no record's
/// strings are allocated on one thread and freed on another.
struct Queue {
    items: Vec<(NaiveDate, UsageRecord)>,
    spare: Vec<UsageRecord>,
    /// Records accepted so far (sequence of the last one queued).
    enqueued: u64,
    /// Highest sequence a flush is waiting for.
    flush_target: u64,
    /// Highest sequence known written and synced.
    durable: u64,
    /// Result of the last sync round (`Err` while records are stuck).
    last_result: std::result::Result<(), String>,
    shutdown: bool,
    stopped: bool,
    writer_idle: bool,
    /// Writer rounds completed (a flush judges failure only by a round that
    /// began after it asked).
    rounds: u64,
}

struct Shared {
    queue: Mutex<Queue>,
    /// Wakes the writer (batch full, flush, shutdown).
    work: Condvar,
    /// Wakes recorders waiting for room and flushers waiting for durability.
    progress: Condvar,
    capacity: usize,
    wake_at: usize,
    written: AtomicU64,
    dropped: AtomicU64,
    write_errors: AtomicU64,
    syncs: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// Handle to the writer thread.
pub struct Writer {
    shared: Arc<Shared>,
    policy: QueuePolicy,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("health", &self.health())
            .finish()
    }
}

impl Writer {
    /// Creates the directory and starts the writer thread.
    pub fn start(config: WriterConfig) -> Result<Writer> {
        std::fs::create_dir_all(&config.dir)
            .map_err(|e| Error::io("cannot create records directory", &config.dir, e))?;
        let capacity = config.queue_capacity.max(1);
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                items: Vec::with_capacity(capacity.min(WAKE_BATCH * 2)),
                spare: Vec::new(),
                enqueued: 0,
                flush_target: 0,
                durable: 0,
                last_result: Ok(()),
                shutdown: false,
                stopped: false,
                writer_idle: false,
                rounds: 0,
            }),
            work: Condvar::new(),
            progress: Condvar::new(),
            capacity,
            wake_at: WAKE_BATCH.min(capacity.div_ceil(2)).max(1),
            written: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
            last_error: Mutex::new(None),
        });
        let policy = config.queue_policy;
        let state = WriterThread {
            config,
            shared: shared.clone(),
            files: BTreeMap::new(),
            pending: BTreeMap::new(),
            unsynced: false,
            last_write: None,
        };
        let thread = std::thread::Builder::new()
            .name("ai-usage-writer".into())
            .spawn(move || state.run())
            .map_err(|e| Error::io("cannot start the writer thread", PathBuf::new(), e))?;
        Ok(Writer {
            shared,
            policy,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Queues a copy of `record` for its day file. Never touches the disk;
    /// waits only for room in a full queue under [`QueuePolicy::Block`].
    /// Returns false if the record was dropped (lossy mode, or writer stopped).
    pub fn submit(&self, day: NaiveDate, record: &UsageRecord) -> bool {
        let sh = &*self.shared;
        let mut q = sh.queue.lock();
        while q.items.len() >= sh.capacity && !q.stopped {
            if self.policy == QueuePolicy::DropNewest {
                break;
            }
            sh.work.notify_one();
            sh.progress.wait(&mut q);
        }
        if q.stopped || q.items.len() >= sh.capacity {
            drop(q);
            let n = sh.dropped.fetch_add(1, Ordering::Relaxed);
            if n.is_power_of_two() || n == 0 {
                tracing::warn!(
                    dropped = n + 1,
                    "usage record not queued for disk (queue full or writer stopped)"
                );
            }
            return false;
        }
        let slot = match q.spare.pop() {
            Some(mut slot) => {
                refill(&mut slot, record);
                slot
            }
            None => record.clone(),
        };
        q.items.push((day, slot));
        q.enqueued += 1;
        if q.items.len() >= sh.wake_at && q.writer_idle {
            q.writer_idle = false;
            sh.work.notify_one();
        }
        true
    }

    /// Waits until every record queued before this call is written and synced.
    pub fn flush(&self) -> Result<()> {
        let sh = &*self.shared;
        let mut q = sh.queue.lock();
        let target = q.enqueued;
        if q.durable >= target && q.last_result.is_ok() {
            return Ok(());
        }
        q.flush_target = q.flush_target.max(target);
        // The round under way may have started before this call; the one
        // after it certainly tries every record queued before it.
        let decisive_round = q.rounds + 2;
        sh.work.notify_one();
        loop {
            if q.durable >= target {
                return Ok(());
            }
            if q.stopped {
                return Err(Error::WriterStopped);
            }
            // A failed round reports its error; the writer keeps retrying.
            if let Err(e) = &q.last_result {
                if q.rounds >= decisive_round {
                    return Err(Error::NotDurable(e.clone()));
                }
            }
            sh.progress.wait(&mut q);
        }
    }

    /// Flushes and stops the writer thread. Later records are counted as dropped.
    pub fn shutdown(&self) -> Result<()> {
        let flushed = self.flush();
        {
            let mut q = self.shared.queue.lock();
            q.shutdown = true;
            self.shared.work.notify_one();
        }
        if let Some(handle) = self.thread.lock().take() {
            if handle.join().is_err() {
                tracing::error!("the usage writer thread panicked");
            }
        }
        match flushed {
            Err(Error::WriterStopped) => Ok(()),
            other => other,
        }
    }

    /// Current counters.
    pub fn health(&self) -> WriterHealth {
        let sh = &*self.shared;
        let enqueued = sh.queue.lock().enqueued;
        WriterHealth {
            enqueued: enqueued + sh.dropped.load(Ordering::Relaxed),
            written: sh.written.load(Ordering::Relaxed),
            dropped: sh.dropped.load(Ordering::Relaxed),
            write_errors: sh.write_errors.load(Ordering::Relaxed),
            syncs: sh.syncs.load(Ordering::Relaxed),
            last_error: sh.last_error.lock().clone(),
            running: self
                .thread
                .lock()
                .as_ref()
                .is_some_and(|t| !t.is_finished()),
        }
    }
}

/// Copies `src` into `dst`, reusing `dst`'s string buffers.
fn refill(dst: &mut UsageRecord, src: &UsageRecord) {
    dst.timestamp = src.timestamp;
    dst.user_id.clone_from(&src.user_id);
    dst.anchor_id.clone_from(&src.anchor_id);
    dst.session_id.clone_from(&src.session_id);
    dst.model.clone_from(&src.model);
    dst.function.clone_from(&src.function);
    dst.input_tokens = src.input_tokens;
    dst.output_tokens = src.output_tokens;
    dst.total_tokens = src.total_tokens;
    dst.cost = src.cost;
    dst.duration_ms = src.duration_ms;
    dst.success = src.success;
    dst.error_msg.clone_from(&src.error_msg);
    dst.cached_input_tokens = src.cached_input_tokens;
    dst.reasoning_tokens = src.reasoning_tokens;
    dst.currency = src.currency;
    dst.priced = src.priced;
    dst.request_id.clone_from(&src.request_id);
    dst.tags.clone_from(&src.tags);
}

impl Drop for Writer {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::error!(error = %e, "usage records may be lost at shutdown");
        }
    }
}

/// Queued records that wake the writer early (else it wakes each interval).
const WAKE_BATCH: usize = 8192;
/// Open day files kept at most (today, yesterday, a late straggler).
const MAX_OPEN_FILES: usize = 3;

struct WriterThread {
    config: WriterConfig,
    shared: Arc<Shared>,
    files: BTreeMap<NaiveDate, DayFile>,
    /// Serialised lines per day not yet appended (kept across failed tries).
    pending: BTreeMap<NaiveDate, Vec<u8>>,
    unsynced: bool,
    last_write: Option<Instant>,
}

struct DayFile {
    file: File,
    path: PathBuf,
}

impl WriterThread {
    fn run(mut self) {
        let sh = self.shared.clone();
        let mut batch: Vec<(NaiveDate, UsageRecord)> = Vec::new();
        let mut pending_records: BTreeMap<NaiveDate, u64> = BTreeMap::new();
        let mut shutdown_rounds = 0u32;
        loop {
            let (seq_end, flush_wanted, shutdown) = {
                let mut q = sh.queue.lock();
                // Sleep until a batch is full, a flush or shutdown is asked
                // for, or the interval is up (then write what there is).
                let failing = q.last_result.is_err();
                if (q.items.len() < sh.wake_at && q.flush_target <= q.durable || failing)
                    && !q.shutdown
                {
                    // (After a failed round, wait before retrying even if a
                    // flush is pending: back off instead of spinning.)
                    q.writer_idle = true;
                    sh.work.wait_for(&mut q, self.config.flush_interval);
                    q.writer_idle = false;
                }
                std::mem::swap(&mut q.items, &mut batch);
                // Room again for recorders blocked on a full queue.
                sh.progress.notify_all();
                (q.enqueued, q.flush_target > q.durable, q.shutdown)
            };
            for (day, record) in &batch {
                record.write_line(self.pending.entry(*day).or_default());
                *pending_records.entry(*day).or_default() += 1;
            }
            // Hand the emptied records back for reuse (bounded by capacity).
            {
                let mut q = sh.queue.lock();
                let room = sh.capacity.saturating_sub(q.spare.len());
                q.spare.extend(batch.drain(..).take(room).map(|(_, r)| r));
            }
            batch.clear();
            self.write_pending(&mut pending_records);
            let all_written = self.pending.is_empty();
            let sync_now = flush_wanted
                || shutdown
                || match self.config.fsync {
                    FsyncPolicy::EveryBatch => true,
                    FsyncPolicy::Interval(d) => self.last_write.is_some_and(|t| t.elapsed() >= d),
                    FsyncPolicy::OnFlush => false,
                };
            let mut result = Ok(());
            if sync_now && self.unsynced {
                result = self.sync_all();
            }
            if !all_written {
                result = Err(sh
                    .last_error
                    .lock()
                    .clone()
                    .unwrap_or_else(|| "write failed".into()));
            }
            {
                let mut q = sh.queue.lock();
                if result.is_ok() && all_written && (!self.unsynced) {
                    q.durable = q.durable.max(seq_end);
                }
                q.last_result = result;
                q.rounds += 1;
                sh.progress.notify_all();
                if shutdown && q.items.is_empty() && (all_written || q.durable >= q.enqueued) {
                    q.stopped = true;
                    sh.progress.notify_all();
                    return;
                }
                if shutdown && !all_written {
                    // Keep retrying for about two seconds, then give up loudly
                    // rather than hang the program's exit.
                    shutdown_rounds += 1;
                    if shutdown_rounds >= 40 {
                        let lost: u64 = pending_records.values().sum();
                        tracing::error!(
                            lost,
                            "usage writer stopping with records it could not write"
                        );
                        sh.dropped.fetch_add(lost, Ordering::Relaxed);
                        q.stopped = true;
                        sh.progress.notify_all();
                        return;
                    }
                    drop(q);
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }

    /// Appends every pending buffer, retrying a failed day a few times; what
    /// still fails stays pending for the next round.
    fn write_pending(&mut self, pending_records: &mut BTreeMap<NaiveDate, u64>) {
        let days: Vec<NaiveDate> = self.pending.keys().copied().collect();
        for day in days {
            let mut attempt = 0;
            loop {
                match self.append(day) {
                    Ok(()) => {
                        let n = pending_records.remove(&day).unwrap_or(0);
                        self.shared.written.fetch_add(n, Ordering::Relaxed);
                        self.pending.remove(&day);
                        self.unsynced = true;
                        self.last_write.get_or_insert_with(Instant::now);
                        break;
                    }
                    Err(e) => {
                        self.note_error(&e);
                        // Drop the handle: the file may have been removed or
                        // the disk remounted; reopen on the next try.
                        self.files.remove(&day);
                        attempt += 1;
                        if attempt >= 3 {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(10 << attempt));
                    }
                }
            }
        }
    }

    fn append(&mut self, day: NaiveDate) -> std::io::Result<()> {
        let path = dayfile::day_file_path(&self.config.dir, day);
        self.ensure_open(day, &path)?;
        let (Some(df), Some(buf)) = (self.files.get_mut(&day), self.pending.get(&day)) else {
            return Ok(());
        };
        df.file.lock()?;
        let result = match &self.config.own_writes {
            // Note the range while still holding the lock: a follower reading
            // under a shared lock then always knows these lines are ours.
            Some(own) => df.file.metadata().and_then(|m| {
                own.lock().note(day, m.len(), m.len() + buf.len() as u64);
                df.file.write_all(buf)
            }),
            None => df.file.write_all(buf),
        };
        let unlocked = df.file.unlock();
        result?;
        unlocked
    }

    /// Opens (or reopens, when the path no longer names our handle's file) the
    /// day file, terminating a torn last line left by a crash.
    fn ensure_open(&mut self, day: NaiveDate, path: &Path) -> std::io::Result<()> {
        if let Some(df) = self.files.get(&day) {
            if same_file(&df.file, path) {
                return Ok(());
            }
            self.files.remove(&day);
        }
        if self.files.len() >= MAX_OPEN_FILES {
            if let Some(oldest) = self.files.keys().next().copied() {
                if let Some(df) = self.files.remove(&oldest) {
                    let _ = df.file.sync_data();
                }
            }
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path)?;
        file.lock()?;
        let repaired = terminate_torn_line(&file);
        file.unlock()?;
        repaired?;
        self.files.insert(
            day,
            DayFile {
                file,
                path: path.to_path_buf(),
            },
        );
        Ok(())
    }

    fn sync_all(&mut self) -> std::result::Result<(), String> {
        let mut result = Ok(());
        for df in self.files.values() {
            if let Err(e) = df.file.sync_data() {
                let msg = format!("cannot sync {}: {e}", df.path.display());
                self.shared.write_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %msg, "usage writer");
                *self.shared.last_error.lock() = Some(msg.clone());
                result = Err(msg);
            }
        }
        self.shared.syncs.fetch_add(1, Ordering::Relaxed);
        if result.is_ok() {
            self.unsynced = false;
            self.last_write = None;
        }
        result
    }

    fn note_error(&self, e: &std::io::Error) {
        self.shared.write_errors.fetch_add(1, Ordering::Relaxed);
        let msg = format!("cannot append to {}: {e}", self.config.dir.display());
        tracing::error!(error = %msg, "usage writer (will retry)");
        *self.shared.last_error.lock() = Some(msg);
    }
}

/// Appends `\n` if the file is non-empty and does not end with one.
fn terminate_torn_line(file: &File) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    let mut f = file;
    f.seek(SeekFrom::Start(len - 1))?;
    let mut last = [0u8; 1];
    f.read_exact(&mut last)?;
    if last[0] != b'\n' {
        tracing::warn!("day file ended in a partial line; terminating it before appending");
        f.write_all(b"\n")?;
    }
    Ok(())
}

#[cfg(unix)]
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_file: &File, path: &Path) -> bool {
    path.exists()
}
