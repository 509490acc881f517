//! The record's fields, declared once.
//!
//! [`UsageRecord`](super::UsageRecord) is written by one table (in
//! `record/mod.rs`) through the `record_table!` macro: each row is a field
//! with its docs, serde attributes, type and CSV column. From that table
//! come the struct (so the day-file line is serde's, byte for byte), the
//! list of fields ([`FIELDS`](super::UsageRecord::FIELDS)), borrowed
//! values and slots by field ([`UsageRecord::values`](super::UsageRecord::values),
//! [`UsageRecord::slots`](super::UsageRecord::slots)) and the writer's
//! slot reuse ([`UsageRecord::copy_into`](super::UsageRecord::copy_into))
//! and the day-file line writer ([`UsageRecord::write_line`](super::UsageRecord::write_line):
//! each row's key as a constant, its value by kind, its serde
//! `skip_serializing_if` honoured; see `record/line.rs`).
//! Every door walks those instead of naming fields: the CSV export, the
//! ClickHouse row writer, schema and reader, and Python's attributes.
//!
//! Why a `macro_rules!` table: it needs no new dependency (a derive would
//! bring a proc-macro crate and `syn` into the core), it emits plain code
//! the compiler checks (a field's type picks its [`FieldValue`] kind
//! through [`RecordField`], so a new type that no door can handle does not
//! compile), and it costs nothing at run time. Serde introspection alone
//! (what the intake uses for its keys) gives names, not values or slots.

use crate::money::{Currency, Money};

pub use super::value::FieldValue;

/// One field of a record to fill in, by the kind of its type.
#[derive(Debug)]
pub enum FieldSlot<'a> {
    /// A float.
    Float(&'a mut f64),
    /// A token count.
    Count(&'a mut u64),
    /// A text that is always present.
    Text(&'a mut String),
    /// A text that may be absent.
    OptText(&'a mut Option<String>),
    /// A flag.
    Flag(&'a mut bool),
    /// An exact amount.
    Money(&'a mut Money),
    /// The record's own currency.
    Currency(&'a mut Option<Currency>),
    /// A flag that may be absent.
    OptFlag(&'a mut Option<bool>),
    /// A list of labels.
    List(&'a mut Vec<String>),
}

/// A type a record field may have: how it is seen and filled by kind.
pub trait RecordField {
    /// The value, borrowed.
    fn value(&self) -> FieldValue<'_>;
    /// The place to fill in.
    fn slot(&mut self) -> FieldSlot<'_>;
}

/// Implements [`RecordField`] for a type and the kind it maps to.
macro_rules! record_field_kind {
    ($($ty:ty => $kind:ident, |$v:ident| $value:expr;)*) => {$(
        impl RecordField for $ty {
            fn value(&self) -> FieldValue<'_> {
                let $v = self;
                FieldValue::$kind($value)
            }
            fn slot(&mut self) -> FieldSlot<'_> {
                FieldSlot::$kind(self)
            }
        }
    )*};
}

record_field_kind! {
    f64 => Float, |v| *v;
    u64 => Count, |v| *v;
    String => Text, |v| v.as_str();
    Option<String> => OptText, |v| v.as_deref();
    bool => Flag, |v| *v;
    Money => Money, |v| *v;
    Option<Currency> => Currency, |v| *v;
    Option<bool> => OptFlag, |v| *v;
    Vec<String> => List, |v| v.as_slice();
}

/// Where a field goes in the records CSV export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CsvColumn {
    /// The column's position (0-based). Positions no field takes are the
    /// export's derived columns (`local_time`).
    pub position: usize,
    /// Decimals of a float (epoch seconds to the millisecond, durations to
    /// a tenth of a millisecond); 0 for other kinds.
    pub decimals: usize,
}

/// A field in the records CSV export at `position`.
pub const fn csv(position: usize) -> Option<CsvColumn> {
    Some(CsvColumn {
        position,
        decimals: 0,
    })
}

/// A float field in the records CSV export at `position`, with `decimals`.
pub const fn csv_decimals(position: usize, decimals: usize) -> Option<CsvColumn> {
    Some(CsvColumn { position, decimals })
}

/// A field the records CSV export leaves out.
pub const NOT_IN_CSV: Option<CsvColumn> = None;

/// What the table says about one field besides its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpec {
    /// The field's name: its JSON key, CSV header, ClickHouse column (money
    /// columns add their unit) and Python attribute.
    pub name: &'static str,
    /// Its records CSV column, if exported.
    pub csv: Option<CsvColumn>,
}

/// Declares [`UsageRecord`](super::UsageRecord) from its table of fields:
/// the struct with each row's attributes, and what every door walks.
macro_rules! record_table {
    (
        $(#[$($struct_attr:tt)*])*
        pub struct $record:ident {
            $(
                $(#[$($attr:tt)*])*
                $name:ident : $ty:ty => $csv:expr,
            )*
        }
    ) => {
        $crate::record::line::container_attrs!($([$($struct_attr)*])*);

        $(#[$($struct_attr)*])*
        pub struct $record {
            $(
                $(#[$($attr)*])*
                pub $name: $ty,
            )*
        }

        impl $record {
            /// Every field, in the order of the day-file line.
            pub const FIELDS: &'static [$crate::record::fields::FieldSpec] = &[$(
                $crate::record::fields::FieldSpec { name: stringify!($name), csv: $csv },
            )*];

            /// Number of fields.
            pub const FIELD_COUNT: usize = [$(stringify!($name)),*].len();

            /// Every field's value, in [`Self::FIELDS`] order.
            pub fn values(&self) -> [$crate::record::fields::FieldValue<'_>; Self::FIELD_COUNT] {
                [$($crate::record::fields::RecordField::value(&self.$name)),*]
            }

            /// Every field's slot to fill in, in [`Self::FIELDS`] order.
            pub fn slots(&mut self) -> [$crate::record::fields::FieldSlot<'_>; Self::FIELD_COUNT] {
                [$($crate::record::fields::RecordField::slot(&mut self.$name)),*]
            }

            /// Copies every field into `dst`, reusing its strings' buffers
            /// (the writer's recycled queue slots: no allocation once warm).
            pub fn copy_into(&self, dst: &mut $record) {
                $(dst.$name.clone_from(&self.$name);)*
            }

            /// Appends the record's JSON object, serde's bytes exactly
            /// (see `record/line.rs`): each row's key as a constant, its
            /// value by kind, left out when its `skip_serializing_if` holds.
            fn write_json_object(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
                out.push(b'{');
                let mut first = true;
                $(
                    let value = $crate::record::fields::RecordField::value(&self.$name);
                    if !$crate::record::line::skip_field!(value; $([$($attr)*])*) {
                        $crate::record::line::write_key(
                            out,
                            concat!(",\"", stringify!($name), "\":"),
                            &mut first,
                        );
                        $crate::record::line::write_value(out, value)?;
                    }
                )*
                out.push(b'}');
                Ok(())
            }
        }
    };
}

pub(crate) use record_table;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::UsageRecord;

    /// A record with every field set to something other than its default.
    fn full() -> UsageRecord {
        let mut r = UsageRecord::default();
        for (i, slot) in r.slots().into_iter().enumerate() {
            let n = i as u64 + 1;
            match slot {
                FieldSlot::Float(f) => *f = n as f64 + 0.5,
                FieldSlot::Count(c) => *c = n,
                FieldSlot::Text(t) => *t = format!("text {n}"),
                FieldSlot::OptText(t) => *t = Some(format!("opt {n}")),
                FieldSlot::Flag(b) => *b = !*b,
                FieldSlot::Money(m) => *m = Money::from_micros(n as i64),
                FieldSlot::Currency(c) => *c = Currency::new("USD"),
                FieldSlot::OptFlag(b) => *b = Some(false),
                FieldSlot::List(l) => *l = vec![format!("tag {n}")],
            }
        }
        r
    }

    /// The table's names are the day-file line's keys, in its order.
    #[test]
    fn fields_are_the_json_keys_in_order() {
        let names: Vec<&str> = UsageRecord::FIELDS.iter().map(|f| f.name).collect();
        let serde_names = serde_aux::serde_introspection::serde_introspect::<UsageRecord>();
        assert_eq!(names, serde_names);
        assert_eq!(UsageRecord::FIELD_COUNT, names.len());
        let line = serde_json::to_value(full()).unwrap();
        let keys: Vec<&str> = line
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        let mut keys_sorted = keys.clone();
        keys_sorted.sort_unstable();
        assert_eq!(keys_sorted, sorted, "a full record writes every field");
    }

    /// Slots and values see the same fields: what is filled is read back.
    #[test]
    fn slots_fill_what_values_read() {
        let r = full();
        for (i, v) in r.values().into_iter().enumerate() {
            assert_ne!(
                v,
                UsageRecord::default().values()[i],
                "{} kept its default",
                UsageRecord::FIELDS[i].name
            );
        }
    }

    /// The writer's slot reuse copies every field over an older record.
    #[test]
    fn copy_into_overwrites_every_field() {
        let src = full();
        let mut slot = UsageRecord {
            model: "an older, longer model name".into(),
            tags: vec!["a".into(), "b".into()],
            ..UsageRecord::default()
        };
        src.copy_into(&mut slot);
        assert_eq!(slot, src);
        let empty = UsageRecord::default();
        empty.copy_into(&mut slot);
        assert_eq!(slot, empty);
    }
}
