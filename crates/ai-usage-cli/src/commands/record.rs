//! `record`, `demo` and `serve`: the commands that write.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ai_usage_core::dayfile;
use ai_usage_core::demo as demo_data;
use ai_usage_core::intake::{OwnedEvent, TimeWindow};
use ai_usage_core::load_budgets_file;
use ai_usage_core::UsageMonitor;

use crate::args::{Cli, RecordArgs, ServeArgs};
use crate::context::{budgets_file, open_serve, open_write, print_json, progress_bar, zone};
use crate::output::{costs, int, local_time, money};
use crate::{CliError, CliResult};

pub fn record(cli: &Cli, a: &RecordArgs) -> CliResult {
    // The command line is one more door over the core's intake: the same
    // event and the same rules as HTTP and Python, checked before anything
    // is opened.
    let ev = OwnedEvent {
        model: a.model.clone(),
        function: a.function.clone(),
        usage: ai_usage_core::TokenUsage {
            cached_input_tokens: a.cached_tokens,
            cache_write_tokens: a.cache_write_tokens,
            reasoning_tokens: a.reasoning_tokens,
            input_audio_tokens: a.input_audio_tokens,
            output_audio_tokens: a.output_audio_tokens,
            ..ai_usage_core::TokenUsage::new(a.input_tokens, a.output_tokens)
        },
        duration_ms: a.duration_ms,
        success: !(a.failed || a.error.is_some()),
        error_msg: (a.failed || a.error.is_some())
            .then(|| a.error.clone().unwrap_or_else(|| "failed".to_owned())),
        user_id: a.user_id.clone(),
        anchor_id: a.anchor_id.clone(),
        session_id: a.session_id.clone(),
        cost: a.cost,
        currency: a.currency,
        provider: a.provider.clone().filter(|p| !p.trim().is_empty()),
        ..OwnedEvent::default()
    };
    if let Err(e) = ev.validate(TimeWindow::now()) {
        return Err(CliError::usage(format!("--{}: {e}", flag_of(e.field()))));
    }
    if a.error.is_some() && !a.failed {
        tracing::debug!("--error implies --failed");
    }
    // Budgets need today's spend, hence the replay; without budgets, skip it.
    let budgets = budgets_file(cli);
    let with_budgets = budgets.exists();
    let monitor = open_write(cli, &cli.dir, with_budgets)?;
    if with_budgets {
        monitor.add_budgets(load_budgets_file(&budgets)?)?;
    }
    let rec = ev.with_event(|ev| monitor.record(ev));
    // The record must be on disk before the process exits.
    monitor.flush()?;
    if cli.json {
        return print_json(&rec);
    }
    let currency = rec.currency.unwrap_or_default();
    outln!(
        "已记录 recorded {} {} {} in + {} out = {} ({})",
        local_time(&zone(cli), rec.timestamp),
        rec.model,
        int(rec.input_tokens),
        int(rec.output_tokens),
        money(rec.cost, currency),
        if rec.priced == Some(false) {
            "unpriced model"
        } else {
            rec.function.as_str()
        }
    );
    Ok(())
}

/// The option that sets an event field.
fn flag_of(field: &str) -> String {
    match field {
        "cached_input_tokens" => "cached-tokens".to_owned(),
        "error_msg" => "error".to_owned(),
        f => f.replace('_', "-"),
    }
}

pub fn demo(cli: &Cli, days: u32, seed: u64) -> CliResult {
    let monitor = open_write(cli, &cli.dir, false)?;
    let stats = generate(&monitor, days, seed)?;
    if cli.json {
        return print_json(&stats);
    }
    outln!(
        "演示数据已写入 demo data written to {}: {} records, {} sessions, {} anchors, {} failed, {} over {} days",
        cli.dir.display(),
        int(stats.records),
        stats.sessions,
        stats.anchors,
        int(stats.failed),
        costs(&stats.costs, ai_usage_core::Currency::CNY),
        stats.days
    );
    Ok(())
}

/// Generates demo data with a progress bar on a terminal, then flushes.
fn generate(monitor: &UsageMonitor, days: u32, seed: u64) -> CliResult<demo_data::DemoStats> {
    let bar = progress_bar("生成演示数据 demo");
    let report = |done: u64, total: u64| {
        if let Some(b) = &bar {
            b.set_length(total);
            b.set_position(done);
        }
    };
    let stats = demo_data::generate(monitor, days, seed, Some(&report));
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    monitor.flush()?;
    Ok(stats)
}

/// `<dir>/../ai_usage_demo`, or `records/ai_usage_demo` when `dir` has no parent.
fn demo_dir(dir: &Path) -> PathBuf {
    match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.join("ai_usage_demo"),
        _ => PathBuf::from("records/ai_usage_demo"),
    }
}

pub fn serve(cli: &Cli, a: &ServeArgs) -> CliResult {
    // Options first: nothing is opened or generated for a refused command line.
    if a.token.as_deref().is_some_and(|t| t.trim().is_empty()) {
        // An empty token used to turn authentication off without a word.
        return Err(CliError::usage(
            "--token (or AI_USAGE_TOKEN) is empty: give a non-empty token, or leave it unset to serve without authentication",
        ));
    }
    if a.protect_reads && a.token.is_none() {
        return Err(CliError::usage(
            "--protect-reads needs --token (or AI_USAGE_TOKEN)",
        ));
    }
    // A ClickHouse URL that does not parse is refused before anything starts.
    crate::context::clickhouse_endpoint(cli)?;
    let dir = if a.demo {
        demo_dir(&cli.dir)
    } else {
        cli.dir.clone()
    };
    let monitor = open_serve(cli, &dir, a.otlp)?;
    if a.demo && dayfile::list_day_files(&dir)?.is_empty() {
        eprintln!(
            "ai-usage: generating 30 days of demo data in {}",
            dir.display()
        );
        generate(&monitor, 30, 42)?;
        // The demo was recorded live into this monitor: no replay needed.
    }
    let budgets = if a.demo {
        dir.join(ai_usage_core::BUDGETS_FILE)
    } else {
        budgets_file(cli)
    };
    let mut notifier = None;
    if budgets.exists() {
        let config = ai_usage_core::load_budgets_config(&budgets)?;
        monitor.add_budgets(config.budgets.clone())?;
        notifier = super::notify::start_notifier(&monitor, &config, a.public_url.as_deref())?;
    }
    if !a.no_compact {
        super::compact::start_background(&dir, &zone(cli), a.compact_after, a.delete_after)?;
    }
    eprintln!("ai-usage: serving {} on http://{}/", dir.display(), a.addr);
    let monitor = Arc::new(monitor);
    let opts = ai_usage_server::ServeOptions {
        addr: a.addr,
        token: a.token.clone(),
        protect_reads: a.protect_reads,
        ..ai_usage_server::ServeOptions::default()
    };
    let server = ai_usage_server::ServerBuilder::new(Arc::clone(&monitor)).options(opts);
    let (server, fleet) = super::serve_fleet::answer_from_fleet(cli, a, &dir, &monitor, server)?;
    // The digest answers from where the page does (the fleet, or this
    // monitor); in a fleet the claims pick the one host that posts it.
    let _digest = match notifier {
        Some((notifier, Some(digest))) => {
            let (queries, claims) = match fleet {
                Some(f) => (f.queries, Some(f.claims)),
                None => (
                    Arc::clone(&monitor) as Arc<dyn ai_usage_core::UsageQueries>,
                    None,
                ),
            };
            Some(super::notify::start_digest(
                digest, &notifier, queries, claims,
            )?)
        }
        _ => None,
    };
    let result = server.serve_blocking();
    if let Err(e) = monitor.flush() {
        tracing::error!(error = %e, "could not flush records at shutdown");
    }
    result.map_err(|e| CliError::failed(format!("server on {}: {e}", a.addr)))
}
