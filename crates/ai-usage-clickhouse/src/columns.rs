//! The record's columns of `records`, derived from the core's one table of
//! fields ([`UsageRecord::FIELDS`]): names, ClickHouse types and defaults
//! come from each field's kind, so a field added to the record reaches the
//! DDL, the row writer, the migrations and the reader without an edit here.

use std::sync::OnceLock;

use ai_usage_core::FieldValue;
use ai_usage_core::UsageRecord;

/// One record field as a column of `records`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldColumn {
    /// The column's name: the field's, with `_nanos` for exact money
    /// (billionths of the row's currency).
    pub name: String,
    /// Its ClickHouse type.
    pub sql_type: &'static str,
    /// The value rows written before the column existed take.
    pub default: &'static str,
    /// The expression the records export selects for it.
    pub select: String,
}

/// The columns before the record's own: the line's identity and the
/// partitioning day.
pub const HEAD_COLUMNS: &str = "id, host, file, offset, end_offset, day";

/// The record's columns, in [`UsageRecord::FIELDS`] order.
pub fn field_columns() -> &'static [FieldColumn] {
    static COLUMNS: OnceLock<Vec<FieldColumn>> = OnceLock::new();
    COLUMNS.get_or_init(|| {
        UsageRecord::FIELDS
            .iter()
            .zip(UsageRecord::default().values())
            .map(|(spec, kind)| column_of(spec.name, kind))
            .collect()
    })
}

/// The column a field of this kind is stored in.
fn column_of(field: &str, kind: FieldValue<'_>) -> FieldColumn {
    let (sql_type, default) = match kind {
        FieldValue::Float(_) => ("Float64", "0"),
        FieldValue::Count(_) => ("UInt64", "0"),
        FieldValue::Money(_) => ("Int64", "0"),
        // The row's currency, settled: never empty, never mixed in a sum.
        FieldValue::Currency(_) => ("String", "'CNY'"),
        FieldValue::Flag(_) | FieldValue::OptFlag(_) => ("UInt8", "0"),
        // '' = none.
        FieldValue::Text(_) | FieldValue::OptText(_) => ("String", "''"),
        FieldValue::List(_) => ("Array(String)", "[]"),
    };
    let name = match kind {
        FieldValue::Money(_) => format!("{field}_nanos"),
        _ => field.to_string(),
    };
    let select = match kind {
        // The records export joins a list the way the CSV does.
        FieldValue::List(_) => format!("arrayStringConcat({name}, ';')"),
        _ => name.clone(),
    };
    FieldColumn {
        name,
        sql_type,
        default,
        select,
    }
}

/// Columns of `records` in the order the shipper sends them:
/// [`HEAD_COLUMNS`], then the record's.
pub fn record_columns() -> &'static str {
    static COLUMNS: OnceLock<String> = OnceLock::new();
    COLUMNS.get_or_init(|| {
        let mut s = HEAD_COLUMNS.to_string();
        for c in field_columns() {
            s.push_str(", ");
            s.push_str(&c.name);
        }
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The settled currency and priced flag are written from the shipper's
    /// values by kind: the record holds exactly one field of each.
    #[test]
    fn one_field_of_each_settled_kind() {
        let empty = UsageRecord::default();
        let kinds = empty.values();
        let count = |f: fn(&FieldValue<'_>) -> bool| kinds.iter().filter(|k| f(k)).count();
        assert_eq!(count(|k| matches!(k, FieldValue::Currency(_))), 1);
        assert_eq!(count(|k| matches!(k, FieldValue::OptFlag(_))), 1);
        assert_eq!(count(|k| matches!(k, FieldValue::Money(_))), 1);
    }

    #[test]
    fn columns_follow_the_record_fields() {
        let cols = record_columns();
        assert!(cols.starts_with("id, host, file, offset, end_offset, day, timestamp, "));
        assert!(cols.contains(", cost_nanos, "));
        let n = cols.split(", ").count();
        assert_eq!(n, 6 + UsageRecord::FIELD_COUNT);
        let tags = field_columns()
            .iter()
            .find(|c| c.sql_type == "Array(String)");
        assert_eq!(
            tags.map(|c| c.select.as_str()),
            Some("arrayStringConcat(tags, ';')")
        );
    }
}
