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

use crate::client::Client;
use crate::error::{Error, Result};

/// The newest schema version this crate writes and reads.
pub const SCHEMA_VERSION: u32 = 2;

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

/// Key columns of `hourly` (the sum is per distinct key).
const HOURLY_KEY: &str = "hour, currency, model, function, user_id, anchor_id";

/// What `hourly` sums, as expressions over `records`.
const HOURLY_SUMS: &str = "count() AS calls, sum(success) AS successful_calls, \
sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, \
sum(total_tokens) AS total_tokens, sum(cached_input_tokens) AS cached_input_tokens, \
sum(reasoning_tokens) AS reasoning_tokens, sum(cost_micros) AS cost_micros, \
countIf(priced = 0) AS unpriced_calls, sum(duration_ms) AS duration_ms_sum";

fn hourly_select(db: &str, final_: bool) -> String {
    format!(
        "SELECT toUInt32(intDiv(toUInt64(timestamp), 3600) * 3600) AS hour, currency, model, \
function, user_id, anchor_id, {HOURLY_SUMS} FROM {db}.records{} GROUP BY {HOURLY_KEY}",
        if final_ { " FINAL" } else { "" }
    )
}

/// v2: hourly aggregates and the view that keeps them.
fn v2(db: &str) -> Vec<String> {
    vec![
        format!(
            "CREATE TABLE IF NOT EXISTS {db}.hourly (
  hour UInt32,               -- epoch seconds of the UTC hour's start
  currency String, model String, function String, user_id String, anchor_id String,
  calls UInt64, successful_calls UInt64, input_tokens UInt64, output_tokens UInt64,
  total_tokens UInt64, cached_input_tokens UInt64, reasoning_tokens UInt64,
  cost_micros Int64, unpriced_calls UInt64, duration_ms_sum Float64
) ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(toDate(toDateTime(hour)))
ORDER BY ({HOURLY_KEY})"
        ),
        format!(
            "CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.hourly_mv TO {db}.hourly AS {}",
            hourly_select(db, false)
        ),
    ]
}

/// Creates the database and brings its tables to [`SCHEMA_VERSION`];
/// returns the version found before. Safe to run any number of times.
///
/// The v2 step copies rows already in `records` into `hourly` once: run the
/// first upgrade of a shared database from one process, with shippers of
/// older versions stopped (see docs/scale.md).
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
            _ => v2(&db),
        };
        for sql in steps {
            client.execute(&sql)?;
        }
        if version == 2 {
            backfill_hourly(client)?;
        }
        client.execute(&format!(
            "INSERT INTO {db}.schema_version (version) VALUES ({version})"
        ))?;
    }
    Ok(found)
}

/// Copies what `records` held before the view existed into `hourly`,
/// unless `hourly` already has rows (a retried migration).
fn backfill_hourly(client: &Client) -> Result<()> {
    let db = client.db();
    if client.query_u64(&format!("SELECT count() FROM {db}.hourly"))? > 0 {
        return Ok(());
    }
    client.execute(&format!(
        "INSERT INTO {db}.hourly SELECT * FROM ({})",
        hourly_select(&db, true)
    ))
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
