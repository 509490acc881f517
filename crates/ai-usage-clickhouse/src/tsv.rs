//! ClickHouse's TabSeparated text: unescaping the values of query answers,
//! and quoting string literals in SQL.

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
}
