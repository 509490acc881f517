//! The fleet's tables, created and migrated automatically and idempotently.
//!
//! `schema_version` holds one row per applied migration. Every step is
//! `… IF NOT EXISTS`, so a migration cut short is simply run again.
//!
//! - v1: `records`, one row per call, `ReplacingMergeTree` ordered by
//!   `(day, id)`: the raw rows, deduplicated by their stable id on merge.
//!   (v4's `records` is ordered by `(day, host, file, offset)`: the same
//!   line identity, in the order the shipper sends.)
//! - v2: `hourly`, per UTC hour × currency × model × function × user × anchor
//!   sums (`SummingMergeTree`) fed by the materialized view `hourly_mv`, with
//!   the rows already in `records` copied in once.
//! - v3: replaces `hourly` with three narrow `SummingMergeTree`s keyed by
//!   UTC hour (`agg_model`, `agg_user`, `agg_anchor`).
//! - v4: `cost_nanos` (billionths, exact) replaces `cost_micros` (v3 rows
//!   are copied ×1000 into a new `records`); new raw columns `provider` and
//!   `cache_write_tokens`; `records` ordered by `(day, host, file,
//!   offset)`; a `settings` table holding the database's
//!   *reporting zone*, fixed at creation; and four aggregates, each fed by
//!   its own materialized view: `agg_model` (UTC hour × currency × model ×
//!   function, with the duration sum and a p95 state), `agg_user_day` and
//!   `agg_anchor_day` (local day of the reporting zone × currency × user /
//!   anchor: about one row per active user a day, not per hour) and
//!   `agg_session` (session × currency × model × function, with first and
//!   last call and the latest user and anchor). v3's `agg_user` and
//!   `agg_anchor` go. Rows already in `records` are copied in once, read
//!   with `FINAL` (deduplicated).
//! - v5: `records` gets the core's audio token columns (0 for older rows;
//!   the upgrade adds whatever record field's column the table lacks, so
//!   the columns always follow the core's one table of fields), and `agg_model`'s p95 is the
//!   core's duration histogram instead of a t-digest state: a nested
//!   `durationMap` (`bucket UInt8` → `calls UInt64`) that `SummingMergeTree`
//!   sums by bucket, filled by the view with [`duration_bucket_sql`] (the
//!   bucket [`DurationHistogram::bucket_of`] gives, boundaries included),
//!   so the fleet's p95 is exactly the local one. `agg_model` and its view
//!   are recreated and refilled from `records FINAL`. Also new in v5:
//!   `budget_alerts`, the fleet alert poller's claims (`MergeTree` ordered
//!   by budget, period label and threshold; see the `alerts` module).
//! - v6: `adjustments`, one row per line of a host's adjustment files
//!   (cost corrections written by `reprice`), `ReplacingMergeTree` ordered
//!   by `(day, host, file, offset)` like `records`: the corrected call's
//!   grouping keys and timestamp, its cost before and after (nano-units,
//!   each with its currency) and whether it was priced before. No view
//!   feeds the aggregates from it: the queries add its deltas (see the
//!   `queries` module), so an adjustment never needs an aggregate repair.
//!
//! The views count what is inserted into `records`; the shipper's
//! server-offset protocol keeps a record from being inserted twice, so the
//! aggregates are exact. [`aggregates_match`] compares them with
//! `records FINAL` for a range of days and [`rebuild_aggregates`] recomputes
//! them, for a duplicate inserted outside that protocol (e.g. two shippers
//! given different host ids for one directory).

use std::sync::OnceLock;

use ai_usage_core::{DurationHistogram, Money, Zone};
use chrono::NaiveDate;

use crate::client::Client;
use crate::columns::{field_columns, record_columns, HEAD_COLUMNS};
use crate::error::{Error, Result};

/// The budget-alert claims table (schema v5).
pub const ALERTS_TABLE: &str = "budget_alerts";

/// The newest schema version this crate writes and reads.
pub const SCHEMA_VERSION: u32 = 6;

/// An exact cost as stored in `cost_nanos` (billionths of its currency).
///
/// The one place money enters a column: the core's nano-units, as they are.
pub fn money_to_column(m: Money) -> i64 {
    m.nanos()
}

/// A `cost_nanos` value (or a sum of them) as the core's [`Money`]; the
/// inverse of [`money_to_column`].
pub fn money_from_column(nanos: i64) -> Money {
    Money::from_nanos(nanos)
}

/// The raw table: v1's columns, frozen as v1..v3 created them, or (when
/// `current`) the identity columns and then every record field's column
/// as the core's table of fields declares it ([`field_columns`]): v4's
/// `cost_nanos` for `cost_micros`, `provider`, `cache_write_tokens`, v5's
/// audio token columns, and whatever field comes next.
///
/// v4 orders the rows by `(day, host, file, offset)`: the order the shipper
/// sends them in (a block needs almost no sorting, offsets compress to
/// nothing), the server-offset and repair queries (`host = … AND file = …`)
/// can skip by the index, and the key still identifies a line exactly as
/// `id` (a hash of host, file and offset) does, so `ReplacingMergeTree` and
/// `FINAL` deduplicate as before. v1..v3 were ordered by `(day, id)`.
fn records_table(db: &str, table: &str, current: bool) -> String {
    let head = "  id UInt64,                 -- stable record id: hash of host, file, offset
  host String,               -- shipping host's id
  file String,               -- day file name on that host
  offset UInt64,             -- byte offset of the line in the file
  end_offset UInt64,         -- byte offset after the line (where shipping resumes)
  day Date,                  -- UTC date of timestamp (partitioning and pruning)";
    let (fields, order) = if current {
        let fields: Vec<String> = field_columns()
            .iter()
            .map(|c| format!("  {} {} DEFAULT {}", c.name, c.sql_type, c.default))
            .collect();
        (fields.join(",\n"), "day, host, file, offset")
    } else {
        (V1_FIELDS.to_string(), "day, id")
    };
    format!(
        "CREATE TABLE IF NOT EXISTS {db}.{table} (
{head},
{fields}
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY ({order})"
    )
}

/// v1's record columns, as v1..v3 created them (history: only the upgrade
/// tests create such a table now).
const V1_FIELDS: &str = "  timestamp Float64,
  user_id String,
  anchor_id String,
  session_id String,
  model String,
  function String,
  input_tokens UInt64,
  output_tokens UInt64,
  total_tokens UInt64,
  cached_input_tokens UInt64,
  reasoning_tokens UInt64,
  cost_micros Int64,
  currency String,
  priced UInt8,
  success UInt8,
  duration_ms Float64,
  error_msg String,
  request_id String,
  tags Array(String)";

/// The sums every aggregate holds, as expressions over `records`.
const AGG_SUMS: &str = "count() AS calls, sum(success) AS successful_calls, \
sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, \
sum(total_tokens) AS total_tokens, sum(cached_input_tokens) AS cached_input_tokens, \
sum(reasoning_tokens) AS reasoning_tokens, sum(cost_nanos) AS cost_nanos, \
countIf(priced = 0) AS unpriced_calls, sum(cache_write_tokens) AS cache_write_tokens";

/// The columns of [`AGG_SUMS`].
const AGG_SUM_COLUMNS: &str = "calls UInt64, successful_calls UInt64, input_tokens UInt64, \
output_tokens UInt64, total_tokens UInt64, cached_input_tokens UInt64, reasoning_tokens UInt64, \
cost_nanos Int64, unpriced_calls UInt64, cache_write_tokens UInt64";

/// What an aggregate's rows are keyed by in time.
#[derive(Clone, Copy)]
enum Period {
    /// `hour UInt32`: epoch seconds of the UTC hour.
    UtcHour,
    /// `day Date`: the local date in the database's reporting zone.
    ReportingDay,
    /// No time key (sessions: across days).
    None,
}

/// One v4 aggregate: its table, its time key, its key beyond that and the
/// currency, and any extra (column definition, expression) pairs.
struct Aggregate {
    table: &'static str,
    period: Period,
    key: &'static str,
    key_columns: &'static str,
    extra: &'static [(&'static str, &'static str)],
    /// Rows counted (a filter on `records`).
    filter: &'static str,
}

/// The aggregates (v4, with v5's histogram in `agg_model`).
/// `AggregateFunction` columns are merged by their state and nested
/// `…Map` columns by key (`SummingMergeTree` does both).
const AGGREGATES: [Aggregate; 4] = [
    Aggregate {
        table: "agg_model",
        period: Period::UtcHour,
        key: "model, function",
        key_columns: "model String, function String",
        extra: &[
            (
                "duration_ms_sum Float64",
                "sum(duration_ms) AS duration_ms_sum",
            ),
            // v5: the core's duration histogram (bucket → calls), summed
            // by `SummingMergeTree` as a nested `…Map`: a range's p95 is
            // exactly the local one, and summing it is cheap (v4 merged a
            // t-digest state per hour).
            (
                "durationMap Nested(bucket UInt8, calls UInt64)",
                DURATION_MAP_EXPR,
            ),
        ],
        filter: "",
    },
    Aggregate {
        table: "agg_user_day",
        period: Period::ReportingDay,
        key: "user_id",
        key_columns: "user_id String",
        extra: &[],
        filter: "",
    },
    Aggregate {
        table: "agg_anchor_day",
        period: Period::ReportingDay,
        key: "anchor_id",
        key_columns: "anchor_id String",
        extra: &[],
        filter: "",
    },
    Aggregate {
        table: "agg_session",
        period: Period::None,
        key: "session_id, model, function",
        key_columns: "session_id String, model String, function String",
        extra: &[
            (
                "first_call AggregateFunction(min, Float64)",
                "minState(timestamp) AS first_call",
            ),
            (
                "last_call AggregateFunction(max, Float64)",
                "maxState(timestamp) AS last_call",
            ),
            (
                "user_id AggregateFunction(argMaxIf, String, Float64, UInt8)",
                "argMaxIfState(user_id, timestamp, user_id != '') AS user_id",
            ),
            (
                "anchor_id AggregateFunction(argMaxIf, String, Float64, UInt8)",
                "argMaxIfState(anchor_id, timestamp, anchor_id != '') AS anchor_id",
            ),
        ],
        filter: "WHERE session_id != ''",
    },
];

/// Stands for [`duration_bucket_sql`] of `duration_ms` in an aggregate's
/// expressions.
const DURATION_BUCKET: &str = "{duration_bucket}";

/// `agg_model`'s histogram columns from `records` rows (the inner alias
/// is not a column of the result).
const DURATION_MAP_EXPR: &str = "(sumMap([{duration_bucket}], [toUInt64(1)]) AS duration_map).1 \
AS `durationMap.bucket`, duration_map.2 AS `durationMap.calls`";

/// The smallest duration of each bucket by the core's rule: entry `k`
/// (1..BUCKETS) is the least `f64` above 1 that
/// [`DurationHistogram::bucket_of`] puts in bucket `k` or later; entry 0
/// is 0 and entry `BUCKETS` infinity. Found by bisecting the bit patterns
/// (positive floats order as their bits), so the SQL bucket follows the
/// core's floating-point result exactly, boundaries included.
fn bucket_thresholds() -> &'static [f64] {
    static T: OnceLock<Vec<f64>> = OnceLock::new();
    T.get_or_init(|| {
        let n = DurationHistogram::BUCKETS;
        let mut t = vec![0.0; n + 1];
        t[n] = f64::INFINITY;
        for (k, slot) in t.iter_mut().enumerate().take(n).skip(1) {
            // bucket_of(lo) < k <= bucket_of(hi).
            let (mut lo, mut hi) = (1.0f64.to_bits(), f64::MAX.to_bits());
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if DurationHistogram::bucket_of(f64::from_bits(mid)) >= k {
                    hi = mid;
                } else {
                    lo = mid;
                }
            }
            *slot = f64::from_bits(hi);
        }
        t
    })
}

/// The core's duration bucket ([`DurationHistogram::bucket_of`]) of the
/// `Float64` expression `column`, as a ClickHouse `UInt8` expression.
///
/// `ceil(log2(ms) * 4)` as the core computes it, corrected by one bucket
/// either way against `bucket_thresholds`: ClickHouse's `log2` may round
/// differently from Rust's at a bucket boundary, the thresholds (exact
/// `f64` literals) decide. Durations ≤ 1 ms, NaN and infinities are bucket
/// 0 as in the core.
pub fn duration_bucket_sql(column: &str) -> String {
    let x = format!("if(isFinite({column}) AND {column} > 1, {column}, 1.)");
    let last = DurationHistogram::BUCKETS - 1;
    let guess = format!("toUInt8(least({last}, ceil(log2({x}) * 4)))");
    let bounds: Vec<String> = bucket_thresholds()
        .iter()
        .map(|t| {
            if t.is_finite() {
                format!("{t:?}")
            } else {
                "inf".to_string()
            }
        })
        .collect();
    let bounds = format!("[{}]", bounds.join(", "));
    // Arrays count from 1: bucket b's threshold is element b + 1.
    format!("toUInt8({guess} - ({x} < {bounds}[{guess} + 1]) + ({x} >= {bounds}[{guess} + 2]))")
}

/// The names of the aggregate tables.
pub const AGGREGATE_TABLES: [&str; 4] =
    ["agg_model", "agg_user_day", "agg_anchor_day", "agg_session"];

/// Tables of earlier versions that v4 drops (views first).
const OLD_AGGREGATES: [&str; 8] = [
    "hourly_mv",
    "hourly",
    "agg_model_mv",
    "agg_model",
    "agg_user_mv",
    "agg_user",
    "agg_anchor_mv",
    "agg_anchor",
];

/// The ClickHouse name of a zone, for `toDate(…, zone)`: an IANA name,
/// `UTC`, `Etc/GMT∓h` for a whole-hour fixed offset, the machine's zone
/// for `local`. `None` for an offset ClickHouse cannot name (e.g. +05:45).
pub fn clickhouse_zone(zone: &Zone) -> Option<String> {
    match zone {
        Zone::Named(tz) => Some(tz.name().to_string()),
        Zone::Fixed(o) => {
            let secs = o.local_minus_utc();
            match (secs, secs % 3600) {
                (0, _) => Some("UTC".into()),
                // Etc/GMT signs are inverted: Etc/GMT-8 is UTC+8.
                (s, 0) => Some(format!("Etc/GMT{:+}", -s / 3600)),
                _ => None,
            }
        }
        Zone::Local => iana_time_zone::get_timezone().ok(),
    }
}

impl Aggregate {
    fn time_key(&self, zone: &str) -> (String, &'static str, &'static str) {
        match self.period {
            Period::UtcHour => (
                "toUInt32(intDiv(toUInt64(timestamp), 3600) * 3600) AS hour, ".into(),
                "hour UInt32, ",
                "hour, ",
            ),
            Period::ReportingDay => (
                format!("toDate(toDateTime(toUInt32(timestamp)), '{zone}') AS day, "),
                "day Date, ",
                "day, ",
            ),
            Period::None => (String::new(), "", ""),
        }
    }

    fn select(&self, db: &str, source: &str, zone: &str) -> String {
        self.select_from(&format!("{db}.{source}"), zone)
    }

    /// The view's query over `from` (a table or a parenthesised subquery).
    fn select_from(&self, from: &str, zone: &str) -> String {
        let extra: String = self
            .extra
            .iter()
            .map(|(_, e)| {
                if e.contains(DURATION_BUCKET) {
                    format!(
                        ", {}",
                        e.replace(DURATION_BUCKET, &duration_bucket_sql("duration_ms"))
                    )
                } else {
                    format!(", {e}")
                }
            })
            .collect();
        let (time, _, time_key) = self.time_key(zone);
        format!(
            "SELECT {time}currency, {key}, {AGG_SUMS}{extra} FROM {from} {filter} \
GROUP BY {time_key}currency, {key}",
            key = self.key,
            filter = self.filter,
        )
    }

    /// The repair's bucket of a `records` row and of an aggregate row: the
    /// UTC hour, the reporting zone's day number, or (sessions, no time
    /// key) a hash of the session id.
    fn buckets(&self, zone: &str) -> (String, &'static str) {
        match self.period {
            Period::UtcHour => (
                "toUInt64(intDiv(toUInt64(timestamp), 3600) * 3600)".into(),
                "toUInt64(hour)",
            ),
            Period::ReportingDay => (
                format!("toUInt64(toDate(toDateTime(toUInt32(timestamp)), '{zone}'))"),
                "toUInt64(day)",
            ),
            Period::None => ("cityHash64(session_id)".into(), "cityHash64(session_id)"),
        }
    }

    /// The rows of `records` this aggregate counts, as a condition.
    fn counted(&self) -> &'static str {
        self.filter.strip_prefix("WHERE ").unwrap_or("1")
    }

    fn create(&self, db: &str, zone: &str) -> [String; 2] {
        let extra: String = self.extra.iter().map(|(c, _)| format!(", {c}")).collect();
        let (_, time_column, time_key) = self.time_key(zone);
        let partition = match self.period {
            Period::UtcHour => "PARTITION BY toYYYYMM(toDate(toDateTime(hour))) ",
            Period::ReportingDay => "PARTITION BY toYYYYMM(day) ",
            Period::None => "",
        };
        [
            format!(
                "CREATE TABLE IF NOT EXISTS {db}.{t} ({time_column}currency String, {kc}, \
{AGG_SUM_COLUMNS}{extra}) ENGINE = SummingMergeTree \
{partition}ORDER BY ({time_key}currency, {key})",
                t = self.table,
                kc = self.key_columns,
                key = self.key
            ),
            format!(
                "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{t}_mv TO {db}.{t} AS {sel}",
                t = self.table,
                sel = self.select(db, "records", zone)
            ),
        ]
    }
}

/// The database's reporting zone (v4): the zone whose local days key
/// `agg_user_day` and `agg_anchor_day`, fixed when the schema is created.
pub fn reporting_zone(client: &Client) -> Result<String> {
    let db = client.db();
    let rows = client.query_rows(&format!(
        "SELECT value FROM {db}.settings WHERE key = 'reporting_zone' LIMIT 1"
    ))?;
    rows.into_iter()
        .next()
        .and_then(|r| r.into_iter().next())
        .ok_or_else(|| Error::Protocol("no reporting_zone in settings".into()))
}

/// The settings table and its reporting zone (kept if already set).
fn settings(client: &Client, zone: &str) -> Result<String> {
    let db = client.db();
    client.execute(&format!(
        "CREATE TABLE IF NOT EXISTS {db}.settings (key String, value String) ENGINE = TinyLog"
    ))?;
    if let Ok(z) = reporting_zone(client) {
        return Ok(z);
    }
    client.execute(&format!(
        "INSERT INTO {db}.settings (key, value) VALUES ('reporting_zone', '{}')",
        zone.replace(['\'', '\\'], "")
    ))?;
    reporting_zone(client)
}

/// Whether `table` of the database has the column `column` (18.16 has
/// no `ADD COLUMN IF NOT EXISTS`).
fn has_column(client: &Client, table: &str, column: &str) -> Result<bool> {
    let name = client.endpoint().database().replace(['\'', '\\'], "");
    Ok(client.query_u64(&format!(
        "SELECT count() FROM system.columns WHERE database = '{name}' AND table = '{table}' \
AND name = '{column}'"
    ))? > 0)
}

/// The column names of `table` in this database.
fn columns_of(client: &Client, table: &str) -> Result<Vec<String>> {
    let name = client.endpoint().database().replace(['\'', '\\'], "");
    let rows = client.query_rows(&format!(
        "SELECT name FROM system.columns WHERE database = '{name}' AND table = '{table}'"
    ))?;
    Ok(rows
        .into_iter()
        .filter_map(|r| r.into_iter().next())
        .collect())
}

/// Whether `records` still has v1's `cost_micros` column.
fn records_in_micros(client: &Client) -> Result<bool> {
    has_column(client, "records", "cost_micros")
}

/// v4 over v1..v3: the earlier aggregates go; `records` is copied into a
/// v4 table (`cost_micros` × 1000 as `cost_nanos`, deduplicated with
/// `FINAL`) that then takes its name. Each step can be run again.
fn upgrade_records(client: &Client) -> Result<()> {
    let db = client.db();
    for t in OLD_AGGREGATES {
        client.execute(&format!("DROP TABLE IF EXISTS {db}.{t}"))?;
    }
    if records_in_micros(client)? {
        client.execute(&format!("DROP TABLE IF EXISTS {db}.records_v4"))?;
        client.execute(&records_table(&db, "records_v4", true))?;
        // Each column from the v1..v3 table: money ×1000 to nanos, the
        // columns it lacks at their defaults.
        let old = columns_of(client, "records")?;
        let mut v3_columns = HEAD_COLUMNS.to_string();
        for c in field_columns() {
            v3_columns.push_str(", ");
            if c.name == "cost_nanos" {
                v3_columns.push_str("cost_micros * 1000");
            } else if old.contains(&c.name) {
                v3_columns.push_str(&c.name);
            } else {
                v3_columns.push_str(c.default);
            }
        }
        let columns = record_columns();
        client.execute(&format!(
            "INSERT INTO {db}.records_v4 ({columns}) SELECT {v3_columns} FROM {db}.records FINAL"
        ))?;
        client.execute(&format!(
            "RENAME TABLE {db}.records TO {db}.records_v3, {db}.records_v4 TO {db}.records"
        ))?;
    }
    client.execute(&format!("DROP TABLE IF EXISTS {db}.records_v3"))
}

// v5 (h23): audio token columns and `agg_model`'s duration histogram.
// Self-contained: `migrate_in` calls `upgrade_to_v5` before creating the
// aggregates that are missing and filling the empty ones.

/// v5 over v4: `records` gets the audio token columns (0 for older rows)
/// and `agg_model` trades its t-digest for the duration histogram (it is
/// dropped here and recreated, then refilled from `records FINAL`, by the
/// caller). Each step checks first, so a cut-short upgrade resumes.
fn upgrade_to_v5(client: &Client) -> Result<()> {
    add_missing_field_columns(client)?;
    drop_digest_agg_model(client)
}

/// Adds every record field's column `records` lacks (v5's audio token
/// columns on a v1..v4 table), at its default for the rows it holds.
fn add_missing_field_columns(client: &Client) -> Result<()> {
    let db = client.db();
    let have = columns_of(client, "records")?;
    for c in field_columns() {
        if !have.contains(&c.name) {
            client.execute(&format!(
                "ALTER TABLE {db}.records ADD COLUMN {} {} DEFAULT {}",
                c.name, c.sql_type, c.default
            ))?;
        }
    }
    Ok(())
}

/// Drops a v4 `agg_model` (with its view): one without the histogram.
fn drop_digest_agg_model(client: &Client) -> Result<()> {
    let db = client.db();
    let exists = client.query_u64(&format!(
        "SELECT count() FROM system.tables WHERE database = '{}' AND name = 'agg_model'",
        client.endpoint().database().replace(['\'', '\\'], "")
    ))? > 0;
    if exists && !has_column(client, "agg_model", "durationMap.bucket")? {
        client.execute(&format!("DROP TABLE IF EXISTS {db}.agg_model_mv"))?;
        client.execute(&format!("DROP TABLE IF EXISTS {db}.agg_model"))?;
    }
    Ok(())
}

/// Creates the database and brings its tables to [`SCHEMA_VERSION`];
/// returns the version found before. Safe to run any number of times.
///
/// A new database's reporting zone is the machine's zone (see
/// [`migrate_in`]).
pub fn migrate(client: &Client) -> Result<u32> {
    migrate_in(client, &Zone::Local)
}

/// [`migrate`], with `zone` as the reporting zone if the database has none
/// yet (a zone ClickHouse cannot name falls back to UTC, with a warning).
/// An existing database keeps the zone it was created with.
///
/// From v1..v3 the records are copied once into the v4 table and the
/// aggregates rebuilt from them: run the first upgrade of a shared
/// database from one process, with shippers stopped (see docs/scale.md).
pub fn migrate_in(client: &Client, zone: &Zone) -> Result<u32> {
    let db = client.db();
    client.execute(&format!("CREATE DATABASE IF NOT EXISTS {db}"))?;
    client.execute(&format!(
        "CREATE TABLE IF NOT EXISTS {db}.schema_version \
(version UInt32, applied_at DateTime DEFAULT now()) ENGINE = TinyLog"
    ))?;
    let found = current_version(client)?;
    if found > SCHEMA_VERSION {
        return Err(Error::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    // Its own table, made where missing: the records table (maybe billions
    // of rows) needs no new column, and a database of any version gets it.
    create_shipped_files(client)?;
    if found == SCHEMA_VERSION {
        return Ok(found);
    }
    tracing::info!(from = found, to = SCHEMA_VERSION, database = %db, "migrating ClickHouse schema");
    let zone_name = clickhouse_zone(zone).unwrap_or_else(|| {
        tracing::warn!(%zone, "ClickHouse cannot name this zone; reporting days in UTC");
        "UTC".into()
    });
    let zone = settings(client, &zone_name)?;
    if found == 0 {
        client.execute(&records_table(&db, "records", true))?;
    } else if found < 4 {
        upgrade_records(client)?;
    }
    upgrade_to_v5(client)?;
    for a in &AGGREGATES {
        for sql in a.create(&db, &zone) {
            client.execute(&sql)?;
        }
    }
    backfill_aggregates(client, &zone)?;
    create_budget_alerts(client)?;
    create_adjustments(client)?;
    client.execute(&format!(
        "INSERT INTO {db}.schema_version (version) VALUES ({SCHEMA_VERSION})"
    ))?;
    Ok(found)
}

/// The table of shipped day files: which file each (host, file) pair's rows
/// came from, as the fingerprint of its first line (see the shipper). A
/// row per file a host ships: a few a day.
pub const SHIPPED_FILES_TABLE: &str = "shipped_files";

fn create_shipped_files(client: &Client) -> Result<()> {
    let db = client.db();
    client.execute(&format!(
        "CREATE TABLE IF NOT EXISTS {db}.{SHIPPED_FILES_TABLE} (
  host String,                 -- the shipping host's id
  file String,                 -- the day file's plain name
  fingerprint UInt64,          -- xxh3 of the file's first line
  shipped_at DateTime DEFAULT now()
) ENGINE = MergeTree
ORDER BY (host, file)"
    ))
}

/// v5 (budget alerts): the claims of the fleet alert poller, one row per
/// claim of a (budget, period, threshold) by a poller; the winner of a key
/// is its smallest `(claimed_at, host)` (see the `alerts` module). A few
/// rows a day per budget: no partitions, never merged away.
fn create_budget_alerts(client: &Client) -> Result<()> {
    let db = client.db();
    client.execute(&format!(
        "CREATE TABLE IF NOT EXISTS {db}.{} (
  budget String,              -- the budget's name
  period_label String,        -- YYYY-MM-DD or YYYY-MM, in the pollers' zone
  threshold UInt32,           -- percent of the limit
  host String,                -- the claiming poller's id
  claimed_at DateTime DEFAULT now(), -- the server's clock at the insert
  spent_nanos Int64,          -- the fleet's spend the claimant saw, billionths
  currency String
) ENGINE = MergeTree
ORDER BY (budget, period_label, threshold)",
        ALERTS_TABLE
    ))
}

/// The adjustments table (v6).
pub const ADJUSTMENTS_TABLE: &str = "adjustments";

/// Columns of [`ADJUSTMENTS_TABLE`] in the order the shipper sends them.
pub const ADJUSTMENT_COLUMNS: &str = "id, host, file, offset, end_offset, day, timestamp, \
call_file, call_offset, request_id, model, function, user_id, anchor_id, session_id, tags, \
old_currency, old_cost_nanos, old_priced, currency, cost_nanos, price_source, corrected_at";

/// v6: one row per adjustment line, identified like a `records` row (host,
/// adjustment file, offset; `end_offset` is where shipping resumes), with
/// the corrected call's UTC `day` for pruning by the call's time.
fn create_adjustments(client: &Client) -> Result<()> {
    let db = client.db();
    client.execute(&format!(
        "CREATE TABLE IF NOT EXISTS {db}.{ADJUSTMENTS_TABLE} (
  id UInt64,                 -- hash of host, adjustment file, offset
  host String,               -- shipping host's id
  file String,               -- adjustment file name on that host
  offset UInt64,             -- byte offset of the line in the file
  end_offset UInt64,         -- byte offset after the line (where shipping resumes)
  day Date,                  -- UTC date of the corrected call's timestamp
  timestamp Float64,         -- the corrected call's timestamp
  call_file String,          -- the call's day file
  call_offset UInt64,        -- the call's line offset in it
  request_id String,
  model String,
  function String,
  user_id String,
  anchor_id String,
  session_id String,
  tags Array(String),
  old_currency String,       -- currency of the cost before
  old_cost_nanos Int64,      -- cost before, billionths
  old_priced UInt8,          -- whether the call was priced before
  currency String,           -- currency of the cost after
  cost_nanos Int64,          -- cost after, billionths
  price_source String,
  corrected_at String
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (day, host, file, offset)"
    ))
}

/// Copies what `records` held before the views existed into each aggregate
/// that is still empty (so a retried migration copies nothing twice).
fn backfill_aggregates(client: &Client, zone: &str) -> Result<()> {
    let db = client.db();
    for a in &AGGREGATES {
        if client.query_u64(&format!("SELECT count() FROM {db}.{}", a.table))? > 0 {
            continue;
        }
        client.execute(&format!(
            "INSERT INTO {db}.{} SELECT * FROM ({})",
            a.table,
            a.select(&db, "records FINAL", zone)
        ))?;
    }
    Ok(())
}

/// Whether the aggregates count exactly the calls of `records FINAL`
/// (deduplicated by id): `agg_model` per UTC day in `from..=to`, the
/// per-day tables per reporting-zone day in `from..=to`, `agg_session`
/// over all sessions. Reads raw rows: an audit, not a query path.
pub fn aggregates_match(client: &Client, from: NaiveDate, to: NaiveDate) -> Result<bool> {
    let db = client.db();
    let zone = reporting_zone(client)?;
    let (f, t) = (from.format("%Y-%m-%d"), to.format("%Y-%m-%d"));
    // The UTC `day` key prunes parts; a local day lies within a day of it.
    let prune = format!("day >= toDate('{f}') - 1 AND day <= toDate('{t}') + 1");
    let utc_day = "toDate(toDateTime(toUInt32(timestamp)), 'UTC')";
    let local_day = format!("toDate(toDateTime(toUInt32(timestamp)), '{zone}')");
    let in_range = |d: &str| format!("{d} >= toDate('{f}') AND {d} <= toDate('{t}')");
    for a in &AGGREGATES {
        let (raw_day, agg_day, filter) = match a.period {
            Period::UtcHour => (utc_day.to_string(), "toDate(toDateTime(hour), 'UTC')", ""),
            Period::ReportingDay => (local_day.clone(), "day", ""),
            Period::None => (
                "toDate('1970-01-01')".into(),
                "toDate('1970-01-01')",
                "session_id != ''",
            ),
        };
        let (raw_where, agg_where) = match a.period {
            Period::None => (filter.to_string(), "1".to_string()),
            _ => (
                format!("{prune} AND {}", in_range(&raw_day)),
                in_range(agg_day),
            ),
        };
        let raw = client.query_rows(&format!(
            "SELECT {raw_day} AS d, count() FROM {db}.records FINAL WHERE {raw_where} \
GROUP BY d ORDER BY d"
        ))?;
        let agg = client.query_rows(&format!(
            "SELECT {agg_day} AS d, sum(calls) FROM {db}.{t} WHERE {agg_where} \
GROUP BY d ORDER BY d",
            t = a.table
        ))?;
        if agg != raw {
            tracing::warn!(table = a.table, "aggregate differs from records FINAL");
            return Ok(false);
        }
    }
    Ok(true)
}

/// Recomputes every aggregate from `records FINAL`. Stop the shippers
/// first: rows inserted while it runs would be counted twice.
pub fn rebuild_aggregates(client: &Client) -> Result<()> {
    let db = client.db();
    let zone = reporting_zone(client)?;
    for a in &AGGREGATES {
        client.execute(&format!("DROP TABLE IF EXISTS {db}.{}_mv", a.table))?;
        client.execute(&format!("DROP TABLE IF EXISTS {db}.{}", a.table))?;
        for sql in a.create(&db, &zone) {
            client.execute(&sql)?;
        }
    }
    backfill_aggregates(client, &zone)
}

/// The schema version of the database (0 when empty).
pub fn current_version(client: &Client) -> Result<u32> {
    let db = client.db();
    let v = client.query_u64(&format!(
        "SELECT toUInt64(max(version)) FROM {db}.schema_version"
    ))?;
    u32::try_from(v).map_err(|_| Error::Protocol(format!("schema version {v}")))
}

/// Applies only the v1 schema (tests use it to check upgrades from v1).
#[doc(hidden)]
pub fn create_v1_for_tests(client: &Client) -> Result<()> {
    let db = client.db();
    client.execute(&format!("CREATE DATABASE IF NOT EXISTS {db}"))?;
    client.execute(&format!(
        "CREATE TABLE IF NOT EXISTS {db}.schema_version \
(version UInt32, applied_at DateTime DEFAULT now()) ENGINE = TinyLog"
    ))?;
    client.execute(&records_table(&db, "records", false))?;
    client.execute(&format!(
        "INSERT INTO {db}.schema_version (version) VALUES (1)"
    ))
}

// h16: automatic aggregate repair, called by the shipper (shipper.rs) after
// an insert whose outcome was unknown. Every statement that reads or writes
// the aggregates for it is in this block, so a schema change adapts it here
// (each aggregate compares per its own bucket: UTC hour, reporting day or
// session).

/// What [`repair_shipped_ranges`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeRepair {
    /// (aggregate, bucket) pairs that lacked the range's rows and were
    /// filled from `records FINAL`.
    pub repaired: Vec<(String, u64)>,
    /// (aggregate, bucket) pairs that differ from `records` by something
    /// else than the range (a duplicate inserted outside the shipper,
    /// another host's insert still running): left alone;
    /// [`rebuild_aggregates`] repairs them with the shippers stopped.
    pub unresolved: Vec<(String, u64)>,
}

/// Makes the aggregates count the rows of `host`'s day files in `ranges`
/// — `(file, after, upto)`: the lines ending in `after + 1 ..= upto`, the
/// inserts whose outcome was unknown; the server holds them — if a view
/// missed them. All uncertain ranges go in one call: a reporting day or a
/// session can hold rows of several files.
///
/// Why this is exact: an insert reaches `records` and then each view block
/// by block, so a crash can leave an aggregate without a block's rows while
/// `records` has them. Per aggregate and bucket the range touches (its UTC
/// hour, reporting-zone day or session), the difference `distinct records −
/// aggregate calls` is then either 0 (nothing missing) or exactly the
/// range's rows in that bucket (they are missing): those buckets get the
/// range's rows, computed as the view computes them. Any other difference
/// is reported, not touched. Two reads 0.3 s apart must agree, so another
/// host's insert caught between its raw rows and its views is not mistaken
/// for ours.
pub fn repair_shipped_ranges(
    client: &Client,
    host: &str,
    ranges: &[(&str, u64, u64)],
) -> Result<RangeRepair> {
    let mut out = RangeRepair::default();
    if ranges.is_empty() {
        return Ok(out);
    }
    let db = client.db();
    let zone = reporting_zone(client)?;
    let files: Vec<String> = ranges
        .iter()
        .map(|(file, after, upto)| {
            format!(
                // `offset` bounds let the index skip: `after` is a line
                // end, so the range's lines start in `after..upto`.
                "(file = {} AND offset >= {after} AND offset < {upto} \
AND end_offset > {after} AND end_offset <= {upto})",
                crate::tsv::quote(file)
            )
        })
        .collect();
    let range = format!(
        "host = {} AND ({})",
        crate::tsv::quote(host),
        files.join(" OR ")
    );
    // The range's time span prunes the reads of its rows by `day` (a UTC
    // date; a reporting day or a session lies within a few of them).
    let span = client.query_rows(&format!(
        "SELECT count(), toUInt64(min(timestamp)), toUInt64(max(timestamp)) \
FROM {db}.records WHERE {range}"
    ))?;
    let (tmin, tmax) = match span.first().map(Vec::as_slice) {
        Some([n, lo, hi]) if n != "0" => (parse_u64(lo)?, parse_u64(hi)?),
        _ => return Ok(out),
    };
    let days =
        format!("day >= toDate(toDateTime({tmin})) - 2 AND day <= toDate(toDateTime({tmax})) + 2");
    for a in &AGGREGATES {
        let (raw_bucket, agg_bucket) = a.buckets(&zone);
        let counted = a.counted();
        // `day, host, file` lead `records`' key, so the index skips to the
        // ranges' rows; deduplicated by id without `FINAL`, which would
        // merge every row of those days.
        let ours = bucket_counts(
            client,
            &format!(
                "SELECT {raw_bucket} AS b, uniqExact(id) FROM {db}.records \
WHERE {days} AND {range} AND {counted} GROUP BY b"
            ),
        )?;
        if ours.is_empty() {
            continue;
        }
        let buckets: Vec<String> = ours.keys().map(u64::to_string).collect();
        let buckets = buckets.join(",");
        // Sessions span days: their rows are counted over the whole table.
        let window = match a.period {
            Period::None => "1".to_string(),
            _ => days.clone(),
        };
        let differences = || -> Result<Vec<(u64, i128)>> {
            let raw = bucket_counts(
                client,
                &format!(
                    "SELECT {raw_bucket} AS b, uniqExact(id) FROM {db}.records \
WHERE {window} AND {counted} AND {raw_bucket} IN ({buckets}) GROUP BY b"
                ),
            )?;
            let agg = bucket_counts(
                client,
                &format!(
                    "SELECT {agg_bucket} AS b, sum(calls) FROM {db}.{} \
WHERE {agg_bucket} IN ({buckets}) GROUP BY b",
                    a.table
                ),
            )?;
            Ok(ours
                .keys()
                .filter_map(|&b| {
                    let d = i128::from(raw.get(&b).copied().unwrap_or(0))
                        - i128::from(agg.get(&b).copied().unwrap_or(0));
                    (d != 0).then_some((b, d))
                })
                .collect())
        };
        let first = differences()?;
        if first.is_empty() {
            continue;
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
        let mut fill = Vec::new();
        for (b, d) in differences()? {
            if first.contains(&(b, d)) && d == i128::from(ours[&b]) {
                out.repaired.push((a.table.to_string(), b));
                fill.push(b.to_string());
            } else {
                out.unresolved.push((a.table.to_string(), b));
            }
        }
        if fill.is_empty() {
            continue;
        }
        let source = format!(
            "(SELECT * FROM {db}.records FINAL WHERE {days} AND {range} AND {raw_bucket} IN ({}))",
            fill.join(",")
        );
        client.execute(&format!(
            "INSERT INTO {db}.{} SELECT * FROM ({})",
            a.table,
            a.select_from(&source, &zone)
        ))?;
    }
    Ok(out)
}

fn parse_u64(s: &str) -> Result<u64> {
    s.parse::<u64>()
        .map_err(|_| Error::Protocol(format!("not a number: {s:?}")))
}

fn bucket_counts(client: &Client, sql: &str) -> Result<std::collections::BTreeMap<u64, u64>> {
    let mut out = std::collections::BTreeMap::new();
    for row in client.query_rows(sql)? {
        if let [b, n] = row.as_slice() {
            out.insert(parse_u64(b)?, parse_u64(n)?);
        }
    }
    Ok(out)
}
// h16: end of the automatic repair block.
