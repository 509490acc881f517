//! ClickHouse's TabSeparated text: escaping values we send, unescaping
//! values we read, and quoting string literals in SQL.

use crate::error::{Error, Result};

/// Appends `s` escaped for a TabSeparated field.
pub fn push_escaped(out: &mut Vec<u8>, s: &str) {
    for &b in s.as_bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            0 => out.extend_from_slice(b"\\0"),
            _ => out.push(b),
        }
    }
}

/// Appends `s` as a quoted string inside an array field (`'a\'b'`), itself
/// TabSeparated-escaped.
pub fn push_array_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'\'');
    for &b in s.as_bytes() {
        match b {
            // Inside a TSV field an array element's backslash is escaped twice:
            // once for the quoted literal, once for the field.
            b'\\' => out.extend_from_slice(b"\\\\\\\\"),
            b'\'' => out.extend_from_slice(b"\\\\'"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            0 => out.extend_from_slice(b"\\0"),
            _ => out.push(b),
        }
    }
    out.push(b'\'');
}

/// A SQL string literal: `'…'` with `\` and `'` escaped.
pub fn quote(s: &str) -> String {
    let mut q = String::with_capacity(s.len() + 2);
    q.push('\'');
    for c in s.chars() {
        match c {
            '\\' => q.push_str("\\\\"),
            '\'' => q.push_str("\\'"),
            '\n' => q.push_str("\\n"),
            '\t' => q.push_str("\\t"),
            '\r' => q.push_str("\\r"),
            '\0' => q.push_str("\\0"),
            c => q.push(c),
        }
    }
    q.push('\'');
    q
}

/// Splits a TabSeparated answer into rows of unescaped fields.
pub fn parse_rows(text: &str) -> Result<Vec<Vec<String>>> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|line| line.split('\t').map(unescape).collect())
        .collect()
}

/// One field: `\N` is NULL (read as empty), `\t` `\n` `\\` … are unescaped.
fn unescape(field: &str) -> Result<String> {
    if !field.contains('\\') {
        return Ok(field.to_string());
    }
    if field == "\\N" {
        return Ok(String::new());
    }
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let next = chars
            .next()
            .ok_or_else(|| Error::Protocol(format!("dangling escape in {field:?}")))?;
        out.push(match next {
            't' => '\t',
            'n' => '\n',
            'r' => '\r',
            '0' => '\0',
            'b' => '\u{8}',
            'f' => '\u{c}',
            other => other,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_round_trip() {
        let nasty = "a\tb\nc\\d'e";
        let mut out = Vec::new();
        push_escaped(&mut out, nasty);
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains('\t') && !text.contains('\n'));
        assert_eq!(parse_rows(&text).unwrap(), vec![vec![nasty.to_string()]]);
        assert_eq!(quote("it's \\"), "'it\\'s \\\\'");
        assert_eq!(
            parse_rows("1\t\\N\n").unwrap(),
            vec![vec!["1".to_string(), String::new()]]
        );
    }
}
