//! `ship`: the day files to ClickHouse, exactly once.

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use ai_usage_clickhouse::{Shipper, ShipperConfig};

use crate::args::{Cli, ShipArgs};
use crate::context::{clickhouse_endpoint, fleet_error, pricing, print_json, zone};
use crate::{CliError, CliResult};

pub fn run(cli: &Cli, a: &ShipArgs) -> CliResult {
    let endpoint = clickhouse_endpoint(cli)?
        .ok_or_else(|| CliError::usage("ship needs --clickhouse URL (or AI_USAGE_CLICKHOUSE)"))?;
    if !cli.dir.is_dir() {
        return Err(CliError::failed(format!(
            "records directory {} does not exist (set --dir or AI_USAGE_DIR)",
            cli.dir.display()
        )));
    }
    let mut cfg = ShipperConfig::new(&cli.dir, endpoint);
    cfg.host_id = a.host_id.clone();
    cfg.checkpoint = a.checkpoint.clone();
    cfg.batch_rows = a.batch_rows as usize;
    cfg.pricing = pricing(cli)?;
    let mut shipper = open_retrying(cfg, &zone(cli), Duration::from_secs(a.retry_for))?;
    let report = if a.follow {
        // Runs until killed: the checkpoint and the server's offsets make
        // any stop, even SIGKILL, safe to resume from.
        let never = AtomicBool::new(false);
        // --otlp: a monitor following the directory exports what is appended.
        let _metrics = if a.otlp {
            Some(crate::context::open_serve(cli, &cli.dir, true)?)
        } else {
            None
        };
        shipper
            .follow(&never, Duration::from_secs(1))
            .map_err(fleet_error)?
    } else {
        shipper
            .ship_all(Duration::from_secs(a.retry_for))
            .map_err(|e| CliError::failed(format!("could not ship everything: {e}")))?
    };
    if cli.json {
        return print_json(&report);
    }
    outln!(
        "shipped {} records and {} cost corrections in {} inserts as host {:?}; {} bad lines \
skipped; {} bytes waiting",
        report.records,
        report.adjustments,
        report.batches,
        shipper.host_id(),
        report.skipped_lines,
        report.lag_bytes
    );
    Ok(())
}

/// Creates or migrates the schema (a new database reports in `zone`) and
/// opens the shipper, retrying while ClickHouse is unreachable for at most
/// `patience`.
fn open_retrying(
    cfg: ShipperConfig,
    zone: &ai_usage_core::Zone,
    patience: Duration,
) -> CliResult<Shipper> {
    let deadline = Instant::now() + patience;
    let mut backoff = Duration::from_millis(200);
    loop {
        let client =
            ai_usage_clickhouse::Client::new(cfg.endpoint.clone(), Duration::from_secs(60));
        match ai_usage_clickhouse::schema::migrate_in(&client, zone)
            .and_then(|_| Shipper::open(cfg.clone()))
        {
            Ok(s) => return Ok(s),
            Err(e) if e.is_transient() && Instant::now() + backoff < deadline => {
                tracing::warn!(error = %e, retry_in = ?backoff, "ClickHouse not ready; will retry");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
            Err(e) => {
                return Err(CliError::failed(format!(
                    "could not ship: {}",
                    fleet_error(e).message
                )))
            }
        }
    }
}
