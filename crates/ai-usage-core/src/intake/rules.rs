//! The intake rules: the one check every door applies to an event before it
//! is counted (HTTP, the CLI, Python, the Rust validating calls), and the
//! repairs the never-failing [`UsageMonitor::record`](crate::UsageMonitor::record)
//! makes instead of refusing.

use crate::money::Money;
use crate::record::{RecordError, UsageEvent, MAX_DURATION_MS, MAX_TOKENS_PER_CALL};

/// Longest id, model, function, provider or tag accepted (bytes), at every
/// door (ingest, the library, the CLI and the `/session/{id}` route).
pub const MAX_ID_LEN: usize = 256;
/// Longest error message accepted (bytes).
pub const MAX_ERROR_LEN: usize = 4096;
/// Most tags on one record.
pub const MAX_TAGS: usize = 32;
/// How far ahead of the clock a timestamp may be (clock skew), in seconds.
pub const MAX_FUTURE_SECS: f64 = 3600.0;
/// Days of history a validated timestamp may reach back when no monitor
/// says otherwise: the default retention window, so an accepted record is
/// never one that a restart's replay would leave out.
pub const DEFAULT_PAST_DAYS: u32 = 93;

/// The timestamps an event may carry: from `earliest` to `latest`, epoch
/// seconds. Anchored to the clock, never to the records seen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeWindow {
    /// Oldest accepted timestamp.
    pub earliest: f64,
    /// Newest accepted timestamp (now + [`MAX_FUTURE_SECS`]).
    pub latest: f64,
}

impl TimeWindow {
    /// The window around `now` reaching `past_days - 1` whole days back (so
    /// an accepted timestamp falls on one of the `past_days` local days a
    /// retention window of that length replays) and [`MAX_FUTURE_SECS`] ahead.
    pub fn around(now: f64, past_days: u32) -> TimeWindow {
        TimeWindow {
            earliest: now - f64::from(past_days.max(1) - 1) * 86_400.0,
            latest: now + MAX_FUTURE_SECS,
        }
    }

    /// The default window around the current clock.
    pub fn now() -> TimeWindow {
        TimeWindow::around(crate::zone::now_timestamp(), DEFAULT_PAST_DAYS)
    }

    /// True when `t` is a finite timestamp inside the window.
    pub fn contains(&self, t: f64) -> bool {
        t.is_finite() && t >= self.earliest && t <= self.latest
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> RecordError {
    RecordError::Invalid {
        field,
        message: message.into(),
    }
}

/// Every byte of a word set to `b`.
const fn splat(b: u8) -> u64 {
    u64::from_ne_bytes([b; 8])
}

/// True when one of the eight bytes of `w` may begin a control character:
/// below 0x20 (C0), 0x7F (DEL) or 0xC2 (the lead byte of the C1 range).
/// Word-at-a-time ("SWAR") tests, exact as a whole-word yes/no: a byte is
/// below `n` (n ≤ 0x80) when `(w - n·1) & !w & 0x80·1` is non-zero, and
/// equal to `b` when `w ^ b·1` has a zero byte.
fn word_suspect(w: u64) -> bool {
    let below_space = w.wrapping_sub(splat(0x20)) & !w;
    let zero_in = |x: u64| x.wrapping_sub(splat(0x01)) & !x;
    let del = zero_in(w ^ splat(0x7F));
    let c1_lead = zero_in(w ^ splat(0xC2));
    (below_space | del | c1_lead) & splat(0x80) != 0
}

/// True when `s` holds a byte that can begin a control character; false
/// means it has none (the answer for every id a well-behaved caller sends).
#[inline]
fn may_hold_control(s: &str) -> bool {
    let b = s.as_bytes();
    let n = b.len();
    let word = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[i..i + 8]);
        u64::from_ne_bytes(w)
    };
    let half = |i: usize| {
        let mut w = [0u8; 4];
        w.copy_from_slice(&b[i..i + 4]);
        u64::from(u32::from_ne_bytes(w))
    };
    if n >= 8 {
        // Whole words, then the last eight bytes (overlapping the words
        // before them: a byte tested twice is still the same byte).
        let mut any = false;
        let mut i = 0;
        while i + 8 <= n {
            any |= word_suspect(word(i));
            i += 8;
        }
        any | word_suspect(word(n - 8))
    } else if n >= 4 {
        word_suspect(half(0) | (half(n - 4) << 32))
    } else if n > 0 {
        // One to three bytes: the first, middle and last, with spaces (never
        // suspect) in the other five places.
        let w = u64::from_le_bytes([b[0], b[n / 2], b[n - 1], b' ', b' ', b' ', b' ', b' ']);
        word_suspect(w)
    } else {
        false
    }
}

/// The first control character's code in `s`, if any (ESC, CR, LF, NUL, …).
fn control_char(s: &str) -> Option<u32> {
    // Fast path (every recorded id passes here), eight bytes at a time: it
    // is on `record`'s path, for every id of every call.
    if !may_hold_control(s) {
        return None;
    }
    s.chars().find(|c| c.is_control()).map(u32::from)
}

/// An id-like text: at most [`MAX_ID_LEN`] bytes, no control characters.
#[inline]
fn check_id(field: &'static str, s: &str) -> Result<(), RecordError> {
    if s.len() <= MAX_ID_LEN && !may_hold_control(s) {
        return Ok(());
    }
    check_id_slow(field, s)
}

/// [`check_id`] for a text that may break the rule: which part it breaks.
#[cold]
fn check_id_slow(field: &'static str, s: &str) -> Result<(), RecordError> {
    if s.len() > MAX_ID_LEN {
        return Err(invalid(
            field,
            format!("longer than {MAX_ID_LEN} bytes ({} bytes)", s.len()),
        ));
    }
    if let Some(c) = control_char(s) {
        return Err(invalid(
            field,
            format!("must not contain control characters (found U+{c:04X})"),
        ));
    }
    Ok(())
}

/// True when `s` is empty or only white space (a visible ASCII first byte,
/// the common case, answers without decoding).
fn blank(s: &str) -> bool {
    !s.as_bytes().first().is_some_and(u8::is_ascii_graphic) && s.trim().is_empty()
}

/// The id rule for a value given apart from an event (e.g. the id in
/// `/session/{id}`): 1 to [`MAX_ID_LEN`] bytes, no control characters.
pub fn check_id_text(field: &'static str, s: &str) -> Result<(), RecordError> {
    if s.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    check_id(field, s)
}

/// Every intake rule, in one place; the first broken one is named.
///
/// - token counts at most [`MAX_TOKENS_PER_CALL`], their parts within their
///   wholes ([`TokenUsage::inconsistency`](crate::TokenUsage::inconsistency));
/// - `duration_ms` finite, in `0..=`[`MAX_DURATION_MS`];
/// - a given `timestamp` inside `window` (epoch seconds: milliseconds are
///   far in the future and refused);
/// - an explicit `cost` not negative;
/// - `model` and `function` non-empty; ids, model, function, provider and
///   tags at most [`MAX_ID_LEN`] bytes without control characters; at most
///   [`MAX_TAGS`] tags; `error_msg` at most [`MAX_ERROR_LEN`] bytes.
pub fn check(ev: &UsageEvent<'_>, window: TimeWindow) -> Result<(), RecordError> {
    let u = &ev.usage;
    // One comparison of the largest count; the field is named only when
    // one is out of range.
    let largest = u.largest_count();
    if largest > MAX_TOKENS_PER_CALL {
        if let Some((field, value)) = u
            .named_counts()
            .into_iter()
            .find(|&(_, v)| v > MAX_TOKENS_PER_CALL)
        {
            return Err(RecordError::TooManyTokens {
                field,
                value,
                limit: MAX_TOKENS_PER_CALL,
            });
        }
    }
    if let Some((field, message)) = u.inconsistency() {
        return Err(invalid(field, message));
    }
    let d = ev.duration_ms;
    if !(d.is_finite() && (0.0..=MAX_DURATION_MS).contains(&d)) {
        return Err(RecordError::OutOfRange {
            field: "duration_ms",
            value: d,
            limit: MAX_DURATION_MS,
        });
    }
    if let Some(t) = ev.timestamp {
        if !(t.is_finite() && t > 0.0) {
            return Err(RecordError::OutOfRange {
                field: "timestamp",
                value: t,
                limit: f64::MAX,
            });
        }
        if !window.contains(t) {
            return Err(RecordError::Timestamp {
                value: t,
                earliest: window.earliest,
                latest: window.latest,
            });
        }
    }
    if let Some(c) = ev.cost {
        if c < Money::ZERO {
            return Err(invalid("cost", format!("must not be negative, got {c}")));
        }
    }
    if ev.currency.is_some() && ev.cost.is_none() {
        return Err(invalid("currency", "only allowed together with cost"));
    }
    if blank(ev.model) {
        return Err(invalid("model", "must not be empty"));
    }
    check_id("model", ev.model)?;
    if blank(ev.function) {
        return Err(invalid("function", "must not be empty"));
    }
    check_id("function", ev.function)?;
    let ids = [
        ("user_id", ev.user_id),
        ("anchor_id", ev.anchor_id),
        ("session_id", ev.session_id),
        ("request_id", ev.request_id),
        ("provider", ev.provider),
    ];
    for (field, v) in ids {
        if let Some(v) = v {
            check_id(field, v)?;
        }
    }
    if ev.tags.len() > MAX_TAGS {
        return Err(invalid(
            "tags",
            format!("{} tags; at most {MAX_TAGS} are accepted", ev.tags.len()),
        ));
    }
    for t in ev.tags {
        check_id("tags", t)?;
    }
    if let Some(e) = ev.error_msg {
        if e.len() > MAX_ERROR_LEN {
            return Err(invalid(
                "error_msg",
                format!("longer than {MAX_ERROR_LEN} bytes ({} bytes)", e.len()),
            ));
        }
    }
    Ok(())
}

/// The intake rules on a Rust event (defined here, beside the rules, so
/// that the record module does not depend on intake).
impl UsageEvent<'_> {
    /// Checks the intake rules ([`check`]) with timestamps
    /// limited to the default window around the clock (the default
    /// retention window back, one hour ahead). The first field out of range
    /// is named in the error. A monitor's own validating calls use its
    /// retention window instead ([`crate::UsageMonitor::validate`]).
    pub fn validate(&self) -> Result<(), RecordError> {
        check(self, TimeWindow::now())
    }
}

/// `s` cut to at most `max` bytes at a character boundary (how the
/// never-failing `record` stores an over-long id or error message).
pub(crate) fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The word-at-a-time scan agrees with a byte-by-byte one for every
    /// byte value at every position of texts up to three words long.
    #[test]
    fn word_scan_finds_every_suspect_byte() {
        let suspect = |b: u8| b < 0x20 || b == 0x7F || b == 0xC2;
        for len in 1..=24usize {
            for pos in 0..len {
                for b in 0..=u8::MAX {
                    let mut bytes = vec![b'a'; len];
                    bytes[pos] = b;
                    // Bytes that are not UTF-8 alone are scanned as bytes.
                    let s = String::from_utf8_lossy(&bytes).into_owned();
                    let expected = s.bytes().any(suspect);
                    assert_eq!(
                        may_hold_control(&s),
                        expected,
                        "byte {b:#04x} at {pos} of {len}"
                    );
                }
            }
        }
        assert!(!may_hold_control(""));
        assert!(!may_hold_control("实时分析 user_42 ~"));
        assert_eq!(control_char("a\u{85}b"), Some(0x85));
        assert_eq!(control_char("abcdefgh\u{1b}"), Some(0x1B));
        assert_eq!(control_char("abcdefgh\u{7f}"), Some(0x7F));
        assert_eq!(
            control_char("©b"),
            None,
            "0xC2 also begins ©: checked, then passed"
        );
    }

    #[test]
    fn blank_means_empty_or_white_space() {
        assert!(blank(""));
        assert!(blank(" \t\u{3000}"));
        assert!(!blank("qwen"));
        assert!(!blank(" 问答 "));
    }
}
