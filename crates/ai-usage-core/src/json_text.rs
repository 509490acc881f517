//! JSON text whose numbers are plain decimals: floats are written as their
//! shortest round-trip decimal without an exponent (`0.0000002`, not `2e-7`).
//!
//! [`Money`](crate::Money) writes its own exact number token; this covers the
//! amounts that pass through a [`serde_json::Value`] (which holds numbers as
//! `f64`) on their way out, such as the server's compatibility views, so a
//! $0.0000002 call reads the same everywhere.

use std::io;

use serde::Serialize;
use serde_json::ser::{CompactFormatter, Formatter, PrettyFormatter};

/// A [`Formatter`] that writes `f64`/`f32` without exponents and keeps
/// everything else to the wrapped formatter (compact or pretty).
#[derive(Debug, Clone, Default)]
pub struct PlainFloats<F>(pub F);

impl<F: Formatter> Formatter for PlainFloats<F> {
    fn write_f64<W: ?Sized + io::Write>(&mut self, w: &mut W, value: f64) -> io::Result<()> {
        // `Display` of a float is its shortest round-trip decimal, never in
        // exponent form; `.0` keeps whole amounts recognisably floats.
        let text = value.to_string();
        w.write_all(text.as_bytes())?;
        if !text.contains('.') {
            w.write_all(b".0")?;
        }
        Ok(())
    }

    fn write_f32<W: ?Sized + io::Write>(&mut self, w: &mut W, value: f32) -> io::Result<()> {
        self.write_f64(w, f64::from(value))
    }

    fn begin_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn end_object_key<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object_key(w)
    }
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object_value(w)
    }
}

fn write<T: Serialize + ?Sized, F: Formatter>(v: &T, f: F) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(256);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PlainFloats(f));
    v.serialize(&mut ser)?;
    Ok(out)
}

/// Compact JSON bytes with plain-decimal numbers.
pub fn to_vec<T: Serialize + ?Sized>(v: &T) -> serde_json::Result<Vec<u8>> {
    write(v, CompactFormatter)
}

/// Indented JSON bytes with plain-decimal numbers.
pub fn to_vec_pretty<T: Serialize + ?Sized>(v: &T) -> serde_json::Result<Vec<u8>> {
    write(v, PrettyFormatter::new())
}

/// Compact JSON text with plain-decimal numbers.
pub fn to_string<T: Serialize + ?Sized>(v: &T) -> serde_json::Result<String> {
    // serde_json writes UTF-8 only.
    to_vec(v).map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// Indented JSON text with plain-decimal numbers.
pub fn to_string_pretty<T: Serialize + ?Sized>(v: &T) -> serde_json::Result<String> {
    to_vec_pretty(v).map(|b| String::from_utf8_lossy(&b).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Money;

    #[test]
    fn floats_are_plain_decimals() {
        let v = serde_json::json!({
            "tiny": 2e-7, "whole": 3.0, "pct": 12.34, "n": 7, "neg": -0.000006,
            "money": Money::from_nanos(200), "nested": [1e-9, f64::NAN]
        });
        assert_eq!(
            to_string(&v).unwrap(),
            r#"{"money":0.0000002,"n":7,"neg":-0.000006,"nested":[0.000000001,null],"pct":12.34,"tiny":0.0000002,"whole":3.0}"#
        );
        let pretty = to_string_pretty(&serde_json::json!({"a": [2e-7]})).unwrap();
        assert_eq!(pretty, "{\n  \"a\": [\n    0.0000002\n  ]\n}");
    }

    #[test]
    fn money_stays_exact_when_serialised_directly() {
        let m = Money::from_nanos(1_234_567_890_123_456_789);
        assert_eq!(to_string(&m).unwrap(), "1234567890.123456789");
    }
}
