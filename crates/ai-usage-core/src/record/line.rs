//! The day-file line writer: a record's JSON object, byte for byte what
//! `serde_json` makes of [`UsageRecord`](super::UsageRecord)'s `Serialize`,
//! written without going through serde.
//!
//! The writer thread formats every record; through serde that cost more
//! than counting the record. Serde writes each key and each string byte by
//! byte through its formatter; here the keys are constants from the field
//! table (`record_table!` generates `UsageRecord::write_json_object` from
//! its rows), a string with nothing to escape is copied whole (others in
//! runs between the escapes), and each value is written by its
//! [`FieldValue`] kind. Numbers still go through
//! `serde_json`'s own formatting (floats: shortest round trip, `null` for
//! NaN and infinities), so they cannot drift from what serde writes.
//!
//! A row's serde attributes decide whether its value is skipped
//! (`skip_serializing_if`); an attribute that would change the bytes in a
//! way this writer does not know (`rename`, `serialize_with`, … on a row,
//! `rename_all`, `tag`, … on the struct) is a compile error, so the table
//! and the writer cannot silently disagree.

use super::value::FieldValue;

/// What `serde_json` writes after a `\` for each byte that must be escaped
/// (0: none). Control characters without a short form get `u` (`\u00XX`).
static ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = b'u';
        b += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0A] = b'n';
    table[0x0C] = b'f';
    table[0x0D] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// Lower-case hex digits, as `serde_json` writes `\u00XX` escapes.
const HEX: &[u8; 16] = b"0123456789abcdef";

/// Every byte of a word set to `b`.
const fn splat(b: u8) -> u64 {
    u64::from_ne_bytes([b; 8])
}

/// True when one of the eight bytes of `w` must be escaped: below 0x20,
/// `"` or `\`. Word-at-a-time ("SWAR") tests, exact as a whole-word yes/no:
/// a byte is below 0x20 when `(w - 0x20·1) & !w & 0x80·1` is non-zero, and
/// equal to `b` when `w ^ b·1` has a zero byte.
#[inline(always)]
fn word_needs_escape(w: u64) -> bool {
    let zero_in = |x: u64| x.wrapping_sub(splat(0x01)) & !x;
    let below_space = w.wrapping_sub(splat(0x20)) & !w;
    let quote = zero_in(w ^ splat(b'"'));
    let backslash = zero_in(w ^ splat(b'\\'));
    (below_space | quote | backslash) & splat(0x80) != 0
}

/// True when `bytes` hold a byte that must be escaped, eight at a time
/// (the whole words, then the last eight bytes, overlapping the words
/// before them; shorter texts padded with a plain letter).
#[inline]
fn needs_escape(bytes: &[u8]) -> bool {
    let (words, rest) = bytes.as_chunks::<8>();
    let mut any = false;
    for w in words {
        any |= word_needs_escape(u64::from_ne_bytes(*w));
    }
    if rest.is_empty() {
        return any;
    }
    let mut last = [b'a'; 8];
    if bytes.len() >= 8 {
        last.copy_from_slice(&bytes[bytes.len() - 8..]);
    } else {
        last[..rest.len()].copy_from_slice(rest);
    }
    any | word_needs_escape(u64::from_ne_bytes(last))
}

/// Appends `s` as a JSON string. A text with nothing to escape (every id
/// a well-behaved caller sends) is copied whole; otherwise runs of bytes
/// that need no escape are copied whole and `"`, `\` and control characters
/// are escaped as `serde_json` escapes them. Everything else (non-ASCII
/// UTF-8 included) is copied as is.
#[inline]
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    if needs_escape(bytes) {
        write_escaped(out, bytes);
    } else {
        out.extend_from_slice(bytes);
    }
    out.push(b'"');
}

/// The contents of a string with something to escape.
#[cold]
fn write_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape = ESCAPE[usize::from(b)];
        if escape == 0 {
            continue;
        }
        out.extend_from_slice(&bytes[run..i]);
        if escape == b'u' {
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xF)],
            ]);
        } else {
            out.extend_from_slice(&[b'\\', escape]);
        }
        run = i + 1;
    }
    out.extend_from_slice(&bytes[run..]);
}

/// Appends a field's key, `"name":`, preceded by the `,` that separates it
/// from the field before (`key` is `,"name":`; the first field written
/// leaves its comma out).
#[inline(always)]
pub(crate) fn write_key(out: &mut Vec<u8>, key: &'static str, first: &mut bool) {
    let key = key.as_bytes();
    out.extend_from_slice(if *first { &key[1..] } else { key });
    *first = false;
}

/// Appends a number exactly as `serde_json` writes it (the same code: a
/// float is its shortest round-trip text, NaN and infinities `null`).
#[inline]
fn write_number<T: serde::Serialize>(out: &mut Vec<u8>, n: &T) -> serde_json::Result<()> {
    serde_json::to_writer(out, n)
}

#[inline]
fn write_opt<T>(
    out: &mut Vec<u8>,
    value: Option<T>,
    write: impl FnOnce(&mut Vec<u8>, T),
) -> serde_json::Result<()> {
    match value {
        Some(v) => write(out, v),
        None => out.extend_from_slice(b"null"),
    }
    Ok(())
}

#[inline]
fn write_flag(out: &mut Vec<u8>, b: bool) {
    out.extend_from_slice(if b { b"true" } else { b"false" });
}

/// Appends one field's value as serde writes its type: `Option`s as the
/// value or `null`, [`Money`](crate::Money) as its exact decimal token, a
/// currency as its code, tags as an array of strings.
///
/// Errors only if `serde_json` refuses a number, which writing into a
/// `Vec` never does.
#[inline(always)]
pub(crate) fn write_value(out: &mut Vec<u8>, value: FieldValue<'_>) -> serde_json::Result<()> {
    match value {
        FieldValue::Float(f) => write_number(out, &f),
        FieldValue::Count(n) => write_number(out, &n),
        FieldValue::Text(s) => {
            write_str(out, s);
            Ok(())
        }
        FieldValue::OptText(s) => write_opt(out, s, write_str),
        FieldValue::Flag(b) => {
            write_flag(out, b);
            Ok(())
        }
        FieldValue::Money(m) => {
            m.write_json(out);
            Ok(())
        }
        FieldValue::Currency(c) => write_opt(out, c, |out, c| write_str(out, c.code())),
        FieldValue::OptFlag(b) => write_opt(out, b, write_flag),
        FieldValue::List(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, item);
            }
            out.push(b']');
            Ok(())
        }
    }
}

/// Whether a row's value is left out of the line: true when one of the
/// row's attributes is `#[serde(skip_serializing_if = "…")]` and its
/// predicate holds. Called by `record_table!` with the row's attributes,
/// each in brackets: `skip_field!(value; [doc = "…"] [serde(default)])`.
///
/// Only the serde attributes this writer knows are accepted; any other
/// (`rename`, `skip_serializing`, `serialize_with`, `flatten`, …) would make
/// serde's line differ from this writer's, so it does not compile.
macro_rules! skip_field {
    // Inside `serde(…)`: the predicate, or what does not change the bytes.
    (@serde $v:ident; [$($rest:tt)*] skip_serializing_if = $pred:tt $($more:tt)*) => {
        $crate::record::line::skip_rule!($pred, $v)
            || $crate::record::line::skip_field!(@serde $v; [$($rest)*] $($more)*)
    };
    (@serde $v:ident; [$($rest:tt)*] default = $path:tt $($more:tt)*) => {
        $crate::record::line::skip_field!(@serde $v; [$($rest)*] $($more)*)
    };
    (@serde $v:ident; [$($rest:tt)*] default $($more:tt)*) => {
        $crate::record::line::skip_field!(@serde $v; [$($rest)*] $($more)*)
    };
    (@serde $v:ident; [$($rest:tt)*] , $($more:tt)*) => {
        $crate::record::line::skip_field!(@serde $v; [$($rest)*] $($more)*)
    };
    (@serde $v:ident; [$($rest:tt)*]) => {
        $crate::record::line::skip_field!($v; $($rest)*)
    };
    (@serde $v:ident; [$($rest:tt)*] $other:tt $($more:tt)*) => {
        compile_error!(concat!(
            "the day-file line writer (record/line.rs) does not know the serde attribute `",
            stringify!($other),
            "`: teach it, or its lines would differ from serde's"
        ))
    };
    // The row's attributes, one by one: docs and other attributes pass.
    ($v:ident;) => {
        false
    };
    ($v:ident; [serde($($inner:tt)*)] $($rest:tt)*) => {
        $crate::record::line::skip_field!(@serde $v; [$($rest)*] $($inner)*)
    };
    ($v:ident; [$($attr:tt)*] $($rest:tt)*) => {
        $crate::record::line::skip_field!($v; $($rest)*)
    };
}

/// What a `skip_serializing_if` predicate of the table means for a value,
/// by kind (the predicates take the field's type, so serde's derive already
/// refuses one on a type it does not fit).
macro_rules! skip_rule {
    ("is_zero", $v:ident) => {
        matches!($v, $crate::record::value::FieldValue::Count(0))
    };
    ("Option::is_none", $v:ident) => {
        matches!(
            $v,
            $crate::record::value::FieldValue::OptText(None)
                | $crate::record::value::FieldValue::Currency(None)
                | $crate::record::value::FieldValue::OptFlag(None)
        )
    };
    ("Vec::is_empty", $v:ident) => {
        matches!($v, $crate::record::value::FieldValue::List([]))
    };
    ($other:tt, $v:ident) => {
        compile_error!(concat!(
            "the day-file line writer (record/line.rs) does not know skip_serializing_if = ",
            stringify!($other),
            ": add it to skip_rule!"
        ))
    };
}

/// Refuses a serde attribute on the record's struct that would change its
/// line (`rename_all`, `tag`, …): the writer knows only the rows' own.
/// Called by `record_table!` with the struct's attributes, each in brackets.
macro_rules! container_attrs {
    (@serde [$($rest:tt)*]) => {
        $crate::record::line::container_attrs!($($rest)*);
    };
    (@serde [$($rest:tt)*] deny_unknown_fields $($more:tt)*) => {
        $crate::record::line::container_attrs!(@serde [$($rest)*] $($more)*);
    };
    (@serde [$($rest:tt)*] , $($more:tt)*) => {
        $crate::record::line::container_attrs!(@serde [$($rest)*] $($more)*);
    };
    (@serde [$($rest:tt)*] $other:tt $($more:tt)*) => {
        compile_error!(concat!(
            "the day-file line writer (record/line.rs) does not know the serde attribute `",
            stringify!($other),
            "` on the record: teach it, or its lines would differ from serde's"
        ));
    };
    () => {};
    ([serde($($inner:tt)*)] $($rest:tt)*) => {
        $crate::record::line::container_attrs!(@serde [$($rest)*] $($inner)*);
    };
    ([$($attr:tt)*] $($rest:tt)*) => {
        $crate::record::line::container_attrs!($($rest)*);
    };
}

pub(crate) use {container_attrs, skip_field, skip_rule};

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::money::{Currency, Money};
    use crate::record::fields::FieldSlot;
    use crate::record::UsageRecord;

    /// serde's bytes for `r`, plus the line's `\n`.
    fn serde_line(r: &UsageRecord) -> Vec<u8> {
        let mut v = serde_json::to_vec(r).unwrap();
        v.push(b'\n');
        v
    }

    fn our_line(r: &UsageRecord) -> Vec<u8> {
        let mut v = Vec::new();
        r.write_line(&mut v);
        v
    }

    #[test]
    fn every_byte_escapes_as_serde_escapes_it() {
        for b in 0u8..=0x7F {
            let s = String::from(char::from(b));
            let mut ours = Vec::new();
            write_str(&mut ours, &s);
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                serde_json::to_string(&s).unwrap(),
                "byte {b:#04x}"
            );
        }
        let mixed = "a\"b\\c\u{1}d\u{1f}\u{7f}é主😀\u{2028}\r\n\t\u{8}\u{c}end";
        let mut ours = Vec::new();
        write_str(&mut ours, mixed);
        assert_eq!(ours, serde_json::to_vec(mixed).unwrap());
    }

    #[test]
    fn a_default_and_a_typical_record_match_serde() {
        let r = UsageRecord::default();
        assert_eq!(our_line(&r), serde_line(&r));
        let r = UsageRecord {
            timestamp: 1_761_403_494.619,
            user_id: Some("user_42".into()),
            session_id: Some("live_20251026_120001".into()),
            model: "qwen-plus".into(),
            function: "实时分析".into(),
            input_tokens: 2716,
            output_tokens: 176,
            total_tokens: 2892,
            cost: Money::from_nanos(3_068_000),
            duration_ms: 3948.119,
            success: false,
            error_msg: Some("上游错误: \"timeout\"\n".into()),
            currency: Currency::new("USD"),
            priced: Some(false),
            tags: vec!["team:live-ops".into(), String::new()],
            cached_input_tokens: 7,
            ..UsageRecord::default()
        };
        let line = our_line(&r);
        assert_eq!(line, serde_line(&r));
        assert_eq!(line.last(), Some(&b'\n'));
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
    }

    /// Lines of the original service's files: read, written again by this
    /// writer, they are serde's bytes and read back to the same record;
    /// and our own lines are a fixed point (write → read → write).
    #[test]
    fn seed_fixture_lines_round_trip() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/seed-records/records");
        let mut lines = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("jsonl") {
                continue;
            }
            for text in std::fs::read_to_string(&path).unwrap().lines() {
                let record: UsageRecord = serde_json::from_str(text).unwrap();
                let ours = our_line(&record);
                assert_eq!(ours, serde_line(&record), "{text}");
                let again: UsageRecord = serde_json::from_slice(&ours).unwrap();
                assert_eq!(again, record, "{text}");
                assert_eq!(our_line(&again), ours, "{text}");
                lines += 1;
            }
        }
        assert!(lines > 500, "the fixture's lines were read ({lines})");
    }

    /// Text with what needs escaping, and what does not: quotes, backslashes,
    /// every control character, DEL, non-ASCII, emoji, line separators.
    fn text() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            4 => any::<char>(),
            2 => "[a-z_0-9]{1,6}".prop_map(|s| s.chars().next().unwrap_or('a')),
            1 => (0u8..0x20).prop_map(char::from),
            1 => prop::sample::select(vec!['"', '\\', '/', '\u{7f}', '主', '😀', '\u{2028}', '\u{feff}']),
        ];
        prop::collection::vec(piece, 0..24).prop_map(String::from_iter)
    }

    fn float() -> impl Strategy<Value = f64> {
        prop_oneof![
            4 => any::<f64>(),
            2 => (1.0e9f64..2.0e9).prop_map(|t| (t * 1e3).round() / 1e3),
            2 => (0.0f64..1e9).prop_map(|t| (t * 1e3).round() / 1e3),
            1 => prop::sample::select(vec![
                0.0, -0.0, 1.0, -1.5, 1e300, -1e300, 1e-300, 5e-324, f64::MAX, f64::MIN,
                f64::MIN_POSITIVE, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e15, 1e16,
                1e21, 1e22, 1e-5, 1e-7, 0.1, 123456789.123,
            ]),
        ]
    }

    fn count() -> impl Strategy<Value = u64> {
        prop_oneof![Just(0u64), 0u64..10_000, any::<u64>()]
    }

    fn money() -> impl Strategy<Value = Money> {
        prop_oneof![
            Just(0i64),
            -1_000_000_000i64..1_000_000_000,
            (0i64..1_000_000).prop_map(|n| n * 1000),
            any::<i64>(),
            prop::sample::select(vec![i64::MIN, i64::MAX, 1, -1, 200]),
        ]
        .prop_map(Money::from_nanos)
    }

    /// What one field is filled from, whatever its kind.
    #[derive(Debug, Clone)]
    struct Material {
        float: f64,
        count: u64,
        text: String,
        present: bool,
        flag: bool,
        money: Money,
        currency: Option<Currency>,
        tags: Vec<String>,
    }

    fn material() -> impl Strategy<Value = Material> {
        (
            float(),
            count(),
            text(),
            any::<bool>(),
            any::<bool>(),
            money(),
            prop::option::of("[A-Za-z]{3}".prop_map(|c| Currency::new(&c))),
            prop::collection::vec(text(), 0..4),
        )
            .prop_map(
                |(float, count, text, present, flag, money, currency, tags)| Material {
                    float,
                    count,
                    text,
                    present,
                    flag,
                    money,
                    currency: currency.flatten(),
                    tags,
                },
            )
    }

    /// A record with every field filled by its kind, through the table's
    /// slots: a field added to the table is covered without touching this.
    fn record() -> impl Strategy<Value = UsageRecord> {
        prop::collection::vec(material(), UsageRecord::FIELD_COUNT).prop_map(|materials| {
            let mut r = UsageRecord::default();
            for (slot, m) in r.slots().into_iter().zip(materials) {
                match slot {
                    FieldSlot::Float(f) => *f = m.float,
                    FieldSlot::Count(c) => *c = m.count,
                    FieldSlot::Text(t) => *t = m.text,
                    FieldSlot::OptText(t) => *t = m.present.then_some(m.text),
                    FieldSlot::Flag(b) => *b = m.flag,
                    FieldSlot::Money(c) => *c = m.money,
                    FieldSlot::Currency(c) => *c = m.currency,
                    FieldSlot::OptFlag(b) => *b = m.present.then_some(m.flag),
                    FieldSlot::List(l) => *l = m.tags,
                }
            }
            r
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// The word-at-a-time test says yes exactly when a byte needs escaping.
        #[test]
        fn the_fast_test_finds_every_byte_to_escape(
            bytes in prop::collection::vec(
                prop_oneof![any::<u8>(), b'a'..=b'z', 0x80u8..=0xFF, Just(b'"'), Just(b'\\')],
                0..40,
            )
        ) {
            let want = bytes.iter().any(|&b| ESCAPE[usize::from(b)] != 0);
            prop_assert_eq!(needs_escape(&bytes), want);
        }

        #[test]
        fn the_line_is_serdes_bytes(r in record()) {
            prop_assert_eq!(
                String::from_utf8(our_line(&r)).unwrap(),
                String::from_utf8(serde_line(&r)).unwrap()
            );
        }

        #[test]
        fn appending_keeps_what_the_buffer_held(r in record(), before in text()) {
            let mut out = before.clone().into_bytes();
            r.write_line(&mut out);
            let mut expected = before.into_bytes();
            expected.extend(serde_line(&r));
            prop_assert_eq!(out, expected);
        }
    }
}
