//! Human output: tables and amounts.

use std::borrow::Cow;
use std::fmt;
use std::io::Write;

use ai_usage_core::GroupSummary;
use ai_usage_core::{Costs, Currency, Money};
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{CellAlignment, ContentArrangement, Table};

use crate::{CliError, CliResult};

/// Writes `args` and a newline to stdout (what [`outln!`] expands to). A
/// reader that closed the pipe gives [`CliError::closed_stdout`]; any other
/// write failure is an ordinary error, never a panic as in `println!`.
pub fn stdout_line(args: std::fmt::Arguments<'_>) -> CliResult {
    let mut out = std::io::stdout().lock();
    out.write_fmt(args)
        .and_then(|()| out.write_all(b"\n"))
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::BrokenPipe => CliError::closed_stdout(),
            _ => CliError::failed(format!("cannot write to stdout: {e}")),
        })
}

/// An amount with its currency symbol, as [`amount`] writes it: `¥29.5200`,
/// `$0.00000020`.
pub fn money(m: Money, c: Currency) -> String {
    format!("{}{}", c.symbol(), amount(m))
}

/// Significant digits kept for an amount too small for 4 decimals.
const TINY_SIGNIFICANT_DIGITS: u32 = 2;

/// The one rule for money in human output: 4 decimals (rounded half away
/// from zero), so columns line up; an amount that would round to zero at 4
/// decimals keeps 2 significant digits instead (`0.0000002` →
/// `0.00000020`), so a small cost never shows as zero. `--json` prints the
/// exact amount instead.
pub fn amount(m: Money) -> String {
    let rounded = m.round_dp(4);
    if rounded != Money::ZERO || m == Money::ZERO {
        return format!("{rounded:.4}");
    }
    // |m| < 0.00005: decimals up to the second significant digit (at most
    // the 9 that nano-units hold).
    let digits = m.nanos().unsigned_abs().to_string().len() as u32;
    let decimals = (9 + TINY_SIGNIFICANT_DIGITS).saturating_sub(digits).min(9);
    format!("{:.*}", decimals as usize, m.round_dp(decimals))
}

/// The exact amount, with at least 4 decimals (`0.0500`, `0.000075`): for
/// the price of one call (`cost`), where rounding would hide the answer.
pub fn exact_amount(m: Money) -> String {
    let exact = format!("{m:.9}");
    let trimmed = exact.trim_end_matches('0');
    let decimals = trimmed.split_once('.').map_or(0, |(_, d)| d.len());
    if decimals >= 4 {
        trimmed.to_string()
    } else {
        format!("{m:.4}")
    }
}

/// Every currency of `costs`, never added together: `¥1.2000 + $0.0300`.
pub fn costs(costs: &Costs, fallback: Currency) -> String {
    let mut v: Vec<(Currency, Money)> = costs.iter().collect();
    if v.is_empty() {
        return money(Money::ZERO, fallback);
    }
    v.sort_by_key(|(c, _)| *c);
    v.iter()
        .map(|(c, m)| money(*m, *c))
        .collect::<Vec<_>>()
        .join(" + ")
}

/// Thousands separators: `1234567` → `1,234,567`.
pub fn int(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// `s` with every control character (C0, DEL, C1, line and paragraph
/// separators, bidi overrides) written as an escape (`\u{1b}`, `\r`), so
/// that recorded ids cannot move the cursor, recolour or rewrite the
/// terminal, or break a table's rows.
pub fn printable(s: &str) -> Cow<'_, str> {
    fn unsafe_char(c: char) -> bool {
        c.is_control()
            || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    }
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if unsafe_char(c) => out.extend(c.escape_unicode()),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A terminal table whose cells are always [`printable`]: every row goes
/// through [`TextTable::add_row`], so no command can print a raw id.
pub struct TextTable(Table);

impl TextTable {
    /// Adds a row, escaping control characters in every cell.
    pub fn add_row(&mut self, cells: Vec<String>) -> &mut TextTable {
        self.0.add_row(
            cells
                .iter()
                .map(|c| printable(c).into_owned())
                .collect::<Vec<_>>(),
        );
        self
    }

    /// Adds a row whose cells are lists of lines: each line is escaped like
    /// [`TextTable::add_row`]'s cells, and the lines of one cell are shown
    /// one under the other (a deliberate break, never one from an id).
    pub fn add_row_of_lines(&mut self, cells: Vec<Vec<String>>) -> &mut TextTable {
        self.0.add_row(
            cells
                .iter()
                .map(|lines| {
                    lines
                        .iter()
                        .map(|l| printable(l).into_owned())
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .collect::<Vec<_>>(),
        );
        self
    }
}

impl fmt::Display for TextTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A table with a header; columns listed in `right` are right-aligned.
pub fn table(header: &[&str], right: &[usize]) -> TextTable {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    for &i in right {
        if let Some(col) = t.column_mut(i) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    TextTable(t)
}

/// Rows `(name, group)` as a table sorted by cost, then calls.
pub fn groups_table<'a>(
    title_col: &str,
    rows: impl Iterator<Item = (&'a String, &'a GroupSummary)>,
    limit: usize,
) -> Option<TextTable> {
    let mut v: Vec<(&String, &GroupSummary)> = rows.collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| {
        b.1.cost
            .cmp(&a.1.cost)
            .then(b.1.calls.cmp(&a.1.calls))
            .then(a.0.cmp(b.0))
    });
    // Display names exist for models only; other groups skip the column.
    let named = v.iter().any(|(_, g)| g.display_name.is_some());
    let mut header = vec![title_col];
    if named {
        header.push("名称 name");
    }
    header.extend(["调用 calls", "Token", "费用 cost", "平均 avg/call"]);
    let right: Vec<usize> = (header.len() - 4..header.len()).collect();
    let mut t = table(&header, &right);
    for (name, g) in v.into_iter().take(limit) {
        let avg = g
            .cost
            .mul_div(1, g.calls.max(1) as i64)
            .unwrap_or(Money::ZERO);
        let mut row = vec![name.clone()];
        if named {
            row.push(g.display_name.clone().unwrap_or_default());
        }
        row.extend([
            int(g.calls),
            int(g.total_tokens),
            costs(&g.costs, g.currency),
            money(avg, g.currency),
        ]);
        t.add_row(row);
    }
    Some(t)
}

/// Local time of an epoch timestamp in the zone, `YYYY-MM-DD HH:MM:SS`.
pub fn local_time(zone: &ai_usage_core::Zone, ts: f64) -> String {
    zone.local(ts).format("%Y-%m-%d %H:%M:%S").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(int(0), "0");
        assert_eq!(int(972000), "972,000");
        assert_eq!(int(1234567), "1,234,567");
        assert_eq!(money("29.52".parse().unwrap(), Currency::CNY), "¥29.5200");
        let mut c = Costs::default();
        c.add(Currency::USD, "0.03".parse().unwrap());
        c.add(Currency::CNY, "1.2".parse().unwrap());
        assert_eq!(costs(&c, Currency::CNY), "¥1.2000 + $0.0300");
    }

    #[test]
    fn money_has_four_decimals_or_two_significant_digits() {
        let m = |s: &str| amount(s.parse().unwrap());
        // Long amounts are rounded to 4 decimals, never printed with 9.
        assert_eq!(m("36.270737"), "36.2707");
        assert_eq!(m("894.318250136"), "894.3183");
        assert_eq!(m("8.743558488"), "8.7436");
        assert_eq!(m("50"), "50.0000");
        assert_eq!(m("0.0036107"), "0.0036");
        assert_eq!(m("0"), "0.0000");
        assert_eq!(m("-1.23456"), "-1.2346");
        // Amounts that 4 decimals would show as zero keep 2 significant digits.
        assert_eq!(m("0.0000002"), "0.00000020");
        assert_eq!(m("0.000012345"), "0.000012");
        assert_eq!(m("0.00004999"), "0.000050");
        assert_eq!(m("0.000000001"), "0.000000001");
        assert_eq!(m("-0.0000123"), "-0.000012");
        assert_eq!(money("0.00005".parse().unwrap(), Currency::USD), "$0.0001");
    }

    #[test]
    fn exact_amounts_keep_every_digit() {
        let m = |s: &str| exact_amount(s.parse().unwrap());
        assert_eq!(m("0.05"), "0.0500");
        assert_eq!(m("0.000075"), "0.000075");
        assert_eq!(m("0.001125"), "0.001125");
        assert_eq!(m("3"), "3.0000");
        assert_eq!(m("894.318250136"), "894.318250136");
    }

    #[test]
    fn control_characters_are_escaped_in_cells() {
        assert_eq!(printable("u1"), "u1");
        assert_eq!(printable("a\u{1b}[2Jb\rc"), "a\\u{1b}[2Jb\\rc");
        assert_eq!(printable("x\u{202e}y\u{85}"), "x\\u{202e}y\\u{85}");
        let mut t = table(&["id"], &[]);
        t.add_row(vec!["evil\u{1b}]0;title\u{7}\r\nnext".to_string()]);
        let shown = t.to_string();
        assert!(
            !shown.chars().any(|c| c.is_control() && c != '\n'),
            "{shown:?}"
        );
        assert!(
            shown.contains("evil\\u{1b}]0;title\\u{7}\\r\\nnext"),
            "{shown}"
        );
    }
}
