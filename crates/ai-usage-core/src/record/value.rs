//! A record field's value by kind: what the field table hands every door
//! (CSV, ClickHouse, Python, the line writer). Its own module so the line
//! writer can read values without depending on the table that calls it.

use crate::money::{Currency, Money};

/// One field's value, borrowed from a record, by the kind of its type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldValue<'a> {
    /// A float (`timestamp`, `duration_ms`).
    Float(f64),
    /// A token count.
    Count(u64),
    /// A text that is always present (`model`, `function`).
    Text(&'a str),
    /// A text that may be absent (ids, `error_msg`, `provider`).
    OptText(Option<&'a str>),
    /// A flag (`success`).
    Flag(bool),
    /// An exact amount (`cost`).
    Money(Money),
    /// The record's own currency, absent in the original's lines.
    Currency(Option<Currency>),
    /// A flag written only when it says something (`priced`).
    OptFlag(Option<bool>),
    /// A list of labels (`tags`).
    List(&'a [String]),
}
