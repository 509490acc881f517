//! The background writer: a bounded queue in front of one thread that owns the
//! day files.
//!
//! Durability rules, in one place:
//! - a batch for one day file is appended while holding an exclusive advisory
//!   lock ([`std::fs::File::lock`]) on a file opened with `O_APPEND`, so several
//!   processes can record into one directory and lines never interleave;
//! - exactly once: the file's length is taken under that lock before the
//!   append; a write that fails part-way (a full disk, a short write) is
//!   undone with `set_len(before)` before it is retried, so a batch is never
//!   partly on disk twice. Should the truncation fail too, the whole lines
//!   that did land count as written and only the rest is retried;
//! - before the first append to a file, a file that does not end in `\n` (a
//!   write cut short by a crash) gets one, so the torn fragment stays a line of
//!   its own and the next record is not glued to it;
//! - bounded memory: records accepted but not yet on disk (queued, reserved
//!   or in the batch being written) never exceed the queue capacity, also
//!   while the disk fails: the writer takes no new batch until the last one
//!   is written. Then [`QueuePolicy::Block`] makes recorders wait and
//!   [`QueuePolicy::DropNewest`] drops and counts;
//! - group commit: every record gets a sequence number; the writer publishes
//!   the highest one written and `fdatasync`ed, and [`Writer::wait_durable`]
//!   waiters all return after the one sync that covers them;
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

/// The system calls the writer makes on an open day file: the seam through
/// which tests inject short writes, a full disk and failing truncations.
pub(crate) trait FileIo: std::fmt::Debug + Send + Sync {
    /// One `write(2)` at the end of `file` (opened with `O_APPEND`).
    fn write(&self, file: &File, buf: &[u8]) -> std::io::Result<usize>;
    /// `ftruncate(2)`.
    fn set_len(&self, file: &File, len: u64) -> std::io::Result<()>;
    /// `fdatasync(2)`.
    fn sync_data(&self, file: &File) -> std::io::Result<()>;
}

/// The real system calls.
#[derive(Debug)]
pub(crate) struct RealIo;

impl FileIo for RealIo {
    fn write(&self, mut file: &File, buf: &[u8]) -> std::io::Result<usize> {
        file.write(buf)
    }
    fn set_len(&self, file: &File, len: u64) -> std::io::Result<()> {
        file.set_len(len)
    }
    fn sync_data(&self, file: &File) -> std::io::Result<()> {
        file.sync_data()
    }
}

/// Writer settings.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Records directory.
    pub dir: PathBuf,
    /// Queue capacity in records: the most records accepted but not yet on
    /// disk (queued, reserved or being written).
    pub queue_capacity: usize,
    /// Longest time a record waits in memory before it is written.
    pub flush_interval: Duration,
    /// When to fsync.
    pub fsync: FsyncPolicy,
    /// Full-queue behaviour.
    pub queue_policy: QueuePolicy,
    /// Where to note the byte ranges appended (for a following monitor).
    pub own_writes: Option<Arc<Mutex<crate::storage::follow::OwnWrites>>>,
    /// The file system calls (real ones except in fault-injection tests).
    pub(crate) io: Arc<dyn FileIo>,
    /// Formatted bytes of one day appended at once while a batch is still
    /// being formatted ([`WRITE_CHUNK`]; smaller in tests).
    pub(crate) write_chunk: usize,
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
            io: Arc::new(RealIo),
            write_chunk: WRITE_CHUNK,
        }
    }
}

/// The writer's counters, for health checks.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct WriterHealth {
    /// Records handed to the queue (in a monitor's health, also those
    /// still on their way to it from `record`).
    pub enqueued: u64,
    /// Records appended to a day file.
    pub written: u64,
    /// Records dropped because the queue was full (lossy mode only).
    pub dropped: u64,
    /// Failed write or sync attempts (each is retried).
    pub write_errors: u64,
    /// Sync rounds (each syncs every file written since the last one).
    pub syncs: u64,
    /// `fdatasync` calls made (one per file per sync round; a group commit
    /// covers every durable caller waiting on it with one call).
    pub fsyncs: u64,
    /// Partly written batches undone by truncating the file back.
    pub truncations: u64,
    /// Records accepted and not yet on disk right now (never above the
    /// queue capacity).
    pub in_memory: u64,
    /// The queue capacity.
    pub capacity: u64,
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

/// A record on its way to disk, boxed: it passes from the recorder through
/// the counting thread and the queue to the writer and back as a recycled
/// slot, and a box moves as one pointer instead of the record's 300-odd
/// bytes at every hand-over.
pub(crate) type Slot = Box<UsageRecord>;

/// State shared by recording threads and the writer thread, behind one lock.
///
/// Records wait in `items`; the writer swaps the whole vector out at once, so
/// a recording thread only ever pushes (no syscall, no wake-up per record).
/// After writing, the writer hands the records back through `spare`, and
/// recording threads refill them in place: in steady state no record's
/// strings are allocated on one thread and freed on another.
struct Queue {
    items: Vec<(NaiveDate, Slot)>,
    spare: Vec<Slot>,
    /// Records the writer took and has not written yet.
    in_flight: usize,
    /// Places promised to callers that have not queued their record yet.
    reserved: usize,
    /// Records accepted so far (sequence of the last one queued).
    enqueued: u64,
    /// Highest sequence a flush or durable caller is waiting for.
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

impl Queue {
    /// Records held in memory against the capacity.
    fn used(&self) -> usize {
        self.items.len() + self.in_flight + self.reserved
    }
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
    fsyncs: AtomicU64,
    truncations: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Shared {
    fn count_drop(&self, n: u64) {
        let before = self.dropped.fetch_add(n, Ordering::Relaxed);
        // Logged at the 1st, 2nd, 4th, 8th, … drop: loud enough, never a flood.
        if before == 0 || (before + n).ilog2() > before.ilog2() {
            tracing::warn!(
                dropped = before + n,
                "usage record not queued for disk (queue full or writer stopped)"
            );
        }
    }
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

/// Room in the queue promised to one caller: records queued through it never
/// wait and are never dropped. Unused places are given back on drop.
pub struct Reservation<'a> {
    writer: &'a Writer,
    left: usize,
}

impl Reservation<'_> {
    /// Queues `record` in a reserved place; returns its sequence number (for
    /// [`Writer::wait_durable`]), or `None` when no place is left.
    pub fn submit(&mut self, day: NaiveDate, record: &UsageRecord) -> Option<u64> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let sh = &*self.writer.shared;
        let mut q = sh.queue.lock();
        q.reserved = q.reserved.saturating_sub(1);
        Some(push(sh, &mut q, day, record))
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.left > 0 {
            let sh = &*self.writer.shared;
            let mut q = sh.queue.lock();
            q.reserved = q.reserved.saturating_sub(self.left);
            sh.progress.notify_all();
        }
    }
}

/// Queues a record (the caller has checked for room); returns its sequence.
fn push(sh: &Shared, q: &mut Queue, day: NaiveDate, record: &UsageRecord) -> u64 {
    let slot = match q.spare.pop() {
        Some(mut slot) => {
            // Every field, from the record's one table of fields.
            record.copy_into(&mut slot);
            slot
        }
        None => Box::new(record.clone()),
    };
    q.items.push((day, slot));
    q.enqueued += 1;
    if q.items.len() >= sh.wake_at && q.writer_idle {
        q.writer_idle = false;
        sh.work.notify_one();
    }
    q.enqueued
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
                in_flight: 0,
                reserved: 0,
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
            fsyncs: AtomicU64::new(0),
            truncations: AtomicU64::new(0),
            last_error: Mutex::new(None),
        });
        let policy = config.queue_policy;
        let state = WriterThread {
            config,
            shared: shared.clone(),
            files: BTreeMap::new(),
            pending: BTreeMap::new(),
            pending_records: BTreeMap::new(),
            spare_buffer: Vec::new(),
            taken: 0,
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

    /// The queue capacity (records).
    pub fn capacity(&self) -> usize {
        self.shared.capacity
    }

    /// Queues owned records, in order, for their day files (the monitor's
    /// counting thread hands over what it counted: no copy). Leaves `batch`
    /// empty and puts written records the writer handed back in `slots`, at
    /// most one per record taken, for reuse. Never touches the disk; waits
    /// for room in a full queue under [`QueuePolicy::Block`], and drops and
    /// counts (lossy mode, or writer stopped) otherwise.
    pub fn submit_owned(&self, batch: &mut Vec<(NaiveDate, Slot)>, slots: &mut Vec<Slot>) {
        let sh = &*self.shared;
        let mut dropped = 0;
        let mut q = sh.queue.lock();
        for (day, record) in batch.drain(..) {
            while q.used() >= sh.capacity && !q.stopped && self.policy == QueuePolicy::Block {
                sh.work.notify_one();
                sh.progress.wait(&mut q);
            }
            if q.stopped || q.used() >= sh.capacity {
                dropped += 1;
                slots.push(record);
                continue;
            }
            q.items.push((day, record));
            q.enqueued += 1;
            if let Some(slot) = q.spare.pop() {
                slots.push(slot);
            }
            if q.items.len() >= sh.wake_at && q.writer_idle {
                q.writer_idle = false;
                sh.work.notify_one();
            }
        }
        drop(q);
        if dropped > 0 {
            sh.count_drop(dropped);
        }
    }

    /// Reserves room for `n` records (at most the capacity). With `wait`
    /// and [`QueuePolicy::Block`] it waits for room; otherwise a full queue
    /// is [`Error::QueueFull`] and nothing is counted anywhere.
    pub fn reserve(&self, n: usize, wait: bool) -> Result<Reservation<'_>> {
        let sh = &*self.shared;
        let n = n.min(sh.capacity);
        let mut q = sh.queue.lock();
        loop {
            if q.stopped || q.shutdown {
                return Err(Error::WriterStopped);
            }
            if q.used() + n <= sh.capacity {
                q.reserved += n;
                return Ok(Reservation {
                    writer: self,
                    left: n,
                });
            }
            if !wait || self.policy == QueuePolicy::DropNewest {
                return Err(Error::QueueFull {
                    capacity: sh.capacity,
                });
            }
            sh.work.notify_one();
            sh.progress.wait(&mut q);
        }
    }

    /// Waits until every record queued before this call is written and synced.
    pub fn flush(&self) -> Result<()> {
        let target = self.shared.queue.lock().enqueued;
        self.wait_durable(target)
    }

    /// Waits until the record with sequence `seq` (and every one before it)
    /// is written and synced. Callers waiting together share one sync.
    /// Errors once a write round that began after this call has failed (the
    /// records stay queued and the writer keeps retrying), or when the
    /// writer has stopped.
    pub fn wait_durable(&self, seq: u64) -> Result<()> {
        let sh = &*self.shared;
        let mut q = sh.queue.lock();
        if q.durable >= seq && q.last_result.is_ok() {
            return Ok(());
        }
        q.flush_target = q.flush_target.max(seq);
        // The round under way may have started before this call; the one
        // after it certainly tries every record queued before it.
        let decisive_round = q.rounds + 2;
        sh.work.notify_one();
        loop {
            if q.durable >= seq {
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
        let (enqueued, in_memory) = {
            let q = sh.queue.lock();
            (q.enqueued, q.used() as u64)
        };
        WriterHealth {
            enqueued: enqueued + sh.dropped.load(Ordering::Relaxed),
            written: sh.written.load(Ordering::Relaxed),
            dropped: sh.dropped.load(Ordering::Relaxed),
            write_errors: sh.write_errors.load(Ordering::Relaxed),
            syncs: sh.syncs.load(Ordering::Relaxed),
            fsyncs: sh.fsyncs.load(Ordering::Relaxed),
            truncations: sh.truncations.load(Ordering::Relaxed),
            in_memory,
            capacity: sh.capacity as u64,
            last_error: sh.last_error.lock().clone(),
            running: self
                .thread
                .lock()
                .as_ref()
                .is_some_and(|t| !t.is_finished()),
        }
    }
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
/// Records formatted between two hand-backs of their slots to recorders.
const RETURN_CHUNK: usize = 512;
/// Formatted bytes of one day appended at once while a batch is formatted
/// (about 1,800 lines; the last part of a batch is appended at its end).
const WRITE_CHUNK: usize = 512 << 10;
/// Largest day buffer kept for reuse (lines pile up past WRITE_CHUNK only
/// while appends fail; such a buffer is given back once written).
const MAX_SPARE_BUFFER: usize = 4 << 20;
/// Open day files kept at most (today, yesterday, a late straggler).
const MAX_OPEN_FILES: usize = 3;

struct WriterThread {
    config: WriterConfig,
    shared: Arc<Shared>,
    files: BTreeMap<NaiveDate, DayFile>,
    /// Serialised lines per day not yet appended (kept across failed tries).
    pending: BTreeMap<NaiveDate, Vec<u8>>,
    /// Records in each pending buffer.
    pending_records: BTreeMap<NaiveDate, u64>,
    /// A written day's buffer kept for the next batch (no regrowing it
    /// batch after batch), unless it grew past [`MAX_SPARE_BUFFER`].
    spare_buffer: Vec<u8>,
    /// Sequence of the last record taken from the queue.
    taken: u64,
    last_write: Option<Instant>,
}

struct DayFile {
    file: File,
    path: PathBuf,
    /// Written since its last sync.
    dirty: bool,
}

/// Why an append failed, and how much of it is on disk anyway.
struct AppendFailure {
    error: std::io::Error,
    /// Bytes at the start of the buffer, whole lines, that stayed in the file
    /// (only when undoing a partial write failed).
    kept: usize,
}

impl WriterThread {
    fn run(mut self) {
        let sh = self.shared.clone();
        let mut batch: Vec<(NaiveDate, Slot)> = Vec::new();
        let mut returned: Vec<Slot> = Vec::with_capacity(RETURN_CHUNK);
        let mut shutdown_rounds = 0u32;
        loop {
            let (flush_wanted, shutdown) = {
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
                // A new batch only once the last one is on disk: while the
                // disk fails, records stay in the bounded queue.
                if self.pending.is_empty() {
                    std::mem::swap(&mut q.items, &mut batch);
                    q.in_flight = batch.len();
                    self.taken = q.enqueued;
                    // Room again for recorders blocked on a full queue.
                    sh.progress.notify_all();
                }
                (q.flush_target > q.durable, q.shutdown)
            };
            // Hand the records back for reuse (bounded by capacity) every
            // RETURN_CHUNK lines, not after the whole batch: recorders keep
            // going while a batch is formatted, and with the slots back early
            // they refill one instead of cloning (allocating) a record.
            let mut lines = batch.drain(..);
            // Lines are appended every `write_chunk` bytes while the batch is
            // formatted: the buffer stays small (reused, never regrown, hot
            // in cache for the kernel's copy). After a failed append its
            // bytes stay pending and the rest waits for the round's end.
            let mut write_early = true;
            loop {
                returned.clear();
                for (day, record) in lines.by_ref().take(RETURN_CHUNK) {
                    let spare = &mut self.spare_buffer;
                    let buf = self
                        .pending
                        .entry(day)
                        .or_insert_with(|| std::mem::take(spare));
                    record.write_line(buf);
                    *self.pending_records.entry(day).or_default() += 1;
                    returned.push(record);
                }
                if returned.is_empty() {
                    break;
                }
                let chunk = self.config.write_chunk;
                if write_early && self.pending.values().any(|b| b.len() >= chunk) {
                    self.write_pending();
                    write_early = self.pending.is_empty();
                }
                let mut q = sh.queue.lock();
                let room = sh.capacity.saturating_sub(q.spare.len());
                q.spare.extend(returned.drain(..).take(room));
            }
            drop(lines);
            self.write_pending();
            let all_written = self.pending.is_empty();
            let sync_now = flush_wanted
                || shutdown
                || match self.config.fsync {
                    FsyncPolicy::EveryBatch => true,
                    FsyncPolicy::Interval(d) => self.last_write.is_some_and(|t| t.elapsed() >= d),
                    FsyncPolicy::OnFlush => false,
                };
            let mut result = Ok(());
            if sync_now {
                result = self.sync_all();
            }
            if !all_written {
                result = Err(sh
                    .last_error
                    .lock()
                    .clone()
                    .unwrap_or_else(|| "write failed".into()));
            }
            let unsynced = self.files.values().any(|f| f.dirty);
            {
                let mut q = sh.queue.lock();
                q.in_flight = self.pending_records.values().sum::<u64>() as usize;
                if result.is_ok() && all_written && !unsynced {
                    q.durable = q.durable.max(self.taken);
                }
                q.last_result = result;
                q.rounds += 1;
                sh.progress.notify_all();
                if shutdown && q.items.is_empty() && all_written {
                    q.stopped = true;
                    sh.progress.notify_all();
                    return;
                }
                if shutdown && !all_written {
                    // Keep retrying for about two seconds, then give up loudly
                    // rather than hang the program's exit.
                    shutdown_rounds += 1;
                    if shutdown_rounds >= 40 {
                        let lost =
                            self.pending_records.values().sum::<u64>() + q.items.len() as u64;
                        tracing::error!(
                            lost,
                            "usage writer stopping with records it could not write"
                        );
                        sh.dropped.fetch_add(lost, Ordering::Relaxed);
                        q.in_flight = 0;
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
    fn write_pending(&mut self) {
        let days: Vec<NaiveDate> = self.pending.keys().copied().collect();
        for day in days {
            let mut attempt = 0;
            loop {
                match self.append(day) {
                    Ok(()) => {
                        let n = self.pending_records.remove(&day).unwrap_or(0);
                        self.shared.written.fetch_add(n, Ordering::Relaxed);
                        if let Some(mut buf) = self.pending.remove(&day) {
                            if buf.capacity() <= MAX_SPARE_BUFFER {
                                buf.clear();
                                self.spare_buffer = buf;
                            }
                        }
                        self.last_write.get_or_insert_with(Instant::now);
                        break;
                    }
                    Err(failure) => {
                        if failure.kept > 0 {
                            self.keep_written_prefix(day, failure.kept);
                        }
                        self.note_error(&failure.error);
                        // Drop the handle: the file may have been removed or
                        // the disk remounted; reopen (and terminate a torn
                        // line) on the next try.
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

    /// Whole lines that stayed on disk after a failed append (the undo failed
    /// too): they are written, so they leave the pending buffer.
    fn keep_written_prefix(&mut self, day: NaiveDate, kept: usize) {
        let Some(buf) = self.pending.get_mut(&day) else {
            return;
        };
        let lines = buf[..kept].iter().filter(|&&b| b == b'\n').count() as u64;
        buf.drain(..kept);
        if let Some(n) = self.pending_records.get_mut(&day) {
            *n = n.saturating_sub(lines);
        }
        self.shared.written.fetch_add(lines, Ordering::Relaxed);
        self.last_write.get_or_insert_with(Instant::now);
        if buf.is_empty() {
            self.pending.remove(&day);
            self.pending_records.remove(&day);
        }
    }

    fn append(&mut self, day: NaiveDate) -> std::result::Result<(), AppendFailure> {
        let fail = |error| AppendFailure { error, kept: 0 };
        let path = dayfile::day_file_path(&self.config.dir, day);
        // A compaction of an old day removes its plain file under this same
        // lock: once locked, the handle must still be the file the path
        // names, or the lines would go to a removed file. Reopen then (a
        // new plain file beside the compressed one; readers join them).
        if !self.pending.contains_key(&day) {
            return Ok(());
        }
        let mut tries = 0;
        loop {
            self.ensure_open(day, &path).map_err(fail)?;
            let Some(df) = self.files.get(&day) else {
                return Ok(());
            };
            df.file.lock().map_err(fail)?;
            tries += 1;
            if tries >= 3 || same_file(&df.file, &path) {
                break;
            }
            let _ = df.file.unlock();
            self.files.remove(&day);
        }
        let (Some(df), Some(buf)) = (self.files.get_mut(&day), self.pending.get(&day)) else {
            return Ok(());
        };
        let result = append_locked(&*self.config.io, &df.file, buf, &self.shared);
        if let Ok(start) = result {
            // Note the range while still holding the lock: a follower reading
            // under a shared lock then always knows these lines are ours.
            if let Some(own) = &self.config.own_writes {
                own.lock().note(day, start, start + buf.len() as u64);
            }
        }
        df.dirty = true;
        let unlocked = df.file.unlock();
        result?;
        unlocked.map_err(fail)
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
                    let _ = self.config.io.sync_data(&df.file);
                }
            }
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut options = OpenOptions::new();
        options.create(true).append(true).read(true);
        #[cfg(unix)]
        {
            // Never append through a symbolic link, nor hang on a FIFO.
            use std::os::unix::fs::OpenOptionsExt;
            options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
        }
        let file = options.open(path)?;
        dayfile::check_regular(&file)?;
        file.lock()?;
        let repaired = terminate_torn_line(&*self.config.io, &file);
        file.unlock()?;
        repaired?;
        self.files.insert(
            day,
            DayFile {
                file,
                path: path.to_path_buf(),
                dirty: true,
            },
        );
        Ok(())
    }

    /// Syncs every file written since its last sync (one `fdatasync` each).
    fn sync_all(&mut self) -> std::result::Result<(), String> {
        let mut result = Ok(());
        let mut any = false;
        for df in self.files.values_mut().filter(|f| f.dirty) {
            any = true;
            self.shared.fsyncs.fetch_add(1, Ordering::Relaxed);
            match self.config.io.sync_data(&df.file) {
                Ok(()) => df.dirty = false,
                Err(e) => {
                    let msg = format!("cannot sync {}: {e}", df.path.display());
                    self.shared.write_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %msg, "usage writer");
                    *self.shared.last_error.lock() = Some(msg.clone());
                    result = Err(msg);
                }
            }
        }
        if any {
            self.shared.syncs.fetch_add(1, Ordering::Relaxed);
        }
        if result.is_ok() {
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

/// Appends `buf` to `file` (exclusive lock held) and returns the offset it
/// starts at. A failure part-way is undone by truncating back to the length
/// before, so a retry never duplicates a line; if the undo fails as well,
/// the failure says how many bytes of whole lines stayed.
fn append_locked(
    io: &dyn FileIo,
    file: &File,
    buf: &[u8],
    shared: &Shared,
) -> std::result::Result<u64, AppendFailure> {
    let before = file
        .metadata()
        .map_err(|error| AppendFailure { error, kept: 0 })?
        .len();
    let mut done = 0usize;
    while done < buf.len() {
        let error = match io.write(file, &buf[done..]) {
            Ok(0) => std::io::Error::new(std::io::ErrorKind::WriteZero, "write returned 0"),
            Ok(n) => {
                done += n;
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => e,
        };
        if done == 0 {
            return Err(AppendFailure { error, kept: 0 });
        }
        shared.truncations.fetch_add(1, Ordering::Relaxed);
        return match io.set_len(file, before) {
            Ok(()) => {
                tracing::warn!(
                    bytes = done,
                    "partial append undone (file truncated to its last whole line)"
                );
                Err(AppendFailure { error, kept: 0 })
            }
            Err(undo) => {
                // The prefix stays: its whole lines are written; the torn
                // rest is terminated on reopen and never read as data.
                let kept = buf[..done]
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |i| i + 1);
                tracing::error!(error = %undo, kept, "could not undo a partial append");
                Err(AppendFailure { error, kept })
            }
        };
    }
    Ok(before)
}

/// Appends `\n` if the file is non-empty and does not end with one.
fn terminate_torn_line(io: &dyn FileIo, file: &File) -> std::io::Result<()> {
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
        if io.write(file, b"\n")? != 1 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::WriteZero,
                "could not terminate a torn line",
            ));
        }
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

#[cfg(test)]
mod tests;
