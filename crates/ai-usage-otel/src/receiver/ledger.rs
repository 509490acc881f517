//! Exactly once: the spans already recorded, by trace id + span id.
//!
//! The key lives in the record itself, as the tag `otel.span:<trace>/<span>`
//! (hex), so it reaches the disk in the same line, under the same fsync, as
//! the call it guards: there is no second file that a crash could leave
//! out of step. In memory the keys are held in generations of
//! [`GENERATION_SECS`]; the [`GENERATIONS`] newest are kept, so a key is
//! remembered for at least 24 h. After a restart the ledger is rebuilt on
//! the first export from the day files that can hold the last 24 h.

use std::collections::VecDeque;
use std::path::Path;

use ai_usage_core::{dayfile, now_timestamp, Zone};
use parking_lot::Mutex;
use rustc_hash::FxHashSet;

/// The tag prefix under which a record keeps its span's key: the ledger
/// reads these back from the day files after a restart.
pub const SPAN_TAG_PREFIX: &str = "otel.span:";

/// A span's key: trace id (16 bytes) then span id (8 bytes).
pub type SpanKey = [u8; 24];

/// Length of one generation of keys (12 h).
pub const GENERATION_SECS: f64 = 12.0 * 3600.0;
/// Generations kept: keys live from 24 h to 36 h.
pub const GENERATIONS: usize = 3;
/// How far back the day files are read on start-up (24 h and a margin).
pub const REMEMBER_SECS: f64 = 25.0 * 3600.0;

/// The key of a span from its raw ids, or `None` for ids of the wrong
/// length or all zero (the spec's invalid ids).
pub fn key_of(trace_id: &[u8], span_id: &[u8]) -> Option<SpanKey> {
    if trace_id.len() != 16 || span_id.len() != 8 {
        return None;
    }
    if trace_id.iter().all(|b| *b == 0) || span_id.iter().all(|b| *b == 0) {
        return None;
    }
    let mut key = [0u8; 24];
    key[..16].copy_from_slice(trace_id);
    key[16..].copy_from_slice(span_id);
    Some(key)
}

/// The tag text of a key (`<32 hex>/<16 hex>` after the prefix).
pub fn key_text(key: &SpanKey) -> String {
    format!(
        "{}/{}",
        const_hex::encode(&key[..16]),
        const_hex::encode(&key[16..])
    )
}

/// The key a record's tag holds, if it is a span tag.
pub fn key_from_tag(tag: &str) -> Option<SpanKey> {
    let rest = tag.strip_prefix(SPAN_TAG_PREFIX)?;
    let (trace, span) = rest.split_once('/')?;
    let trace = const_hex::decode(trace).ok()?;
    let span = const_hex::decode(span).ok()?;
    key_of(&trace, &span)
}

/// Whether a span may be recorded now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Not seen: now held for this request.
    New,
    /// Already recorded: skip it.
    Recorded,
    /// Another request is recording it right now.
    InFlight,
}

#[derive(Default)]
struct State {
    loaded: bool,
    /// Newest first, each with the time it began.
    generations: VecDeque<(f64, FxHashSet<SpanKey>)>,
    in_flight: FxHashSet<SpanKey>,
}

impl State {
    fn rotate(&mut self, now: f64) {
        let fresh = self
            .generations
            .front()
            .is_some_and(|(start, _)| now - start < GENERATION_SECS);
        if !fresh {
            self.generations.push_front((now, FxHashSet::default()));
            self.generations.truncate(GENERATIONS);
        }
    }

    fn recorded(&self, key: &SpanKey) -> bool {
        self.generations.iter().any(|(_, g)| g.contains(key))
    }

    fn remember(&mut self, key: SpanKey) {
        if let Some((_, g)) = self.generations.front_mut() {
            g.insert(key);
        }
    }
}

/// The spans recorded recently, and those being recorded.
#[derive(Default)]
pub struct SpanLedger {
    state: Mutex<State>,
}

impl std::fmt::Debug for SpanLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.state.lock();
        f.debug_struct("SpanLedger")
            .field("loaded", &s.loaded)
            .field(
                "keys",
                &s.generations.iter().map(|(_, g)| g.len()).sum::<usize>(),
            )
            .field("in_flight", &s.in_flight.len())
            .finish()
    }
}

impl SpanLedger {
    /// An empty ledger; [`SpanLedger::load_once`] fills it from the disk.
    pub fn new() -> SpanLedger {
        SpanLedger::default()
    }

    /// On the first call only: reads the span keys of the day files that
    /// can hold the last 24 h (in `zone`'s days). Later calls return at once.
    pub fn load_once(&self, dir: &Path, zone: Zone) {
        if self.state.lock().loaded {
            return;
        }
        let now = now_timestamp();
        let from = zone.date_of(now - REMEMBER_SECS);
        let mut keys = FxHashSet::default();
        match dayfile::list_day_files(dir) {
            Ok(files) => {
                for (date, path) in files.into_iter().filter(|(d, _)| *d >= from) {
                    let read = dayfile::read_day_file(&path, |r| {
                        keys.extend(r.tags.iter().filter_map(|t| key_from_tag(t)));
                    });
                    if let Err(e) = read {
                        tracing::warn!(%date, error = %e, "cannot read a day file for recorded span ids");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot list the day files for recorded span ids"),
        }
        let mut s = self.state.lock();
        if !s.loaded {
            s.loaded = true;
            s.rotate(now);
            tracing::info!(
                spans = keys.len(),
                "span ids recorded in the last 24 h read from the day files"
            );
            for k in keys {
                s.remember(k);
            }
        }
    }

    /// Claims each key: `New` ones are held until [`SpanLedger::settle`].
    pub fn claim(&self, keys: &[SpanKey]) -> Vec<Claim> {
        let mut s = self.state.lock();
        s.rotate(now_timestamp());
        // A span twice in one request is one call: the second is a repeat.
        let mut mine = FxHashSet::default();
        keys.iter()
            .map(|k| {
                if s.recorded(k) || mine.contains(k) {
                    Claim::Recorded
                } else if !s.in_flight.insert(*k) {
                    Claim::InFlight
                } else {
                    mine.insert(*k);
                    Claim::New
                }
            })
            .collect()
    }

    /// Ends the hold on `keys`: remembered as recorded when `recorded`,
    /// else free to be sent again.
    pub fn settle(&self, keys: &[SpanKey], recorded: bool) {
        let mut s = self.state.lock();
        for k in keys {
            s.in_flight.remove(k);
            if recorded {
                s.remember(*k);
            }
        }
    }

    /// Keys remembered (all generations).
    pub fn len(&self) -> usize {
        self.state
            .lock()
            .generations
            .iter()
            .map(|(_, g)| g.len())
            .sum()
    }

    /// True when no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> SpanKey {
        let mut k = [n; 24];
        k[0] = 1;
        k
    }

    #[test]
    fn tag_round_trip() {
        let k = key(7);
        let tag = format!("{SPAN_TAG_PREFIX}{}", key_text(&k));
        assert_eq!(key_from_tag(&tag), Some(k));
        assert_eq!(key_from_tag("otel.span:zz/00"), None);
        assert_eq!(key_from_tag("team:a"), None);
        assert_eq!(key_of(&[0; 16], &[1; 8]), None);
        assert_eq!(key_of(&[1; 15], &[1; 8]), None);
    }

    #[test]
    fn claims_hold_and_settle() {
        let l = SpanLedger::new();
        let (a, b) = (key(1), key(2));
        assert_eq!(l.claim(&[a, b]), vec![Claim::New, Claim::New]);
        assert_eq!(l.claim(&[a]), vec![Claim::InFlight]);
        l.settle(&[a], true);
        l.settle(&[b], false);
        assert_eq!(l.claim(&[a, b]), vec![Claim::Recorded, Claim::New]);
        assert_eq!(l.len(), 1);
        l.settle(&[b], false);
        let c = key(3);
        assert_eq!(
            l.claim(&[c, c]),
            vec![Claim::New, Claim::Recorded],
            "a span twice in one request"
        );
    }

    #[test]
    fn old_generations_are_dropped() {
        let mut s = State::default();
        s.rotate(0.0);
        s.remember(key(1));
        s.rotate(GENERATION_SECS);
        s.rotate(2.0 * GENERATION_SECS);
        assert!(s.recorded(&key(1)), "kept for at least 24 h");
        s.rotate(3.0 * GENERATION_SECS);
        assert!(!s.recorded(&key(1)), "dropped after 36 h");
    }
}
