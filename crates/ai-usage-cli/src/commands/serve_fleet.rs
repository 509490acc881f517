//! `serve --clickhouse`: the API and the page answer from ClickHouse (the
//! whole fleet), this host's day files are shipped there in the
//! background, and budgets alert on the fleet's spend.

use std::path::Path;
use std::sync::Arc;

use ai_usage_clickhouse::{FleetAlertThread, ShipperThread};
use ai_usage_core::UsageMonitor;
use ai_usage_server::ServerBuilder;

use crate::args::{Cli, ServeArgs};
use crate::{CliError, CliResult};

/// What `serve` needs of the fleet besides the server: the fleet's answers
/// and the claims settings (for the digest).
pub struct Fleet {
    /// The fleet's answers (the monitor's budgets on the fleet's spend).
    pub queries: Arc<dyn ai_usage_core::UsageQueries>,
    /// The claims table's settings, shared with the budget alerts.
    pub claims: ai_usage_clickhouse::ClickHouseAlerts,
}

/// With `--clickhouse`: `server` answers from the fleet (the monitor's
/// budgets on the fleet's spend), `/healthz` shows the store and this
/// host's shipping, and (unless `--no-ship`) `dir` is shipped in the
/// background. Without it, `server` as given.
pub fn answer_from_fleet(
    cli: &Cli,
    a: &ServeArgs,
    dir: &Path,
    monitor: &UsageMonitor,
    server: ServerBuilder,
) -> CliResult<(ServerBuilder, Option<Fleet>)> {
    let Some(queries) = crate::context::fleet(cli)? else {
        return Ok((server, None));
    };
    // The fleet's answers price with the monitor's table, which `serve`
    // swaps when a catalogue is installed or rolled back.
    let queries = queries
        .with_budgets_of(monitor.budget_handle())
        .with_pricing_of(monitor.pricing_handle());
    let shipper = match (a.no_ship, crate::context::clickhouse_endpoint(cli)?) {
        (false, Some(endpoint)) => {
            // A new database reports in --tz (else the shipper thread
            // creates it in the machine's zone once ClickHouse is up).
            let client = ai_usage_clickhouse::Client::new(
                endpoint.clone(),
                std::time::Duration::from_secs(60),
            );
            if let Err(e) =
                ai_usage_clickhouse::schema::migrate_in(&client, &crate::context::zone(cli))
            {
                tracing::warn!(error = %e, "cannot create the ClickHouse schema yet");
            }
            let mut cfg = ai_usage_clickhouse::ShipperConfig::new(dir, endpoint);
            cfg.pricing = crate::context::pricing(cli)?;
            let t =
                ai_usage_clickhouse::ShipperThread::spawn(cfg, std::time::Duration::from_secs(1))
                    .map_err(|e| CliError::failed(format!("cannot start the shipper: {e}")))?;
            eprintln!("ai-usage: shipping {} to ClickHouse", dir.display());
            Some(t)
        }
        _ => None,
    };
    // Budgets alert on the fleet's spend, once across the fleet; the
    // monitor's per-record alerts go off (the thread turns them off).
    let alerts = match crate::context::clickhouse_endpoint(cli)? {
        Some(endpoint) if !a.no_fleet_alerts && !monitor.budgets().is_empty() => {
            let cfg = ai_usage_clickhouse::ClickHouseAlerts::new(endpoint);
            let t = ai_usage_clickhouse::FleetAlertThread::spawn(
                &cfg,
                queries.clone(),
                monitor.budget_handle(),
            )
            .map_err(|e| CliError::failed(format!("cannot start the budget alerts: {e}")))?;
            eprintln!("ai-usage: budget alerts from the fleet's spend (once per threshold)");
            Some(t)
        }
        _ => None,
    };
    // Hard limits refuse on the fleet's spend, refreshed every few seconds.
    let budget_refresh = if monitor.budgets().iter().any(|b| b.block_at.is_some()) {
        let t = ai_usage_clickhouse::FleetBudgetRefresh::spawn(
            queries.clone(),
            monitor.budget_handle(),
            std::time::Duration::from_secs(a.fleet_budget_refresh),
        )
        .map_err(|e| CliError::failed(format!("cannot start the fleet spend refresh: {e}")))?;
        Some(t)
    } else {
        None
    };
    eprintln!(
        "ai-usage: answering from ClickHouse {}",
        queries.client().endpoint().display_target()
    );
    // `/healthz` asks the store each time: a short timeout keeps it quick.
    let probe = ai_usage_clickhouse::Client::new(
        queries.client().endpoint().clone(),
        std::time::Duration::from_secs(3),
    );
    let endpoint = queries.client().endpoint().display_target();
    let fleet = Fleet {
        claims: ai_usage_clickhouse::ClickHouseAlerts::new(queries.client().endpoint().clone()),
        queries: Arc::new(queries.clone()),
    };
    let server = server.queries(Arc::new(queries)).fleet_health(move || {
        // The closure owns the refresh thread: it runs as long as the
        // server (its `Drop` stops it).
        let _keep = &budget_refresh;
        health(&probe, &endpoint, &shipper, &alerts)
    });
    Ok((server, Some(fleet)))
}

/// What `/healthz` shows under `fleet`: whether the store answers, where it
/// is, this host's shipping and the fleet budget alerts.
fn health(
    probe: &ai_usage_clickhouse::Client,
    endpoint: &str,
    shipper: &Option<ShipperThread>,
    alerts: &Option<FleetAlertThread>,
) -> serde_json::Value {
    // Answers only once reachable, with our credentials, and with the
    // schema in place: what every fleet route needs. The error text
    // stays in the log (/healthz may be open).
    let ok = match ai_usage_clickhouse::schema::current_version(probe) {
        Ok(v) => v > 0,
        Err(e) => {
            tracing::debug!(error = %e, "fleet store not answering");
            false
        }
    };
    serde_json::json!({
        "ok": ok,
        // Without credentials: /healthz may be open.
        "clickhouse": endpoint,
        "shipping": shipper.as_ref().map(ShipperThread::status),
        "budget_alerts": alerts.as_ref().map(FleetAlertThread::status),
    })
}
