//! One usage record as a row of `records`: its stable id, its currency and
//! priced flag settled, written as a `RowBinary` row.

use std::collections::HashMap;

use ai_usage_core::adjustments::Adjustment;
use ai_usage_core::FieldValue;
use ai_usage_core::{Currency, PricingTable, UsageRecord};

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

/// The currency and priced flag of a stored record, by the core's rule
/// ([`UsageRecord::stored_currency`]: a seed line without `currency` is
/// CNY); `cache` keeps whether the pricing table knows each model.
pub fn settle_currency(
    r: &UsageRecord,
    pricing: &PricingTable,
    cache: &mut HashMap<String, bool>,
) -> (Currency, bool) {
    let known = match cache.get(r.model.as_str()) {
        Some(k) => *k,
        None => {
            let k = pricing.resolve(&r.model).is_some();
            cache.insert(r.model.clone(), k);
            k
        }
    };
    r.stored_currency(known)
}

/// Appends the record as one `RowBinary` row in
/// [`record_columns`](crate::columns::record_columns) order (the record's
/// fields by kind, the currency and priced flag as settled): little-endian
/// numbers, strings as a LEB128 length and their bytes, `Date` as days since
/// 1970-01-01 (`UInt16`). Nothing to escape or format, so it is cheap to
/// write here and to read for the server (ClickHouse reads `RowBinary`
/// inserts since long before 18.16).
pub fn push_row(
    out: &mut Vec<u8>,
    o: Origin<'_>,
    r: &UsageRecord,
    currency: Currency,
    priced: bool,
) {
    put_u64(out, record_id(o.host, o.file, o.offset));
    put_str(out, o.host);
    put_str(out, o.file);
    put_u64(out, o.offset);
    put_u64(out, o.end_offset);
    out.extend_from_slice(&utc_day(r.timestamp).to_le_bytes());
    for value in r.values() {
        match value {
            FieldValue::Float(f) => out.extend_from_slice(&finite(f).to_le_bytes()),
            FieldValue::Count(n) => put_u64(out, n),
            FieldValue::Text(s) => put_str(out, s),
            FieldValue::OptText(s) => put_str(out, s.unwrap_or("")),
            FieldValue::Flag(b) => out.push(u8::from(b)),
            FieldValue::Money(m) => {
                out.extend_from_slice(&crate::schema::money_to_column(m).to_le_bytes());
            }
            FieldValue::Currency(_) => put_str(out, currency.code()),
            FieldValue::OptFlag(_) => out.push(u8::from(priced)),
            FieldValue::List(items) => {
                put_len(out, items.len());
                for t in items {
                    put_str(out, t);
                }
            }
        }
    }
}

/// Appends an adjustment line as one `RowBinary` row of `adjustments`, in
/// [`ADJUSTMENT_COLUMNS`](crate::schema::ADJUSTMENT_COLUMNS) order; `o` is
/// the adjustment line's own origin (its file is the adjustment file).
pub fn push_adjustment_row(out: &mut Vec<u8>, o: Origin<'_>, a: &Adjustment) {
    put_u64(out, record_id(o.host, o.file, o.offset));
    put_str(out, o.host);
    put_str(out, o.file);
    put_u64(out, o.offset);
    put_u64(out, o.end_offset);
    out.extend_from_slice(&utc_day(a.timestamp).to_le_bytes());
    out.extend_from_slice(&finite(a.timestamp).to_le_bytes());
    put_str(out, &a.file);
    put_u64(out, a.offset);
    put_str(out, a.request_id.as_deref().unwrap_or(""));
    put_str(out, &a.model);
    put_str(out, &a.function);
    put_str(out, a.user_id.as_deref().unwrap_or(""));
    put_str(out, a.anchor_id.as_deref().unwrap_or(""));
    put_str(out, a.session_id.as_deref().unwrap_or(""));
    put_len(out, a.tags.len());
    for t in &a.tags {
        put_str(out, t);
    }
    let money = |out: &mut Vec<u8>, m| {
        out.extend_from_slice(&crate::schema::money_to_column(m).to_le_bytes());
    };
    put_str(out, a.old_currency.code());
    money(out, a.old_cost);
    out.push(u8::from(a.old_priced));
    put_str(out, a.currency.code());
    money(out, a.new_cost);
    put_str(out, &a.price_source);
    put_str(out, &a.corrected_at);
}

/// The `day` column: days since 1970-01-01 of the timestamp's UTC date,
/// within `Date`'s range (1970 … 2149).
fn utc_day(timestamp: f64) -> u16 {
    let days = (timestamp.floor() as i64).div_euclid(86_400);
    days.clamp(0, i64::from(u16::MAX)) as u16
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// A length as `RowBinary` writes it: unsigned LEB128.
fn put_len(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_len(out, s.len());
    out.extend_from_slice(s.as_bytes());
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
    fn a_seed_line_without_currency_ships_as_cny_like_the_core_reads_it() {
        let pricing = PricingTable::builtin();
        let mut cache = HashMap::new();
        // The seed priced OpenAI models in CNY (¥7/$); the table now prices
        // gpt-4o in USD, which must not relabel the stored cost.
        let seed = br#"{"timestamp": 1761403494.6, "model": "gpt-4o", "function": "f", "input_tokens": 3, "output_tokens": 4, "total_tokens": 7, "cost": 0.5, "duration_ms": 1.0, "success": true, "error_msg": null}"#;
        let r = ai_usage_core::dayfile::parse_record(seed).unwrap();
        assert_eq!(pricing.currency_of("gpt-4o"), Some(Currency::USD));
        assert_eq!(
            settle_currency(&r, &pricing, &mut cache),
            (Currency::CNY, true)
        );
        // Our own lines say their currency.
        let ours = br#"{"timestamp": 1761403494.6, "model": "gpt-4o", "function": "f", "input_tokens": 3, "output_tokens": 4, "total_tokens": 7, "cost": 0.5, "duration_ms": 1.0, "success": true, "error_msg": null, "currency": "USD", "priced": true}"#;
        let r = ai_usage_core::dayfile::parse_record(ours).unwrap();
        assert_eq!(
            settle_currency(&r, &pricing, &mut cache),
            (Currency::USD, true)
        );
        // An unknown model's ¥0 seed line is unpriced.
        let unknown = br#"{"timestamp": 1761403494.6, "model": "no-such-model", "function": "f", "input_tokens": 3, "output_tokens": 4, "total_tokens": 7, "cost": 0, "duration_ms": 1.0, "success": true, "error_msg": null}"#;
        let r = ai_usage_core::dayfile::parse_record(unknown).unwrap();
        assert_eq!(
            settle_currency(&r, &pricing, &mut cache),
            (Currency::CNY, false)
        );
    }

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
    fn a_row_is_laid_out_as_rowbinary() {
        let line = br#"{"timestamp": 1761403494.6, "user_id": "4\t2", "model": "qwen-plus", "function": "f", "input_tokens": 3, "output_tokens": 4, "total_tokens": 7, "cost": 0.5, "duration_ms": 1.0, "success": true, "error_msg": null, "tags": ["x'y"], "provider": "dashscope", "cache_write_tokens": 1, "input_audio_tokens": 2, "output_audio_tokens": 3}"#;
        let r = ai_usage_core::dayfile::parse_record(line).unwrap();
        let mut out = Vec::new();
        let o = Origin {
            host: "h",
            file: "f",
            offset: 10,
            end_offset: 20,
        };
        push_row(&mut out, o, &r, Currency::CNY, true);
        let mut want = Vec::new();
        want.extend_from_slice(&record_id("h", "f", 10).to_le_bytes());
        want.extend_from_slice(b"\x01h\x01f");
        want.extend_from_slice(&10u64.to_le_bytes());
        want.extend_from_slice(&20u64.to_le_bytes());
        want.extend_from_slice(&20386u16.to_le_bytes()); // 2025-10-25
        want.extend_from_slice(&1761403494.6f64.to_le_bytes());
        // The record's fields in their table's order.
        want.extend_from_slice(b"\x034\t2\x00\x00\x09qwen-plus\x01f");
        for n in [3u64, 4, 7] {
            want.extend_from_slice(&n.to_le_bytes());
        }
        want.extend_from_slice(&500_000_000i64.to_le_bytes());
        want.extend_from_slice(&1.0f64.to_le_bytes());
        want.extend_from_slice(b"\x01\x00"); // success, no error
        for n in [0u64, 0] {
            want.extend_from_slice(&n.to_le_bytes()); // cached, reasoning
        }
        want.extend_from_slice(b"\x03CNY\x01\x00\x01\x03x'y"); // priced, no request id, tags
        for n in [1u64, 2, 0, 3] {
            want.extend_from_slice(&n.to_le_bytes()); // cache write, audio in, cached, out
        }
        want.extend_from_slice(b"\x09dashscope");
        assert_eq!(out, want);
    }

    #[test]
    fn lengths_are_leb128_and_days_stay_in_range() {
        let mut out = Vec::new();
        put_len(&mut out, 300);
        assert_eq!(out, [0xac, 0x02]);
        assert_eq!(utc_day(-5.0), 0);
        assert_eq!(utc_day(86_400.0 * 1e6), u16::MAX);
    }
}
