//! Spreadsheet formula neutralising for CSV text cells (OWASP "CSV
//! injection"): a cell that starts with `=`, `+`, `-`, `@`, a tab or a
//! carriage return is read as a formula by Excel, LibreOffice and Sheets,
//! so such a cell gets a leading single quote, which makes it plain text.
//!
//! Only text that came from callers (ids, model and function names, error
//! texts, tags) goes through here; numbers the exporter formats itself are
//! never negative and stay numbers.

use std::borrow::Cow;

/// First characters that make a spreadsheet treat a cell as a formula.
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// `s` with a `'` in front when it would start a formula; unchanged
/// (borrowed) otherwise.
pub fn neutralise_cell(s: &str) -> Cow<'_, str> {
    if s.starts_with(FORMULA_STARTS) {
        Cow::Owned(format!("'{s}"))
    } else {
        Cow::Borrowed(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_starts_get_a_quote() {
        for s in [
            "=HYPERLINK(\"http://x\",\"y\")",
            "+cmd|' /C calc'!A0",
            "-2+3",
            "@SUM(1)",
            "\tx",
            "\rx",
        ] {
            assert_eq!(neutralise_cell(s), format!("'{s}"), "{s:?}");
        }
    }

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        for s in ["qwen-plus", "user_1", "", "a=b", "'=already", "实时分析"] {
            assert!(
                matches!(neutralise_cell(s), Cow::Borrowed(b) if b == s),
                "{s:?}"
            );
        }
    }
}
