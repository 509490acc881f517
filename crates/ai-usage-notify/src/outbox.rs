//! The durable outbox: every alert to send is written to
//! `DIR/alert-outbox.jsonl` and synced to disk before the first attempt,
//! and what became of it (sent, or failed for good) is appended after, so
//! a restart resumes exactly the deliveries still pending.
//!
//! One line per event, JSON:
//! - `{"op":"queued","id":…,"channel":…,"at":…,"message":{…}}`: an alert
//!   to deliver to one channel. `id` is the alert's idempotency key (budget,
//!   scope, period, threshold), so (`id`, `channel`) is entered once, ever:
//!   an alert fired again (a restart, a second fleet decision) is dropped.
//! - `{"op":"queued_digest","id":…,"channel":…,"at":…,"digest":{…}}`: a
//!   scheduled digest for one channel; `id` is the period's key, so a
//!   period's digest is entered once per channel, ever.
//! - `{"op":"sent","id":…,"channel":…,"at":…,"attempts":…}`
//! - `{"op":"failed","id":…,"channel":…,"at":…,"attempts":…,"error":…,"configuration":…}`:
//!   a configuration error (a 4xx other than 429, a refused signature), or
//!   retries given up. `error` is the redacted text of [`crate::SendError`].
//!
//! A line torn by a crash is skipped when the file is read (only the last
//! one can be: each line is written with one `write` and synced).
//! Settled entries older than [`KEEP_SETTLED`] are dropped when the file
//! is opened.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::digest::DigestMessage;
use crate::message::AlertMessage;
use crate::notice::Notice;

/// File name of the outbox inside the records directory.
pub const OUTBOX_FILE: &str = "alert-outbox.jsonl";

/// How long a sent or failed entry is kept (its key still blocks a second
/// delivery of the same alert meanwhile): longer than any budget period.
pub const KEEP_SETTLED: Duration = Duration::from_secs(62 * 24 * 3600);

/// An outbox cannot be read or written.
#[derive(Debug, thiserror::Error)]
#[error("alert outbox {path}: {action}: {source}")]
pub struct OutboxError {
    /// The outbox file.
    pub path: PathBuf,
    /// What failed.
    pub action: &'static str,
    /// The I/O error.
    #[source]
    pub source: std::io::Error,
}

/// One line of the outbox file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Line {
    Queued {
        id: String,
        channel: String,
        at: f64,
        message: AlertMessage,
    },
    QueuedDigest {
        id: String,
        channel: String,
        at: f64,
        digest: Box<DigestMessage>,
    },
    Sent {
        id: String,
        channel: String,
        at: f64,
        attempts: u32,
    },
    Failed {
        id: String,
        channel: String,
        at: f64,
        attempts: u32,
        error: String,
        configuration: bool,
    },
}

/// Where one delivery stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum DeliveryState {
    /// Not delivered yet (being tried, or waiting for its next attempt).
    Pending,
    /// Delivered.
    Sent {
        /// When (epoch seconds).
        at: f64,
        /// Attempts it took.
        attempts: u32,
    },
    /// Not delivered, for good.
    Failed {
        /// When it was given up (epoch seconds).
        at: f64,
        /// Attempts made.
        attempts: u32,
        /// Why (redacted: no secret, no credential of the URL).
        error: String,
        /// True for a configuration error a person must fix; false when
        /// retries ran out.
        configuration: bool,
    },
}

/// One alert for one channel.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delivery {
    /// The idempotency key ([`AlertMessage::id`], [`DigestMessage::id`]).
    pub id: String,
    /// The channel's name (a key of the `"notify"` map).
    pub channel: String,
    /// When it was queued (epoch seconds).
    pub queued_at: f64,
    /// What is sent.
    pub message: Notice,
    /// Where it stands.
    pub state: DeliveryState,
}

/// Counts of the outbox's entries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OutboxCounts {
    /// Waiting for delivery.
    pub pending: usize,
    /// Delivered.
    pub sent: usize,
    /// Failed for good.
    pub failed: usize,
}

struct Inner {
    file: File,
    /// By (id, channel).
    entries: BTreeMap<(String, String), Delivery>,
}

/// The outbox of one records directory. One process at a time delivers
/// from it (the one running the notifier, e.g. `ai-usage serve`).
pub struct Outbox {
    path: PathBuf,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("path", &self.path)
            .field("counts", &self.counts())
            .finish()
    }
}

fn now_secs() -> f64 {
    ai_usage_core::now_timestamp()
}

impl Outbox {
    /// The outbox file of records directory `dir`.
    pub fn path_in(dir: &Path) -> PathBuf {
        dir.join(OUTBOX_FILE)
    }

    /// Opens (or creates) the outbox of records directory `dir` and reads
    /// what it holds.
    pub fn open(dir: &Path) -> Result<Outbox, OutboxError> {
        let path = Outbox::path_in(dir);
        let err = |action, source| OutboxError {
            path: path.clone(),
            action,
            source,
        };
        let mut entries = BTreeMap::new();
        let mut settled_old = false;
        match File::open(&path) {
            Ok(f) => {
                let cutoff = now_secs() - KEEP_SETTLED.as_secs_f64();
                for (n, line) in BufReader::new(f).split(b'\n').enumerate() {
                    let line = line.map_err(|e| err("cannot read", e))?;
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    match serde_json::from_slice::<Line>(&line) {
                        Ok(l) => apply(&mut entries, l),
                        Err(e) => tracing::warn!(
                            file = %path.display(),
                            line = n + 1,
                            error = %e,
                            "alert outbox: unreadable line skipped (torn by a crash?)"
                        ),
                    }
                }
                entries.retain(|_, d: &mut Delivery| {
                    let old = d.state != DeliveryState::Pending && d.queued_at < cutoff;
                    settled_old |= old;
                    !old
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(err("cannot open", e)),
        }
        if settled_old {
            rewrite(&path, &entries).map_err(|e| err("cannot compact", e))?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&path)
            .map_err(|e| err("cannot open", e))?;
        // A torn last line must not swallow the next one.
        let len = file
            .seek(std::io::SeekFrom::End(0))
            .map_err(|e| err("cannot open", e))?;
        if len > 0 && !ends_with_newline(&path, len).map_err(|e| err("cannot read", e))? {
            file.write_all(b"\n").map_err(|e| err("cannot write", e))?;
        }
        Ok(Outbox {
            path,
            inner: Mutex::new(Inner { file, entries }),
        })
    }

    /// The outbox file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Enters `message` for `channel`, on disk (synced) before it returns.
    /// False when this alert was already entered for this channel (pending,
    /// sent or failed): an alert is delivered once per channel, ever.
    pub fn enqueue(&self, channel: &str, message: &AlertMessage) -> Result<bool, OutboxError> {
        self.enqueue_notice(channel, &Notice::Alert(message.clone()))
    }

    /// Enters an alert or a digest for `channel`, as [`Outbox::enqueue`].
    pub fn enqueue_notice(&self, channel: &str, notice: &Notice) -> Result<bool, OutboxError> {
        let mut inner = self.inner.lock();
        let key = (notice.id().to_string(), channel.to_string());
        if inner.entries.contains_key(&key) {
            return Ok(false);
        }
        let line = queued_line(channel, now_secs(), notice);
        self.append(&mut inner.file, &line)?;
        apply(&mut inner.entries, line);
        Ok(true)
    }

    /// True when (`id`, `channel`) was entered (pending, sent or failed).
    pub fn contains(&self, id: &str, channel: &str) -> bool {
        self.inner
            .lock()
            .entries
            .contains_key(&(id.to_string(), channel.to_string()))
    }

    /// Records that (`id`, `channel`) was delivered after `attempts`.
    pub fn mark_sent(&self, id: &str, channel: &str, attempts: u32) -> Result<(), OutboxError> {
        self.settle(Line::Sent {
            id: id.to_string(),
            channel: channel.to_string(),
            at: now_secs(),
            attempts,
        })
    }

    /// Records that (`id`, `channel`) failed for good.
    pub fn mark_failed(
        &self,
        id: &str,
        channel: &str,
        attempts: u32,
        error: &str,
        configuration: bool,
    ) -> Result<(), OutboxError> {
        self.settle(Line::Failed {
            id: id.to_string(),
            channel: channel.to_string(),
            at: now_secs(),
            attempts,
            error: error.to_string(),
            configuration,
        })
    }

    fn settle(&self, line: Line) -> Result<(), OutboxError> {
        let mut inner = self.inner.lock();
        self.append(&mut inner.file, &line)?;
        apply(&mut inner.entries, line);
        Ok(())
    }

    /// One line, written with one call and synced.
    fn append(&self, file: &mut File, line: &Line) -> Result<(), OutboxError> {
        let err = |action, source| OutboxError {
            path: self.path.clone(),
            action,
            source,
        };
        let mut bytes =
            serde_json::to_vec(line).map_err(|e| err("cannot encode", std::io::Error::other(e)))?;
        bytes.push(b'\n');
        file.write_all(&bytes).map_err(|e| err("cannot write", e))?;
        file.sync_data().map_err(|e| err("cannot sync", e))
    }

    /// The deliveries still pending, oldest first.
    pub fn pending(&self) -> Vec<Delivery> {
        let mut out: Vec<Delivery> = self
            .inner
            .lock()
            .entries
            .values()
            .filter(|d| d.state == DeliveryState::Pending)
            .cloned()
            .collect();
        out.sort_by(|a, b| a.queued_at.total_cmp(&b.queued_at));
        out
    }

    /// Every entry kept, oldest first.
    pub fn entries(&self) -> Vec<Delivery> {
        let mut out: Vec<Delivery> = self.inner.lock().entries.values().cloned().collect();
        out.sort_by(|a, b| a.queued_at.total_cmp(&b.queued_at));
        out
    }

    /// How many entries are pending, sent and failed.
    pub fn counts(&self) -> OutboxCounts {
        count(self.inner.lock().entries.values())
    }
}

/// Counts of `entries` by state.
pub fn count<'a>(entries: impl Iterator<Item = &'a Delivery>) -> OutboxCounts {
    let mut c = OutboxCounts::default();
    for d in entries {
        match d.state {
            DeliveryState::Pending => c.pending += 1,
            DeliveryState::Sent { .. } => c.sent += 1,
            DeliveryState::Failed { .. } => c.failed += 1,
        }
    }
    c
}

/// Reads an outbox without opening it for delivery (e.g. `ai-usage
/// budgets` showing configuration errors): empty when there is none.
pub fn read_entries(dir: &Path) -> Result<Vec<Delivery>, OutboxError> {
    let path = Outbox::path_in(dir);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(OutboxError {
                path,
                action: "cannot read",
                source,
            })
        }
    };
    let mut entries = BTreeMap::new();
    for line in text.split(|b| *b == b'\n') {
        if let Ok(l) = serde_json::from_slice::<Line>(line) {
            apply(&mut entries, l);
        }
    }
    let mut out: Vec<Delivery> = entries.into_values().collect();
    out.sort_by(|a, b| a.queued_at.total_cmp(&b.queued_at));
    Ok(out)
}

fn apply(entries: &mut BTreeMap<(String, String), Delivery>, line: Line) {
    match line {
        Line::Queued {
            id,
            channel,
            at,
            message,
        } => {
            entries
                .entry((id.clone(), channel.clone()))
                .or_insert(Delivery {
                    id,
                    channel,
                    queued_at: at,
                    message: Notice::Alert(message),
                    state: DeliveryState::Pending,
                });
        }
        Line::QueuedDigest {
            id,
            channel,
            at,
            digest,
        } => {
            entries
                .entry((id.clone(), channel.clone()))
                .or_insert(Delivery {
                    id,
                    channel,
                    queued_at: at,
                    message: Notice::Digest(digest),
                    state: DeliveryState::Pending,
                });
        }
        Line::Sent {
            id,
            channel,
            at,
            attempts,
        } => {
            if let Some(d) = entries.get_mut(&(id, channel)) {
                d.state = DeliveryState::Sent { at, attempts };
            }
        }
        Line::Failed {
            id,
            channel,
            at,
            attempts,
            error,
            configuration,
        } => {
            if let Some(d) = entries.get_mut(&(id, channel)) {
                d.state = DeliveryState::Failed {
                    at,
                    attempts,
                    error,
                    configuration,
                };
            }
        }
    }
}

/// The lines that give `entries` again.
fn lines_of(d: &Delivery) -> Vec<Line> {
    let mut lines = vec![queued_line(&d.channel, d.queued_at, &d.message)];
    match &d.state {
        DeliveryState::Pending => {}
        DeliveryState::Sent { at, attempts } => lines.push(Line::Sent {
            id: d.id.clone(),
            channel: d.channel.clone(),
            at: *at,
            attempts: *attempts,
        }),
        DeliveryState::Failed {
            at,
            attempts,
            error,
            configuration,
        } => lines.push(Line::Failed {
            id: d.id.clone(),
            channel: d.channel.clone(),
            at: *at,
            attempts: *attempts,
            error: error.clone(),
            configuration: *configuration,
        }),
    }
    lines
}

/// The line entering `notice` for `channel` at `at`.
fn queued_line(channel: &str, at: f64, notice: &Notice) -> Line {
    match notice {
        Notice::Alert(message) => Line::Queued {
            id: message.id.clone(),
            channel: channel.to_string(),
            at,
            message: message.clone(),
        },
        Notice::Digest(digest) => Line::QueuedDigest {
            id: digest.id.clone(),
            channel: channel.to_string(),
            at,
            digest: digest.clone(),
        },
    }
}

/// Replaces the file with `entries` (a synced temporary file renamed over
/// it, so a crash leaves the old or the new one).
fn rewrite(path: &Path, entries: &BTreeMap<(String, String), Delivery>) -> std::io::Result<()> {
    let tmp = path.with_extension("jsonl.tmp");
    {
        let mut f = File::create(&tmp)?;
        let mut buf = Vec::new();
        for d in entries.values() {
            for l in lines_of(d) {
                serde_json::to_writer(&mut buf, &l).map_err(std::io::Error::other)?;
                buf.push(b'\n');
            }
        }
        f.write_all(&buf)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(parent) = path.parent() {
        // The rename itself must survive a crash.
        if let Ok(d) = File::open(parent) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

fn ends_with_newline(path: &Path, len: u64) -> std::io::Result<bool> {
    use std::io::Read;
    let mut f = File::open(path)?;
    f.seek(std::io::SeekFrom::Start(len - 1))?;
    let mut last = [0u8; 1];
    f.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::AlertScope;
    use ai_usage_core::{BudgetPeriod, Currency};

    fn message(threshold: u32) -> AlertMessage {
        AlertMessage::new(
            "daily",
            AlertScope::Global,
            BudgetPeriod::Daily,
            "2026-12-07",
            threshold,
            "40".parse().unwrap(),
            "50".parse().unwrap(),
            Currency::CNY,
            chrono::DateTime::parse_from_rfc3339("2026-12-07T14:03:05+08:00").unwrap(),
        )
    }

    #[test]
    fn an_alert_is_entered_once_per_channel_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let o = Outbox::open(dir.path()).unwrap();
        assert!(o.enqueue("ops", &message(80)).unwrap());
        assert!(!o.enqueue("ops", &message(80)).unwrap());
        assert!(o.enqueue("dev", &message(80)).unwrap());
        assert!(o.enqueue("ops", &message(100)).unwrap());
        o.mark_sent(&message(80).id, "ops", 3).unwrap();
        o.mark_failed(&message(80).id, "dev", 1, "HTTP 404", true)
            .unwrap();
        drop(o);
        let o = Outbox::open(dir.path()).unwrap();
        assert_eq!(
            o.counts(),
            OutboxCounts {
                pending: 1,
                sent: 1,
                failed: 1
            }
        );
        let pending = o.pending();
        assert_eq!(pending[0].message, Notice::Alert(message(100)));
        // Still entered: never a second time, even after a restart.
        assert!(!o.enqueue("ops", &message(80)).unwrap());
        assert_eq!(read_entries(dir.path()).unwrap().len(), 3);
    }

    #[test]
    fn amounts_keep_every_nano_unit_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let exact: ai_usage_core::Money = "12345678.123456789".parse().unwrap();
        let mut m = message(80);
        m.spent = exact;
        m = m.with_projection(exact);
        let o = Outbox::open(dir.path()).unwrap();
        o.enqueue("ops", &m).unwrap();
        drop(o);
        let o = Outbox::open(dir.path()).unwrap();
        assert_eq!(o.pending()[0].message, Notice::Alert(m.clone()));
        // Lines written with JSON numbers (an older outbox) still read.
        let old = r#"{"op":"queued","id":"x","channel":"ops","at":1.0,"message":{"id":"x","budget":"b","scope":{"kind":"global"},"period":"daily","period_label":"2026-12-07","threshold":80,"spent":40.5,"limit":50.0,"currency":"CNY","projected_month":null,"time":"2026-12-07T14:03:05+08:00","public_url":null}}"#;
        let lines: Line = serde_json::from_str(old).unwrap();
        let Line::Queued { message, .. } = lines else {
            panic!("a queued line")
        };
        assert_eq!(message.spent, "40.5".parse().unwrap());
    }

    #[test]
    fn a_torn_last_line_is_skipped_and_does_not_swallow_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let o = Outbox::open(dir.path()).unwrap();
        o.enqueue("ops", &message(80)).unwrap();
        drop(o);
        let path = Outbox::path_in(dir.path());
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"op":"queued","id":"x","chan"#).unwrap();
        drop(f);
        let o = Outbox::open(dir.path()).unwrap();
        assert_eq!(o.pending().len(), 1);
        o.enqueue("ops", &message(100)).unwrap();
        drop(o);
        let o = Outbox::open(dir.path()).unwrap();
        assert_eq!(o.pending().len(), 2);
    }

    #[test]
    fn old_settled_entries_are_dropped_pending_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let old = now_secs() - KEEP_SETTLED.as_secs_f64() - 10.0;
        let lines = [
            Line::Queued {
                id: "a".into(),
                channel: "ops".into(),
                at: old,
                message: message(80),
            },
            Line::Sent {
                id: "a".into(),
                channel: "ops".into(),
                at: old,
                attempts: 1,
            },
            Line::Queued {
                id: "b".into(),
                channel: "ops".into(),
                at: old,
                message: message(100),
            },
        ];
        let text: String = lines
            .iter()
            .map(|l| serde_json::to_string(l).unwrap() + "\n")
            .collect();
        std::fs::write(Outbox::path_in(dir.path()), text).unwrap();
        let o = Outbox::open(dir.path()).unwrap();
        let e = o.entries();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].id, "b");
        let on_disk = std::fs::read_to_string(Outbox::path_in(dir.path())).unwrap();
        assert_eq!(on_disk.lines().count(), 1);
    }
}
