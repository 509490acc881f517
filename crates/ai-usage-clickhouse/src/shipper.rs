//! The shipper: reads the local day files from the checkpoint on and inserts
//! their records into ClickHouse in batches, so that no record is lost and
//! none is counted twice.
//!
//! Exactly once, on ClickHouse 18.16 and later (no insert deduplication
//! tokens there, no block dedup outside replicated tables):
//! 1. Rows of a file are sent in offset order, each with the offset where its
//!    line ends, with at most one insert of that file in flight (several
//!    files may be shipped side by side: their offsets are independent). An insert that is cut short keeps a prefix of its rows (the
//!    server writes whole blocks, in order), so the server's
//!    `max(end_offset)` for (host, file) is exactly where its data ends.
//! 2. Whenever the outcome of an insert is unknown (error, timeout, a crash
//!    before the checkpoint was written), the shipper first waits until no
//!    insert of this host is still running on the server (inserts carry a
//!    `query_id` with the host's prefix), then resumes each file from
//!    `max(checkpoint, server's max(end_offset))`.
//! 3. One shipper per records directory (an exclusive lock file).
//! 4. Before a file's first row leaves, the server's rows for (host, file)
//!    must be this file's: the fingerprint of its first line is kept in
//!    `shipped_files`, and a different one (two directories shipping under
//!    one host id) stops the pass before anything is sent.
//!
//! A day file compressed since it was partly shipped (`.jsonl.zst`) keeps
//! its plain name and its offsets (in plain bytes), so shipping continues
//! where it stopped.
//!
//! Duplicates therefore never enter; `records` is a `ReplacingMergeTree`
//! over the stable id as a second line of defence, and the raw-row queries
//! read it with `FINAL`.
//!
//! Adjustment files (`adjustments_YYYY-MM-DD.jsonl`, cost corrections that
//! `reprice` appends) go the same way into `adjustments`: their own
//! offsets in the same checkpoint, the server's `max(end_offset)` per
//! (host, file) from that table. They are shipped after the day files of
//! the same pass, so a correction rarely reaches the fleet before its call.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use ai_usage_core::adjustments::Adjustment;
use ai_usage_core::PricingTable;

use crate::checkpoint::{inode_of, Checkpoint, FileMark, CHECKPOINT_FILE};
use crate::client::Client;
use crate::columns::record_columns;
use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::host_id::directory_host_id;
use crate::row::{push_adjustment_row, push_row, settle_currency, Origin};
use crate::schema;
use crate::tsv::quote;

/// Name of the lock file in the records directory.
pub const LOCK_FILE: &str = ".clickhouse-ship.lock";

/// How a shipper is set up.
#[derive(Debug, Clone)]
pub struct ShipperConfig {
    /// The records directory (day files).
    pub dir: PathBuf,
    /// The ClickHouse server and database.
    pub endpoint: Endpoint,
    /// This host's id; default: the one in the checkpoint, else the records
    /// directory's own (see [`directory_host_id`]).
    pub host_id: Option<String>,
    /// Checkpoint file; default `DIR/.clickhouse-ship.json`.
    pub checkpoint: Option<PathBuf>,
    /// Rows per insert (kept well below ClickHouse's 1,048,576-row block).
    pub batch_rows: usize,
    /// Day files shipped at the same time (each with one insert in flight),
    /// so a backlog of days keeps more than one server thread busy.
    pub parallel_files: usize,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Prices, for the currency of records written without one (the seed's).
    pub pricing: PricingTable,
}

impl ShipperConfig {
    /// Defaults: batches of 100,000 rows, 60 s requests, built-in prices.
    pub fn new(dir: impl Into<PathBuf>, endpoint: Endpoint) -> ShipperConfig {
        ShipperConfig {
            dir: dir.into(),
            endpoint,
            host_id: None,
            checkpoint: None,
            batch_rows: 100_000,
            parallel_files: 2,
            timeout: Duration::from_secs(60),
            pricing: PricingTable::builtin(),
        }
    }
}

/// What one shipping pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ShipReport {
    /// Records inserted.
    pub records: u64,
    /// Adjustment lines (cost corrections) inserted.
    pub adjustments: u64,
    /// Inserts made.
    pub batches: u64,
    /// Bytes of day files newly acknowledged.
    pub bytes: u64,
    /// Lines skipped because they were not valid records (never shipped).
    pub skipped_lines: u64,
    /// Day files looked at.
    pub files: u64,
    /// Bytes of complete lines still not shipped (0 after a full pass).
    pub lag_bytes: u64,
    /// (aggregate, hour) buckets filled after an insert whose outcome was
    /// unknown had reached `records` but not that aggregate's view.
    pub aggregate_repairs: u64,
}

impl ShipReport {
    fn merge(&mut self, o: &ShipReport) {
        self.records += o.records;
        self.adjustments += o.adjustments;
        self.batches += o.batches;
        self.bytes += o.bytes;
        self.skipped_lines += o.skipped_lines;
        self.files += o.files;
        self.lag_bytes = o.lag_bytes;
        self.aggregate_repairs += o.aggregate_repairs;
    }
}

/// Ships one records directory to one ClickHouse database.
#[derive(Debug)]
pub struct Shipper {
    cfg: ShipperConfig,
    client: Client,
    /// This host's id (also in the checkpoint).
    host: String,
    checkpoint: Mutex<Checkpoint>,
    checkpoint_path: PathBuf,
    /// Prefix of this host's insert query ids.
    query_prefix: String,
    /// The server's acknowledged offsets per file; `None` when they must be
    /// asked again because an insert's outcome is unknown.
    server_marks: Mutex<Option<HashMap<String, u64>>>,
    /// Aggregate repairs made since the last report.
    repairs: u64,
    /// Day files whose server rows are known to be this directory's.
    verified: HashSet<String>,
    _lock: File,
}

impl Shipper {
    /// Takes the directory's ship lock, loads the checkpoint and brings the
    /// database schema up to date.
    pub fn open(cfg: ShipperConfig) -> Result<Shipper> {
        // A blank id would pool this host's records with every other
        // host shipped without a name.
        if cfg.host_id.as_deref().is_some_and(|h| h.trim().is_empty()) {
            return Err(Error::InvalidHostId(
                "it is empty (give a name, or none for the records directory's own id)".into(),
            ));
        }
        std::fs::create_dir_all(&cfg.dir)
            .map_err(|e| Error::io("cannot create records directory", &cfg.dir, e))?;
        let lock_path = cfg.dir.join(LOCK_FILE);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io("cannot open lock file", &lock_path, e))?;
        if lock.try_lock().is_err() {
            return Err(Error::Locked {
                dir: cfg.dir.clone(),
                lock: lock_path,
            });
        }
        let checkpoint_path = cfg
            .checkpoint
            .clone()
            .unwrap_or_else(|| cfg.dir.join(CHECKPOINT_FILE));
        let target = cfg.endpoint.display_target();
        let checkpoint = match Checkpoint::load(&checkpoint_path)? {
            Some(c) => {
                if let Some(h) = &cfg.host_id {
                    if *h != c.host {
                        return Err(Error::Checkpoint {
                            path: checkpoint_path,
                            message: format!(
                                "host id {:?} was shipped as {:?}; record ids depend on it",
                                h, c.host
                            ),
                        });
                    }
                }
                if c.target != target {
                    return Err(Error::Checkpoint {
                        path: checkpoint_path,
                        message: format!(
                            "belongs to {}, not {target} (use another checkpoint file)",
                            c.target
                        ),
                    });
                }
                c
            }
            None => Checkpoint {
                host: match &cfg.host_id {
                    Some(h) => h.clone(),
                    None => directory_host_id(&cfg.dir)?,
                },
                target,
                files: Default::default(),
            },
        };
        let client = Client::new(cfg.endpoint.clone(), cfg.timeout);
        schema::migrate(&client)?;
        let query_prefix = format!(
            "aiu-ship-{:016x}-",
            xxhash_rust::xxh3::xxh3_64(checkpoint.host.as_bytes())
        );
        Ok(Shipper {
            cfg,
            client,
            host: checkpoint.host.clone(),
            checkpoint: Mutex::new(checkpoint),
            checkpoint_path,
            query_prefix,
            server_marks: Mutex::new(None),
            repairs: 0,
            verified: HashSet::new(),
            _lock: lock,
        })
    }

    /// This host's id.
    pub fn host_id(&self) -> &str {
        &self.host
    }

    fn checkpoint(&self) -> MutexGuard<'_, Checkpoint> {
        self.checkpoint
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn known_marks(&self) -> MutexGuard<'_, Option<HashMap<String, u64>>> {
        self.server_marks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The client (for queries over the same connection settings).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Ships every complete line present now; stops at the first error. The
    /// next call resumes exactly where ClickHouse's data ends.
    pub fn ship_once(&mut self) -> Result<ShipReport> {
        let marks = self.server_marks()?;
        let files = self.shipped_files()?;
        self.verify_files(&files)?;
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let lanes = self.cfg.parallel_files.clamp(1, files.len().max(1));
        let this = &*self;
        // Each lane takes the next file; files are independent (the server's
        // offsets are per file), so their inserts may run side by side.
        let lane = || -> Result<ShipReport> {
            let mut report = ShipReport::default();
            while !failed.load(Ordering::Relaxed) {
                let Some((kind, path)) = files.get(next.fetch_add(1, Ordering::Relaxed)) else {
                    break;
                };
                let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                    continue;
                };
                report.files += 1;
                let server = marks.get(name).copied().unwrap_or(0);
                match this.ship_file(*kind, path, name, server) {
                    Ok(r) => report.merge(&r),
                    Err(e) => {
                        failed.store(true, Ordering::Relaxed);
                        return Err(e);
                    }
                }
            }
            Ok(report)
        };
        let results: Vec<Result<ShipReport>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..lanes).map(|_| scope.spawn(lane)).collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(Error::Protocol("a shipping thread panicked".into()))
                    })
                })
                .collect()
        });
        let mut report = ShipReport::default();
        for r in results {
            match r {
                Ok(r) => report.merge(&r),
                Err(e) => {
                    // An insert may have been under way: ask the server again.
                    *self.known_marks() = None;
                    return Err(e);
                }
            }
        }
        report.lag_bytes = self.lag()?;
        report.aggregate_repairs = std::mem::take(&mut self.repairs);
        Ok(report)
    }

    /// Ships until everything is shipped, retrying transient failures
    /// (ClickHouse down, network) with backoff for at most `patience`.
    pub fn ship_all(&mut self, patience: Duration) -> Result<ShipReport> {
        let deadline = Instant::now() + patience;
        let mut total = ShipReport::default();
        let mut backoff = Duration::from_millis(200);
        loop {
            match self.ship_once() {
                Ok(r) => {
                    total.merge(&r);
                    return Ok(total);
                }
                Err(e) if e.is_transient() && Instant::now() + backoff < deadline => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "shipping failed; will retry");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Keeps shipping what is appended, polling every `poll`, until `stop`
    /// is set. ClickHouse outages are waited out with backoff; records wait
    /// on disk meanwhile. Only non-transient errors end it.
    pub fn follow(&mut self, stop: &AtomicBool, poll: Duration) -> Result<ShipReport> {
        let mut total = ShipReport::default();
        let mut backoff = poll;
        while !stop.load(Ordering::Relaxed) {
            match self.ship_once() {
                Ok(r) => {
                    if r.records > 0 || r.adjustments > 0 {
                        tracing::info!(records = r.records, adjustments = r.adjustments, "shipped");
                    }
                    total.merge(&r);
                    backoff = poll;
                }
                Err(e) if e.is_transient() => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "shipping failed; will retry");
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
                Err(e) => return Err(e),
            }
            sleep_unless(stop, backoff);
        }
        Ok(total)
    }

    /// Bytes of complete lines on disk not yet acknowledged, per the
    /// checkpoint (torn tails not counted).
    pub fn lag(&self) -> Result<u64> {
        let files = self.shipped_files()?;
        let mut lag = 0;
        for (_, path) in files {
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let len = match ai_usage_core::dayfile::open_day_file(&path) {
                Ok(Some(day)) => day.len(),
                _ => 0,
            };
            let done = self.checkpoint().files.get(name).map_or(0, |m| m.offset);
            lag += len.saturating_sub(done);
        }
        Ok(lag)
    }

    /// The files shipped, day files first, then adjustment files.
    fn shipped_files(&self) -> Result<Vec<(Lines, PathBuf)>> {
        let mut files: Vec<(Lines, PathBuf)> =
            ai_usage_core::dayfile::list_day_files(&self.cfg.dir)?
                .into_iter()
                .map(|(_, p)| (Lines::Usage, p))
                .collect();
        files.extend(
            ai_usage_core::adjustments::list_adjustment_files(&self.cfg.dir)?
                .into_iter()
                .map(|(_, p)| (Lines::Adjustments, p)),
        );
        Ok(files)
    }

    /// The server's acknowledged offsets, asked again after any uncertainty.
    fn server_marks(&mut self) -> Result<HashMap<String, u64>> {
        if let Some(m) = &*self.known_marks() {
            return Ok(m.clone());
        }
        // An insert whose answer we lost may still be running: its rows
        // would land after we read the marks. Wait until none is running.
        let running = format!(
            "SELECT count() FROM system.processes WHERE query_id LIKE {}",
            quote(&format!("{}%", self.query_prefix))
        );
        let waited = Instant::now();
        while self.client.query_u64(&running)? > 0 {
            if waited.elapsed() > self.cfg.timeout {
                return Err(Error::Protocol(
                    "an earlier insert of this host is still running on the server".into(),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // File names tell the tables apart (`usage_…`, `adjustments_…`).
        let rows = self.client.query_rows(&format!(
            "SELECT file, max(end_offset) FROM {db}.records WHERE host = {h} GROUP BY file \
UNION ALL SELECT file, max(end_offset) FROM {db}.{adj} WHERE host = {h} GROUP BY file",
            db = self.client.db(),
            h = quote(&self.host),
            adj = schema::ADJUSTMENTS_TABLE,
        ))?;
        let mut marks = HashMap::new();
        for row in rows {
            if let [file, end] = row.as_slice() {
                let end: u64 = end
                    .parse()
                    .map_err(|_| Error::Protocol(format!("offset {end:?}")))?;
                marks.insert(file.clone(), end);
            }
        }
        self.repair_uncertain(&marks)?;
        *self.known_marks() = Some(marks.clone());
        Ok(marks)
    }

    /// Where the server holds more of a file than the checkpoint says, an
    /// insert's outcome was unknown: its rows reached `records`, but a crash
    /// may have cut it before the materialized views. Makes the aggregates
    /// count those rows exactly once, then checkpoints the server's offset
    /// (so the check is not repeated; a crash before that repeats it, which
    /// finds nothing left to do).
    fn repair_uncertain(&mut self, marks: &HashMap<String, u64>) -> Result<()> {
        let mut uncertain = Vec::new();
        for (file, &server) in marks {
            let local = self
                .checkpoint()
                .files
                .get(file)
                .copied()
                .unwrap_or_default();
            if server > local.offset {
                uncertain.push((file.clone(), local, server));
            }
        }
        // Adjustments feed no view: only day files can need a repair.
        let ranges: Vec<(&str, u64, u64)> = uncertain
            .iter()
            .filter(|(file, _, _)| ai_usage_core::dayfile::parse_day_file_name(file).is_some())
            .map(|(file, local, server)| (file.as_str(), local.offset, *server))
            .collect();
        let r = schema::repair_shipped_ranges(&self.client, &self.host, &ranges)?;
        if !r.repaired.is_empty() {
            tracing::warn!(repaired = ?r.repaired,
                "an interrupted insert had missed aggregates; filled them from records");
        }
        if !r.unresolved.is_empty() {
            tracing::error!(unresolved = ?r.unresolved,
                "aggregates differ from records beyond this host's interrupted inserts; \
                 not repaired automatically (schema::rebuild_aggregates, shippers stopped)");
        }
        self.repairs += r.repaired.len() as u64;
        let changed = !uncertain.is_empty();
        for (file, local, server) in uncertain {
            self.checkpoint().files.insert(
                file,
                FileMark {
                    inode: local.inode,
                    offset: server,
                },
            );
        }
        if changed {
            self.checkpoint().save(&self.checkpoint_path)?;
        }
        Ok(())
    }

    /// Checks, before anything is sent, that the server's rows for each
    /// (host, file) not yet checked came from this file: their first-line
    /// fingerprint in `shipped_files` must be this file's. Files the server
    /// has no fingerprint for get this one's (rows shipped by a version
    /// without fingerprints are taken as this directory's: the host id was
    /// its own then too).
    fn verify_files(&mut self, files: &[(Lines, PathBuf)]) -> Result<()> {
        let mut ours = Vec::new();
        for (_, path) in files {
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if self.verified.contains(name) {
                continue;
            }
            if let Some(fp) = first_line_fingerprint(path)? {
                ours.push((name.to_string(), fp));
            }
        }
        if ours.is_empty() {
            return Ok(());
        }
        let db = self.client.db();
        let mut theirs: HashMap<String, Vec<u64>> = HashMap::new();
        for row in self.client.query_rows(&format!(
            "SELECT DISTINCT file, fingerprint FROM {db}.{} WHERE host = {}",
            schema::SHIPPED_FILES_TABLE,
            quote(&self.host)
        ))? {
            if let [file, fp] = row.as_slice() {
                let fp: u64 = fp
                    .parse()
                    .map_err(|_| Error::Protocol(format!("fingerprint {fp:?}")))?;
                theirs.entry(file.clone()).or_default().push(fp);
            }
        }
        let mut new = Vec::new();
        for (name, fp) in &ours {
            match theirs.get(name) {
                Some(fps) => {
                    if let Some(&other) = fps.iter().find(|&&f| f != *fp) {
                        return Err(Error::FileMismatch {
                            host: self.host.clone(),
                            file: name.clone(),
                            dir: self.cfg.dir.clone(),
                            ours: *fp,
                            theirs: other,
                        });
                    }
                }
                None => new.push(format!("({}, {}, {fp})", quote(&self.host), quote(name))),
            }
        }
        if !new.is_empty() {
            self.client.execute(&format!(
                "INSERT INTO {db}.{} (host, file, fingerprint) VALUES {}",
                schema::SHIPPED_FILES_TABLE,
                new.join(", ")
            ))?;
        }
        self.verified.extend(ours.into_iter().map(|(name, _)| name));
        Ok(())
    }

    fn ship_file(
        &self,
        kind: Lines,
        path: &Path,
        name: &str,
        server_mark: u64,
    ) -> Result<ShipReport> {
        let mut report = ShipReport::default();
        // The day's plain bytes, whether it is stored plain or compressed.
        let day = match ai_usage_core::dayfile::open_day_file(path) {
            Ok(Some(d)) => d,
            Ok(None) => return Ok(report),
            Err(e) => return Err(Error::io("cannot open day file", path, e)),
        };
        let local = self
            .checkpoint()
            .files
            .get(name)
            .copied()
            .unwrap_or_default();
        // The inode of the plain file; a compressed day keeps the one noted.
        let inode = match day.plain_file().map(File::metadata) {
            Some(Ok(meta)) if !day.is_compressed() => inode_of(&meta),
            _ => local.inode,
        };
        let len = day.len();
        let start = local.offset.max(server_mark);
        if start > len {
            // Shipped further than the file now reaches: it was truncated or
            // replaced. Sending it again would duplicate what was sent.
            tracing::error!(
                file = %path.display(),
                shipped = start,
                len,
                "day file is shorter than what was shipped; not shipping it"
            );
            return Ok(report);
        }
        if start == len {
            if local.offset != start || local.inode != inode {
                self.mark(name, inode, start)?;
            }
            return Ok(report);
        }
        let day = day
            .skip_to(start)
            .map_err(|e| Error::io("cannot read day file", path, e))?;
        let mut reader = BufReader::with_capacity(1 << 20, day);
        let host = self.host.clone();
        let client = self.client.clone();
        let capacity = self.cfg.batch_rows * 320;
        let mut currencies = HashMap::new();
        // One insert at a time (their order is what makes the server's
        // offsets exact), but the next batch is parsed while it runs.
        std::thread::scope(|scope| {
            let mut inflight: Option<Inflight<'_>> = None;
            let mut pos = start;
            let mut batch = Vec::with_capacity(capacity);
            let mut batch_rows = 0usize;
            let mut batch_start = start;
            let mut line = Vec::with_capacity(1024);
            loop {
                line.clear();
                let n = reader
                    .read_until(b'\n', &mut line)
                    .map_err(|e| Error::io("cannot read day file", path, e))?;
                // End of file, or a torn tail still being written: stop before it.
                let complete = n > 0 && line.last() == Some(&b'\n');
                if complete {
                    let offset = pos;
                    pos += n as u64;
                    let text = line.trim_ascii();
                    let o = Origin {
                        host: &host,
                        file: name,
                        offset,
                        end_offset: pos,
                    };
                    if text.is_empty() {
                        // A blank line: nothing to send.
                    } else if kind == Lines::Adjustments {
                        match parse_adjustment(text) {
                            Ok(a) => {
                                push_adjustment_row(&mut batch, o, &a);
                                batch_rows += 1;
                            }
                            Err(reason) => {
                                report.skipped_lines += 1;
                                tracing::warn!(file = %path.display(), offset, %reason,
                                    "skipping a line that is not an adjustment (not shipped)");
                            }
                        }
                    } else {
                        match ai_usage_core::dayfile::parse_record(text) {
                            Ok(r) => {
                                let (currency, priced) =
                                    settle_currency(&r, &self.cfg.pricing, &mut currencies);
                                push_row(&mut batch, o, &r, currency, priced);
                                batch_rows += 1;
                            }
                            Err(reason) => {
                                report.skipped_lines += 1;
                                tracing::warn!(file = %path.display(), offset, %reason,
                                    "skipping a line that is not a usage record (not shipped)");
                            }
                        }
                    }
                }
                let full = batch_rows >= self.cfg.batch_rows;
                if (full || !complete) && pos > batch_start {
                    // Nothing after an insert is marked before it is acknowledged.
                    self.settle(&mut inflight, name, inode, &mut report)?;
                    if batch_rows > 0 {
                        let rows = std::mem::replace(&mut batch, Vec::with_capacity(capacity));
                        let query_id = self.query_id(name, batch_start);
                        let client = client.clone();
                        inflight = Some(Inflight {
                            handle: scope.spawn(move || {
                                let (table, columns) = match kind {
                                    Lines::Usage => ("records", record_columns()),
                                    Lines::Adjustments => {
                                        (schema::ADJUSTMENTS_TABLE, schema::ADJUSTMENT_COLUMNS)
                                    }
                                };
                                client.insert_row_binary(table, columns, &query_id, &rows)
                            }),
                            kind,
                            end: pos,
                            rows: batch_rows as u64,
                            bytes: pos - batch_start,
                        });
                    } else {
                        // Only bad lines: nothing to send, but they are done.
                        report.bytes += pos - batch_start;
                        self.mark(name, inode, pos)?;
                    }
                    batch_rows = 0;
                    batch_start = pos;
                }
                if !complete {
                    self.settle(&mut inflight, name, inode, &mut report)?;
                    return Ok(report);
                }
            }
        })
    }

    /// Waits for the insert in flight, then marks its rows as shipped.
    fn settle(
        &self,
        inflight: &mut Option<Inflight<'_>>,
        name: &str,
        inode: u64,
        report: &mut ShipReport,
    ) -> Result<()> {
        let Some(f) = inflight.take() else {
            return Ok(());
        };
        f.handle
            .join()
            .unwrap_or_else(|_| Err(Error::Protocol("the insert thread panicked".into())))?;
        report.batches += 1;
        match f.kind {
            Lines::Usage => report.records += f.rows,
            Lines::Adjustments => report.adjustments += f.rows,
        }
        report.bytes += f.bytes;
        self.mark(name, inode, f.end)
    }

    /// The id of the insert of `name` from `offset`: this host's prefix, so a
    /// later pass can tell whether any of its inserts still runs.
    fn query_id(&self, name: &str, offset: u64) -> String {
        format!(
            "{}{:016x}-{offset}",
            self.query_prefix,
            xxhash_rust::xxh3::xxh3_64(name.as_bytes())
        )
    }

    /// Records an acknowledged offset durably.
    fn mark(&self, name: &str, inode: u64, offset: u64) -> Result<()> {
        if let Some(m) = &mut *self.known_marks() {
            let e = m.entry(name.to_string()).or_insert(0);
            *e = (*e).max(offset);
        }
        // Held while saving: the file is written whole, one lane at a time.
        let mut checkpoint = self.checkpoint();
        checkpoint
            .files
            .insert(name.to_string(), FileMark { inode, offset });
        checkpoint.save(&self.checkpoint_path)
    }
}

/// The xxh3 of a day's first line (without its newline), which names the
/// file among all files shipped under one (host, file name); `None` while
/// the day has no complete line.
fn first_line_fingerprint(path: &Path) -> Result<Option<u64>> {
    let day = match ai_usage_core::dayfile::open_day_file(path) {
        Ok(Some(d)) => d,
        Ok(None) => return Ok(None),
        Err(e) => return Err(Error::io("cannot open day file", path, e)),
    };
    let limit = ai_usage_core::dayfile::MAX_LINE_BYTES as u64 + 2;
    let mut line = Vec::new();
    BufReader::new(day.take(limit))
        .read_until(b'\n', &mut line)
        .map_err(|e| Error::io("cannot read day file", path, e))?;
    if line.last() != Some(&b'\n') {
        return Ok(None);
    }
    line.pop();
    Ok(Some(xxhash_rust::xxh3::xxh3_64(&line)))
}

/// An insert running on its own thread and what it covers.
struct Inflight<'scope> {
    handle: std::thread::ScopedJoinHandle<'scope, Result<()>>,
    kind: Lines,
    end: u64,
    rows: u64,
    bytes: u64,
}

/// What a shipped file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lines {
    /// Usage records (`usage_YYYY-MM-DD.jsonl`), into `records`.
    Usage,
    /// Cost corrections (`adjustments_YYYY-MM-DD.jsonl`), into `adjustments`.
    Adjustments,
}

/// One adjustment line, by the core's format; the reason when it is not one.
fn parse_adjustment(text: &[u8]) -> std::result::Result<Adjustment, String> {
    if text.len() > ai_usage_core::dayfile::MAX_LINE_BYTES {
        return Err("line too long".into());
    }
    let a: Adjustment = serde_json::from_slice(text).map_err(|e| e.to_string())?;
    if !a.timestamp.is_finite() {
        return Err("timestamp is not finite".into());
    }
    Ok(a)
}

pub(crate) fn sleep_unless(stop: &AtomicBool, total: Duration) {
    let until = Instant::now() + total;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= until {
            return;
        }
        std::thread::sleep((until - now).min(Duration::from_millis(100)));
    }
}
