//! Opening the monitor the way each command needs it.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ai_usage_core::PricingTable;
use ai_usage_core::UsageMonitor;
use ai_usage_core::UsageQueries;
use ai_usage_core::Zone;
use indicatif::{ProgressBar, ProgressStyle};

use crate::args::Cli;
use crate::{CliError, CliResult};

/// Days kept in memory by default (the core's default retention).
pub const DEFAULT_RETENTION: u32 = 93;

/// The zone in force: `--tz` / `AI_USAGE_TZ`, else the machine's.
pub fn zone(cli: &Cli) -> Zone {
    cli.tz.unwrap_or(Zone::Local)
}

/// The pricing table: built-in prices with the catalogue installed in the
/// records directory by `pricing update` (if any) in the snapshot's place,
/// plus `--pricing` / `AI_USAGE_PRICING`.
pub fn pricing(cli: &Cli) -> CliResult<PricingTable> {
    let mut table = PricingTable::builtin();
    match ai_usage_core::installed::CatalogueStore::new(&cli.dir).load_current() {
        Ok(installed) => table.set_installed(installed.map(std::sync::Arc::new)),
        // A damaged install must not stop a report: the snapshot prices.
        Err(e) => tracing::warn!(
            error = %e,
            "installed price catalogue ignored; the built-in snapshot is in force"
        ),
    }
    if let Some(file) = &cli.pricing {
        table
            .load_file(file)
            .map_err(|e| CliError::failed(e.to_string()))?;
    }
    Ok(table)
}

/// The rates by day of `--rates FILE`, if given.
pub fn dated_rates(cli: &Cli) -> CliResult<Option<ai_usage_core::DatedRates>> {
    cli.rates_file
        .as_deref()
        .map(ai_usage_core::DatedRates::load_file)
        .transpose()
        .map_err(|e| CliError::failed(e.to_string()))
}

/// The budgets file: `--budgets` / `AI_USAGE_BUDGETS`, else `DIR/budgets.json`.
pub fn budgets_file(cli: &Cli) -> PathBuf {
    cli.budgets
        .clone()
        .unwrap_or_else(|| cli.dir.join(ai_usage_core::BUDGETS_FILE))
}

/// A monitor over an existing directory, history replayed, for read-only
/// commands. Never creates the directory. `oldest` widens the replay so a
/// query of an old date still finds its day.
pub fn open_read(cli: &Cli, oldest: Option<chrono::NaiveDate>) -> CliResult<UsageMonitor> {
    if !cli.dir.is_dir() {
        return Err(CliError::failed(format!(
            "records directory {} does not exist (set --dir or AI_USAGE_DIR)",
            cli.dir.display()
        )));
    }
    let zone = zone(cli);
    let retention = oldest.map_or(DEFAULT_RETENTION, |d| {
        // One more day: a day file is named by its writer's local date, which
        // can be a day before the reader's for the same moment.
        let back = (zone.today() - d).num_days().max(0) as u32 + 2;
        back.max(DEFAULT_RETENTION)
    });
    build(cli, &cli.dir, true, retention, None, false)
}

/// A monitor that may write (the directory is created when missing).
pub fn open_write(cli: &Cli, dir: &Path, replay: bool) -> CliResult<UsageMonitor> {
    build(cli, dir, replay, DEFAULT_RETENTION, None, false)
}

/// A monitor for `serve`: writes (HTTP ingest) and follows what the app's
/// own processes append, checking once a second when queried.
/// With `otlp`, every record counted from then on is exported as GenAI
/// metrics over OTLP/HTTP.
pub fn open_serve(cli: &Cli, dir: &Path, otlp: bool) -> CliResult<UsageMonitor> {
    build(
        cli,
        dir,
        true,
        DEFAULT_RETENTION,
        Some(Duration::from_secs(1)),
        otlp,
    )
}

fn build(
    cli: &Cli,
    dir: &Path,
    replay: bool,
    retention: u32,
    follow: Option<Duration>,
    otlp: bool,
) -> CliResult<UsageMonitor> {
    let mut builder = UsageMonitor::builder();
    if otlp {
        use ai_usage_otel::export::{OtlpExt, OtlpMetrics};
        builder = builder.otlp_metrics(OtlpMetrics::from_env());
    }
    if let Some(interval) = follow {
        builder = builder.follow(interval);
    }
    for (currency, rate) in &cli.rates {
        builder = builder.exchange_rate(*currency, *rate);
    }
    if let Some(rates) = dated_rates(cli)? {
        builder = builder.dated_rates(rates);
    }
    let builder = builder
        .dir(dir)
        .timezone(zone(cli))
        .pricing(pricing(cli)?)
        .retention_days(retention)
        .replay(replay)
        // Only `serve` (which follows) warns of a stale price catalogue at
        // start; every command would repeat it, and `pricing status` shows it.
        .warn_stale_catalogue(follow.is_some());
    // Replay has no progress hook: a spinner says we are working.
    let spinner = (replay && std::io::stderr().is_terminal()).then(|| {
        let s = ProgressBar::new_spinner();
        s.set_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        s.set_message(format!("读取记录 reading {}", dir.display()));
        s.enable_steady_tick(Duration::from_millis(100));
        s
    });
    let monitor = builder.build();
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    Ok(monitor?)
}

/// The ClickHouse endpoint of `--clickhouse`, if given.
pub fn clickhouse_endpoint(cli: &Cli) -> CliResult<Option<ai_usage_clickhouse::Endpoint>> {
    cli.clickhouse
        .as_deref()
        .map(|url| ai_usage_clickhouse::Endpoint::parse(url, &cli.clickhouse_database))
        .transpose()
        .map_err(|e| CliError::usage(e.to_string()))
}

/// Queries over the fleet's records when `--clickhouse` is given.
pub fn fleet(cli: &Cli) -> CliResult<Option<ai_usage_clickhouse::FleetQueries>> {
    let Some(endpoint) = clickhouse_endpoint(cli)? else {
        return Ok(None);
    };
    let client = ai_usage_clickhouse::Client::new(endpoint, Duration::from_secs(60));
    let mut q = ai_usage_clickhouse::FleetQueries::new(client, zone(cli), pricing(cli)?);
    for (currency, rate) in &cli.rates {
        q = q.exchange_rate(*currency, *rate);
    }
    if let Some(rates) = dated_rates(cli)? {
        q = q.dated_rates(rates);
    }
    Ok(Some(q))
}

/// The answers a read command prints, from wherever `--clickhouse` says
/// the records are.
pub struct Answers {
    /// The query interface: the fleet's, or a monitor over the directory.
    pub queries: Box<dyn UsageQueries>,
    /// Where the answers come from, for messages ("ClickHouse", the
    /// records directory).
    pub origin: String,
    /// The title suffix of answers for the whole fleet (` (fleet)`).
    pub mark: &'static str,
}

/// The answers: the fleet's with `--clickhouse`, else a monitor over the
/// records directory (its history back to `oldest`, see [`open_read`]);
/// either evaluates `budgets`.
pub fn answers(
    cli: &Cli,
    oldest: Option<chrono::NaiveDate>,
    budgets: Vec<ai_usage_core::Budget>,
) -> CliResult<Answers> {
    if let Some(f) = fleet(cli)? {
        return Ok(Answers {
            queries: Box::new(f.with_budgets(budgets)),
            origin: "ClickHouse".to_string(),
            mark: " (fleet)",
        });
    }
    let monitor = open_read(cli, oldest)?;
    monitor.add_budgets(budgets)?;
    Ok(Answers {
        queries: Box::new(monitor),
        origin: format!("{} (last {DEFAULT_RETENTION} days)", cli.dir.display()),
        mark: "",
    })
}

/// A ClickHouse failure as a one-line command error.
pub fn fleet_error(e: ai_usage_clickhouse::Error) -> CliError {
    match e {
        ai_usage_clickhouse::Error::Core(e) => e.into(),
        e => CliError::failed(e.to_string()),
    }
}

/// A progress bar on stderr when it is a terminal (else `None`).
pub fn progress_bar(message: &str) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(message.to_string());
    Some(bar)
}

/// Prints a value as pretty JSON on stdout.
pub fn print_json<T: serde::Serialize>(value: &T) -> CliResult {
    let text = ai_usage_core::json_text::to_string_pretty(value)
        .map_err(|e| CliError::failed(format!("cannot serialise output: {e}")))?;
    outln!("{text}");
    Ok(())
}
