//! The fleet's tables, created and migrated automatically and idempotently.
//!
//! `schema_version` holds one row per applied migration. Every step is
//! `… IF NOT EXISTS`, so a migration cut short is simply run again.
//!
//! - v1: `records`, one row per call, `ReplacingMergeTree` ordered by
//!   `(day, id)`: the raw rows, deduplicated by their stable id on merge.
//! - v2: `hourly`, per UTC hour × currency × model × function × user × anchor
//!   sums (`SummingMergeTree`) fed by the materialized view `hourly_mv`, with
//!   the rows already in `records` copied in once.
//! - v3: replaces `hourly` (keyed down to user × anchor, nearly one row per
//!   call) with three narrow `SummingMergeTree`s, each fed by its own
//!   materialized view, so a summary reads groups, not rows:
//!   `agg_model` (hour × currency × model × function, with the duration sum
//!   and a p95 state), `agg_user` (hour × currency × user) and `agg_anchor`
//!   (hour × currency × anchor). Rows already in `records` are copied in
//!   once, read with `FINAL` (deduplicated).
//!
//! The views count what is inserted into `records`; the shipper's
//! server-offset protocol keeps a record from being inserted twice, so the
//! aggregates are exact. [`aggregates_match`] compares them with
//! `records FINAL` for a range of days and [`rebuild_aggregates`] recomputes
//! them, for a duplicate inserted outside that protocol (e.g. two shippers
//! given different host ids for one directory).

use chrono::NaiveDate;

use crate::client::Client;
use crate::error::{Error, Result};

/// The newest schema version this crate writes and reads.
pub const SCHEMA_VERSION: u32 = 3;

/// Columns of `records`, in the order the shipper sends them.
pub const RECORD_COLUMNS: &str = "id, host, file, offset, end_offset, day, timestamp, user_id, \
anchor_id, session_id, model, function, input_tokens, output_tokens, total_tokens, \
cached_input_tokens, reasoning_tokens, cost_micros, currency, priced, success, duration_ms, \
error_msg, request_id, tags";

/// v1: the raw table.
fn v1(db: &str) -> Vec<String> {
    vec![format!(
        "CREATE TABLE IF NOT EXISTS {db}.records (
  id UInt64,                 -- stable record id: hash of host, file, offset
  host String,               -- shipping host's id
  file String,               -- day file name on that host
  offset UInt64,             -- byte offset of the line in the file
  end_offset UInt64,         -- byte offset after the line (where shipping resumes)
  day Date,                  -- UTC date of timestamp (partitioning and pruning)
  timestamp Float64,         -- epoch seconds
  user_id String,            -- '' = none
  anchor_id String,
  session_id String,
  model String,
  function String,
  input_tokens UInt64,
  output_tokens UInt64,
  total_tokens UInt64,
  cached_input_tokens UInt64,
  reasoning_tokens UInt64,
  cost_micros Int64,         -- exact cost in millionths of `currency`
  currency String,           -- ISO code, never mixed within a sum
  priced UInt8,
  success UInt8,
  duration_ms Float64,
  error_msg String,
  request_id String,
  tags Array(String)
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (day, id)"
    )]
}

/// The sums every aggregate holds, as expressions over `records`.
const AGG_SUMS: &str = "count() AS calls, sum(success) AS successful_calls, \
sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, \
sum(total_tokens) AS total_tokens, sum(cached_input_tokens) AS cached_input_tokens, \
sum(reasoning_tokens) AS reasoning_tokens, sum(cost_micros) AS cost_micros, \
countIf(priced = 0) AS unpriced_calls";

/// The columns of [`AGG_SUMS`].
const AGG_SUM_COLUMNS: &str = "calls UInt64, successful_calls UInt64, input_tokens UInt64, \
output_tokens UInt64, total_tokens UInt64, cached_input_tokens UInt64, reasoning_tokens UInt64, \
cost_micros Int64, unpriced_calls UInt64";

/// One v3 aggregate: its table, its key beyond the hour and currency, and
/// any extra (column definition, expression) pairs.
struct Aggregate {
    table: &'static str,
    key: &'static str,
    key_columns: &'static str,
    extra: &'static [(&'static str, &'static str)],
}

/// The v3 aggregates. `agg_model`'s `duration_q` is an `AggregateFunction`
/// column: `SummingMergeTree` merges such columns by their state.
const AGGREGATES: [Aggregate; 3] = [
    Aggregate {
        table: "agg_model",
        key: "model, function",
        key_columns: "model String, function String",
        extra: &[
            (
                "duration_ms_sum Float64",
                "sum(duration_ms) AS duration_ms_sum",
            ),
            (
                "duration_q AggregateFunction(quantile(0.95), Float64)",
                "quantileState(0.95)(duration_ms) AS duration_q",
            ),
        ],
    },
    Aggregate {
        table: "agg_user",
        key: "user_id",
        key_columns: "user_id String",
        extra: &[],
    },
    Aggregate {
        table: "agg_anchor",
        key: "anchor_id",
        key_columns: "anchor_id String",
        extra: &[],
    },
];

/// The names of the v3 aggregate tables.
pub const AGGREGATE_TABLES: [&str; 3] = ["agg_model", "agg_user", "agg_anchor"];

impl Aggregate {
    fn select(&self, db: &str, source: &str) -> String {
        let extra: String = self.extra.iter().map(|(_, e)| format!(", {e}")).collect();
        format!(
            "SELECT toUInt32(intDiv(toUInt64(timestamp), 3600) * 3600) AS hour, currency, {key}, \
{AGG_SUMS}{extra} FROM {db}.{source} GROUP BY hour, currency, {key}",
            key = self.key
        )
    }

    fn create(&self, db: &str) -> [String; 2] {
        let extra: String = self.extra.iter().map(|(c, _)| format!(", {c}")).collect();
        [
            format!(
                "CREATE TABLE IF NOT EXISTS {db}.{t} (hour UInt32, currency String, {kc}, \
{AGG_SUM_COLUMNS}{extra}) ENGINE = SummingMergeTree \
PARTITION BY toYYYYMM(toDate(toDateTime(hour))) ORDER BY (hour, currency, {key})",
                t = self.table,
                kc = self.key_columns,
                key = self.key
            ),
            format!(
                "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.{t}_mv TO {db}.{t} AS {sel}",
                t = self.table,
                sel = self.select(db, "records")
            ),
        ]
    }
}

/// v3: the narrow aggregates; v2's `hourly` goes.
fn v3(db: &str) -> Vec<String> {
    let mut steps = vec![
        format!("DROP TABLE IF EXISTS {db}.hourly_mv"),
        format!("DROP TABLE IF EXISTS {db}.hourly"),
    ];
    for a in &AGGREGATES {
        steps.extend(a.create(db));
    }
    steps
}

/// Creates the database and brings its tables to [`SCHEMA_VERSION`];
/// returns the version found before. Safe to run any number of times.
///
/// The v3 step copies rows already in `records` into the aggregates once:
/// run the first upgrade of a shared database from one process, with
/// shippers stopped (see docs/scale.md). v2 is skipped on the way (v3
/// replaces what it made).
pub fn migrate(client: &Client) -> Result<u32> {
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
    for version in found + 1..=SCHEMA_VERSION {
        tracing::info!(version, database = %db, "migrating ClickHouse schema");
        let steps = match version {
            1 => v1(&db),
            2 => Vec::new(),
            _ => v3(&db),
        };
        for sql in steps {
            client.execute(&sql)?;
        }
        if version == 3 {
            backfill_aggregates(client)?;
        }
        client.execute(&format!(
            "INSERT INTO {db}.schema_version (version) VALUES ({version})"
        ))?;
    }
    Ok(found)
}

/// Copies what `records` held before the views existed into each aggregate
/// that is still empty (so a retried migration copies nothing twice).
fn backfill_aggregates(client: &Client) -> Result<()> {
    let db = client.db();
    for a in &AGGREGATES {
        if client.query_u64(&format!("SELECT count() FROM {db}.{}", a.table))? > 0 {
            continue;
        }
        client.execute(&format!(
            "INSERT INTO {db}.{} SELECT * FROM ({})",
            a.table,
            a.select(&db, "records FINAL")
        ))?;
    }
    Ok(())
}

/// Whether the aggregates count, per UTC day in `from..=to`, exactly the
/// calls of `records FINAL` (deduplicated by id). Reads raw rows: an
/// audit, not a query path.
pub fn aggregates_match(client: &Client, from: NaiveDate, to: NaiveDate) -> Result<bool> {
    let db = client.db();
    let secs = |d: NaiveDate| {
        d.and_hms_opt(0, 0, 0)
            .map_or(0, |t| t.and_utc().timestamp())
    };
    let (start, end) = (secs(from), secs(to) + 86_400);
    let (f, t) = (from.format("%Y-%m-%d"), to.format("%Y-%m-%d"));
    let raw = client.query_rows(&format!(
        "SELECT intDiv(toUInt64(timestamp), 86400) AS d, count() FROM {db}.records FINAL \
WHERE day >= toDate('{f}') AND day <= toDate('{t}') AND timestamp >= {start} \
AND timestamp < {end} GROUP BY d ORDER BY d"
    ))?;
    for table in AGGREGATE_TABLES {
        let agg = client.query_rows(&format!(
            "SELECT intDiv(hour, 86400) AS d, sum(calls) FROM {db}.{table} \
WHERE hour >= {start} AND hour < {end} GROUP BY d ORDER BY d"
        ))?;
        if agg != raw {
            tracing::warn!(table, "aggregate differs from records FINAL");
            return Ok(false);
        }
    }
    Ok(true)
}

/// Recomputes every aggregate from `records FINAL`. Stop the shippers
/// first: rows inserted while it runs would be counted twice.
pub fn rebuild_aggregates(client: &Client) -> Result<()> {
    let db = client.db();
    for a in &AGGREGATES {
        client.execute(&format!("DROP TABLE IF EXISTS {db}.{}_mv", a.table))?;
        client.execute(&format!("DROP TABLE IF EXISTS {db}.{}", a.table))?;
        for sql in a.create(&db) {
            client.execute(&sql)?;
        }
    }
    backfill_aggregates(client)
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
    for sql in v1(&db) {
        client.execute(&sql)?;
    }
    client.execute(&format!(
        "INSERT INTO {db}.schema_version (version) VALUES (1)"
    ))
}

// h16: automatic aggregate repair, called by the shipper (shipper.rs) after
// an insert whose outcome was unknown. Every statement that reads or writes
// the aggregates for it is in this block, so a schema change adapts it here
// (the bucket is v3's UTC hour; a per-day aggregate compares per day).

/// What [`repair_shipped_range`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeRepair {
    /// (aggregate, bucket) pairs that lacked the range's rows and were
    /// filled from `records FINAL`.
    pub repaired: Vec<(String, u64)>,
    /// (aggregate, bucket) pairs that differ from `records FINAL` by
    /// something else than the range (a duplicate inserted outside the
    /// shipper, another host's insert still running): left alone;
    /// [`rebuild_aggregates`] repairs them with the shippers stopped.
    pub unresolved: Vec<(String, u64)>,
}

/// The aggregates' time bucket of a `records` row (v3: its UTC hour).
const BUCKET: &str = "toUInt64(intDiv(toUInt64(timestamp), 3600) * 3600)";

/// Makes the aggregates count the rows of `host`'s day file `file` whose
/// lines end in `after + 1 ..= upto` (an insert whose outcome was unknown;
/// the server holds them) if a view missed them.
///
/// Why this is exact: an insert reaches `records` and then each view block
/// by block, so a crash can leave an aggregate without a block's rows while
/// `records` has them. Per aggregate and bucket the range touches, the
/// difference `records FINAL − aggregate` is then either 0 (nothing
/// missing) or exactly the range's rows in that bucket (they are missing):
/// those buckets get the range's rows, computed as the view computes them.
/// Any other difference is reported, not touched. Two reads 0.3 s apart
/// must agree, so another host's insert caught between its raw rows and its
/// views is not mistaken for ours.
pub fn repair_shipped_range(
    client: &Client,
    host: &str,
    file: &str,
    after: u64,
    upto: u64,
) -> Result<RangeRepair> {
    let db = client.db();
    let range = format!(
        "host = {} AND file = {} AND end_offset > {after} AND end_offset <= {upto}",
        crate::tsv::quote(host),
        crate::tsv::quote(file)
    );
    // `host`/`file` are not in `records`' key: a plain scan of a few columns
    // (like the server-offset query), deduplicated by id without `FINAL`,
    // which would merge the whole table.
    let ours = bucket_counts(
        client,
        &format!("SELECT {BUCKET} AS b, uniqExact(id) FROM {db}.records WHERE {range} GROUP BY b"),
    )?;
    let mut out = RangeRepair::default();
    let (Some(&lo), Some(&hi)) = (ours.keys().next(), ours.keys().next_back()) else {
        return Ok(out);
    };
    let buckets: Vec<String> = ours.keys().map(u64::to_string).collect();
    let buckets = buckets.join(",");
    // The days those buckets lie in: what prunes every `FINAL` read below.
    let days = format!("day >= toDate(toDateTime({lo})) AND day <= toDate(toDateTime({hi}))");
    // The buckets' differences per aggregate; empty when all match.
    let differences = || -> Result<Vec<(&'static str, u64, i128)>> {
        let raw = bucket_counts(
            client,
            &format!(
                "SELECT {BUCKET} AS b, count() FROM {db}.records FINAL \
WHERE {days} AND timestamp >= {lo} AND timestamp < {end} GROUP BY b HAVING b IN ({buckets})",
                end = hi + 3600
            ),
        )?;
        let mut diffs = Vec::new();
        for a in &AGGREGATES {
            let agg = bucket_counts(
                client,
                &format!(
                    "SELECT toUInt64(hour) AS b, sum(calls) FROM {db}.{} WHERE hour IN ({buckets}) \
GROUP BY b",
                    a.table
                ),
            )?;
            for &b in ours.keys() {
                let d = i128::from(raw.get(&b).copied().unwrap_or(0))
                    - i128::from(agg.get(&b).copied().unwrap_or(0));
                if d != 0 {
                    diffs.push((a.table, b, d));
                }
            }
        }
        Ok(diffs)
    };
    let first = differences()?;
    if first.is_empty() {
        return Ok(out);
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let second = differences()?;
    for &(table, b, d) in &second {
        let missing = first.contains(&(table, b, d)) && d == i128::from(ours[&b]);
        if missing {
            out.repaired.push((table.to_string(), b));
        } else {
            out.unresolved.push((table.to_string(), b));
        }
    }
    for a in &AGGREGATES {
        let hours: Vec<String> = out
            .repaired
            .iter()
            .filter(|(t, _)| t == a.table)
            .map(|(_, b)| b.to_string())
            .collect();
        if hours.is_empty() {
            continue;
        }
        let source = format!(
            "records FINAL WHERE {days} AND {range} AND {BUCKET} IN ({})",
            hours.join(",")
        );
        client.execute(&format!(
            "INSERT INTO {db}.{} SELECT * FROM ({})",
            a.table,
            a.select(&db, &source)
        ))?;
    }
    Ok(out)
}

fn bucket_counts(client: &Client, sql: &str) -> Result<std::collections::BTreeMap<u64, u64>> {
    let mut out = std::collections::BTreeMap::new();
    for row in client.query_rows(sql)? {
        if let [b, n] = row.as_slice() {
            let parse = |s: &String| {
                s.parse::<u64>()
                    .map_err(|_| Error::Protocol(format!("not a number: {s:?}")))
            };
            out.insert(parse(b)?, parse(n)?);
        }
    }
    Ok(out)
}
// h16: end of the automatic repair block.
