//! One usage record as a row of `records`: its stable id, its currency and
//! priced flag settled, written as a TabSeparated line.

use std::collections::HashMap;
use std::io::Write;

use ai_usage_core::{Currency, Money, PricingTable, UsageRecord};

use crate::tsv::{push_array_string, push_escaped};

/// Where a record comes from: the host, its day file and the line's bytes.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// The shipping host's id.
    pub host: &'a str,
    /// The day file's name.
    pub file: &'a str,
    /// Offset of the line's first byte.
    pub offset: u64,
    /// Offset just after the line's `\n`.
    pub end_offset: u64,
}

/// The stable id of a record: a 64-bit hash of host, file name and byte
/// offset. The same line always gets the same id, however often it is sent.
pub fn record_id(host: &str, file: &str, offset: u64) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(host.as_bytes());
    h.update(&[0]);
    h.update(file.as_bytes());
    h.update(&[0]);
    h.update(&offset.to_le_bytes());
    h.digest()
}

/// The currency and priced flag of a stored record: its own fields, else
/// the pricing table's (the seed's files have neither; CNY when unknown).
/// The same rule the core applies on replay; `cache` keeps the table's
/// answer per model.
pub fn settle_currency(
    r: &UsageRecord,
    pricing: &PricingTable,
    cache: &mut HashMap<String, (Currency, bool)>,
) -> (Currency, bool) {
    let (currency, known) = match cache.get(r.model.as_str()) {
        Some(v) => *v,
        None => {
            let v = match pricing.currency_of(&r.model) {
                Some(c) => (c, true),
                None => (Currency::CNY, false),
            };
            cache.insert(r.model.clone(), v);
            v
        }
    };
    (
        r.currency.unwrap_or(currency),
        r.priced.unwrap_or(known || r.cost != Money::ZERO),
    )
}

/// Appends the record as one TabSeparated row in
/// [`RECORD_COLUMNS`](crate::schema::RECORD_COLUMNS) order.
pub fn push_row(
    out: &mut Vec<u8>,
    o: Origin<'_>,
    r: &UsageRecord,
    currency: Currency,
    priced: bool,
) {
    let day = chrono::DateTime::from_timestamp(r.timestamp.floor() as i64, 0)
        .map(|t| t.date_naive())
        .unwrap_or_default();
    let opt = |s: &Option<String>| s.as_deref().unwrap_or("").to_owned();
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{}\t", record_id(o.host, o.file, o.offset));
    push_escaped(out, o.host);
    out.push(b'\t');
    push_escaped(out, o.file);
    let _ = write!(
        out,
        "\t{}\t{}\t{}\t{}\t",
        o.offset,
        o.end_offset,
        day.format("%Y-%m-%d"),
        r.timestamp
    );
    for s in [opt(&r.user_id), opt(&r.anchor_id), opt(&r.session_id)] {
        push_escaped(out, &s);
        out.push(b'\t');
    }
    push_escaped(out, &r.model);
    out.push(b'\t');
    push_escaped(out, &r.function);
    let _ = write!(
        out,
        "\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t",
        r.input_tokens,
        r.output_tokens,
        r.total_tokens,
        r.cached_input_tokens,
        r.reasoning_tokens,
        // Nano-units (the column keeps its old name until its owner renames it).
        r.cost.nanos(),
        currency.code(),
        priced as u8,
        r.success as u8,
        finite(r.duration_ms),
    );
    push_escaped(out, r.error_msg.as_deref().unwrap_or(""));
    out.push(b'\t');
    push_escaped(out, r.request_id.as_deref().unwrap_or(""));
    out.push(b'\t');
    out.push(b'[');
    for (i, t) in r.tags.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_array_string(out, t);
    }
    out.extend_from_slice(b"]\n");
}

fn finite(v: f64) -> f64 {
    if v.is_finite() {
        v
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_distinct() {
        let a = record_id("h1", "usage_2025-10-26.jsonl", 0);
        assert_eq!(a, record_id("h1", "usage_2025-10-26.jsonl", 0));
        assert_ne!(a, record_id("h2", "usage_2025-10-26.jsonl", 0));
        assert_ne!(a, record_id("h1", "usage_2025-10-27.jsonl", 0));
        assert_ne!(a, record_id("h1", "usage_2025-10-26.jsonl", 1));
        // No ambiguity from concatenation.
        assert_ne!(record_id("ab", "c", 0), record_id("a", "bc", 0));
    }

    #[test]
    fn a_row_has_one_field_per_column() {
        let line = br#"{"timestamp": 1761403494.6, "user_id": "4\t2", "model": "qwen-plus", "function": "f", "input_tokens": 3, "output_tokens": 4, "total_tokens": 7, "cost": 0.5, "duration_ms": 1.0, "success": true, "error_msg": null, "tags": ["x'y"]}"#;
        let r = ai_usage_core::dayfile::parse_record(line).unwrap();
        let mut out = Vec::new();
        let o = Origin {
            host: "h",
            file: "f",
            offset: 10,
            end_offset: 20,
        };
        push_row(&mut out, o, &r, Currency::CNY, true);
        let text = String::from_utf8(out).unwrap();
        let columns = crate::schema::RECORD_COLUMNS.split(',').count();
        assert_eq!(text.trim_end_matches('\n').split('\t').count(), columns);
        assert!(text.contains("\t500000000\tCNY\t1\t1\t1\t"), "{text}");
        assert!(
            text.contains("\t2025-10-25\t1761403494.6\t4\\t2\t"),
            "{text}"
        );
    }
}
