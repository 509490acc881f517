//! ClickHouse's TabSeparated text: unescaping the values of query answers,
//! and quoting string literals in SQL.

use std::borrow::Cow;

use crate::error::{Error, Result};

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

/// Splits a TabSeparated answer into rows of unescaped, owned fields.
pub fn parse_rows(text: &str) -> Result<Vec<Vec<String>>> {
    let mut rows = Vec::new();
    for_each_row(text, |fields| {
        rows.push(fields.iter().map(|f| f.to_string()).collect());
        Ok(())
    })?;
    Ok(rows)
}

/// Calls `each` with the unescaped fields of every row of a TabSeparated
/// answer, in order. A field borrows from `text` unless it held an escape,
/// and one field buffer serves every row: answers of tens of thousands of
/// groups are read without an allocation per field.
pub fn for_each_row<'t>(
    text: &'t str,
    mut each: impl FnMut(&[Cow<'t, str>]) -> Result<()>,
) -> Result<()> {
    let mut fields: Vec<Cow<'t, str>> = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        fields.clear();
        // Most lines hold no escape at all: one byte scan, then plain splits.
        if line.as_bytes().contains(&b'\\') {
            for field in line.split('\t') {
                fields.push(unescape(field)?);
            }
        } else {
            fields.extend(line.split('\t').map(Cow::Borrowed));
        }
        each(&fields)?;
    }
    Ok(())
}

/// One field: `\N` is NULL (read as empty), `\t` `\n` `\\` … are unescaped.
fn unescape(field: &str) -> Result<Cow<'_, str>> {
    if !field.contains('\\') {
        return Ok(Cow::Borrowed(field));
    }
    if field == "\\N" {
        return Ok(Cow::Borrowed(""));
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
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_round_trip() {
        let nasty = "a\tb\nc\\d'e";
        assert_eq!(
            parse_rows("a\\tb\\nc\\\\d'e\n").unwrap(),
            vec![vec![nasty.to_string()]]
        );
        assert_eq!(quote("it's \\"), "'it\\'s \\\\'");
        assert_eq!(
            parse_rows("1\t\\N\n").unwrap(),
            vec![vec!["1".to_string(), String::new()]]
        );
    }

    #[test]
    fn streamed_rows_borrow_plain_fields() {
        let text = "a\tb\\tc\n\nd\t\\N\n";
        let mut seen = Vec::new();
        for_each_row(text, |fields| {
            let borrowed: Vec<bool> = fields
                .iter()
                .map(|f| matches!(f, Cow::Borrowed(_)))
                .collect();
            seen.push((fields.to_vec(), borrowed));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].0, vec!["a", "b\tc"]);
        assert_eq!(seen[0].1, vec![true, false]);
        assert_eq!(seen[1].0, vec!["d", ""]);
        // The callback's error stops the walk.
        let mut calls = 0;
        let r = for_each_row(text, |_| {
            calls += 1;
            Err(Error::Protocol("stop".into()))
        });
        assert!(r.is_err());
        assert_eq!(calls, 1);
    }
}
