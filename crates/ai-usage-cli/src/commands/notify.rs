//! Budget alert channels: the notifier `serve` runs, `budgets test-notify`,
//! and the delivery lines `budgets` prints.

use std::collections::BTreeMap;

use ai_usage_core::{BudgetPeriod, Currency, Money, UsageMonitor};
use ai_usage_notify::{
    channels_from_json, configuration_problems, send, AlertMessage, AlertScope, Notifier,
};

use crate::args::Cli;
use crate::context::budgets_file;
use crate::{CliError, CliResult};

/// Starts delivering `monitor`'s budget alerts to `channels` (nothing
/// without channels). A channel that does not parse stops `serve`.
pub fn start_notifier(
    monitor: &UsageMonitor,
    channels: &BTreeMap<String, serde_json::Value>,
    public_url: Option<&str>,
) -> CliResult {
    if channels.is_empty() {
        return Ok(());
    }
    let mut notifier = Notifier::from_channels(channels)
        .map_err(|e| CliError::failed(format!("budgets file: {e}")))?;
    if let Some(url) = public_url.filter(|u| !u.trim().is_empty()) {
        notifier = notifier.public_url(url);
    }
    monitor
        .attach(&notifier)
        .map_err(|e| CliError::failed(format!("cannot start the alert sender: {e}")))?;
    eprintln!(
        "ai-usage: budget alerts to {} channel(s): {}",
        channels.len(),
        channels.keys().cloned().collect::<Vec<_>>().join(", ")
    );
    Ok(())
}

/// `ai-usage budgets test-notify CHANNEL`: one sample alert, sent now.
pub fn test_notify(cli: &Cli, channel: &str) -> CliResult {
    let path = budgets_file(cli);
    if !path.exists() {
        return Err(CliError::failed(format!(
            "budgets file {} does not exist (its \"notify\" map defines the channels)",
            path.display()
        )));
    }
    let config = ai_usage_core::load_budgets_config(&path)?;
    let channels = channels_from_json(&config.channels)
        .map_err(|e| CliError::failed(format!("{}: {e}", path.display())))?;
    let Some(target) = channels.get(channel) else {
        let known: Vec<&str> = channels.keys().map(String::as_str).collect();
        return Err(CliError::usage(format!(
            "no channel `{channel}` in the \"notify\" map of {} (defined: {})",
            path.display(),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        )));
    };
    let zone = crate::context::zone(cli);
    let now = ai_usage_core::now_timestamp();
    let today = zone.date_of(now);
    let limit: Money = "50".parse().unwrap_or(Money::ZERO);
    let spent: Money = "40.5".parse().unwrap_or(Money::ZERO);
    let message = AlertMessage::new(
        "测试 test-notify",
        AlertScope::Global,
        BudgetPeriod::Daily,
        BudgetPeriod::Daily.label(today),
        80,
        spent,
        limit,
        Currency::CNY,
        ai_usage_notify::message::time_in_zone(now, &zone),
    );
    match send(target, &message) {
        Ok(()) => {
            outln!("已发送 sent a sample alert to `{channel}` ({target})");
            Ok(())
        }
        Err(e) => Err(CliError::failed(format!(
            "`{channel}`: {e}{}",
            if e.is_retryable() {
                " (temporary: try again)"
            } else {
                " (check the channel's url, secret and keywords)"
            }
        ))),
    }
}

/// The outbox's pending deliveries and the channels whose configuration
/// was refused, under the budgets table (nothing when there is no outbox).
pub fn print_deliveries(cli: &Cli) -> CliResult {
    let entries = match ai_usage_notify::outbox::read_entries(&cli.dir) {
        Ok(e) => e,
        Err(e) => {
            outln!("通知 alerts: {e}");
            return Ok(());
        }
    };
    if entries.is_empty() {
        return Ok(());
    }
    let counts = ai_usage_notify::outbox::count(entries.iter());
    outln!(
        "通知 alerts: {} pending, {} sent, {} failed",
        counts.pending,
        counts.sent,
        counts.failed
    );
    for p in configuration_problems(&entries) {
        outln!(
            "  配置错误 configuration error: channel `{}` (budget {}): {}",
            p.channel,
            p.budget,
            p.error
        );
    }
    Ok(())
}
