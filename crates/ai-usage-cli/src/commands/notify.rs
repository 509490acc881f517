//! Budget alert channels: the notifier `serve` runs, its digest thread,
//! `budgets test-notify`, and the delivery lines `budgets` prints.

use std::sync::Arc;

use ai_usage_core::{BudgetPeriod, Currency, Money, UsageMonitor, UsageQueries};
use ai_usage_notify::{
    channels_from_json, configuration_problems, send, send_digest, AlertMessage, AlertScope,
    ChannelConfig, DigestClaims, DigestConfig, DigestMessage, DigestSchedule, DigestThread,
    Notifier,
};

use crate::args::Cli;
use crate::context::budgets_file;
use crate::{CliError, CliResult};

/// Starts delivering `monitor`'s budget alerts to `channels` (nothing
/// without channels), and returns the running notifier with the digest to
/// post through it, if the file has one. A channel or digest that does not
/// parse stops `serve`.
pub fn start_notifier(
    monitor: &UsageMonitor,
    config: &ai_usage_core::BudgetsConfig,
    public_url: Option<&str>,
) -> CliResult<Option<(Notifier, Option<DigestConfig>)>> {
    let channels = &config.channels;
    if channels.is_empty() {
        if config.digest.is_some() {
            return Err(CliError::failed(
                "budgets file: the \"digest\" needs channels: define them in the \"notify\" map",
            ));
        }
        return Ok(None);
    }
    let mut notifier = Notifier::from_channels(channels)
        .map_err(|e| CliError::failed(format!("budgets file: {e}")))?;
    if let Some(url) = public_url.filter(|u| !u.trim().is_empty()) {
        notifier = notifier.public_url(url);
    }
    let digest = DigestConfig::from_budgets_config(config.digest.as_ref(), notifier.channels())
        .map_err(|e| CliError::failed(format!("budgets file: {e}")))?;
    monitor
        .attach(&notifier)
        .map_err(|e| CliError::failed(format!("cannot start the alert sender: {e}")))?;
    eprintln!(
        "ai-usage: budget alerts to {} channel(s): {}",
        channels.len(),
        channels.keys().cloned().collect::<Vec<_>>().join(", ")
    );
    Ok(Some((notifier, digest)))
}

/// The fleet claims of the digest: one host of the fleet posts each period.
struct FleetDigestClaims(ai_usage_clickhouse::OnceClaims);

impl DigestClaims for FleetDigestClaims {
    fn claim(&self, period_label: &str) -> Result<bool, String> {
        self.0
            .claim("digest", period_label)
            .map_err(|e| e.to_string())
    }
}

/// Starts posting `digest` through the running `notifier`, from `queries`
/// (the fleet's with `fleet_claims`, which then decides the one host).
pub fn start_digest(
    digest: DigestConfig,
    notifier: &Notifier,
    queries: Arc<dyn UsageQueries>,
    fleet_claims: Option<ai_usage_clickhouse::ClickHouseAlerts>,
) -> CliResult<DigestThread> {
    let claims = fleet_claims.map(|cfg| {
        Arc::new(FleetDigestClaims(ai_usage_clickhouse::OnceClaims::new(
            &cfg,
        ))) as Arc<dyn DigestClaims>
    });
    let what = describe(&digest);
    let thread = DigestThread::spawn(digest, notifier, queries, claims)
        .map_err(|e| CliError::failed(format!("cannot start the digest: {e}")))?;
    eprintln!("ai-usage: {what}");
    Ok(thread)
}

/// `weekly digest on Mon at 09:00 to ops`.
fn describe(d: &DigestConfig) -> String {
    let when = match d.schedule() {
        DigestSchedule::Daily => format!("daily digest at {}", d.local_time().format("%H:%M")),
        DigestSchedule::Weekly => format!(
            "weekly digest on {} at {}",
            d.posting_weekday(),
            d.local_time().format("%H:%M")
        ),
    };
    format!("{when} to {}", d.notify().join(", "))
}

/// `ai-usage budgets test-notify CHANNEL --digest`: the digest of the latest
/// period due, built now and sent at once (not through the outbox).
pub fn test_digest(cli: &Cli, channel: &str) -> CliResult {
    let (config, target) = channel_of(cli, channel)?;
    let channels = channels_from_json(&config.channels)
        .map_err(|e| CliError::failed(format!("budgets file: {e}")))?;
    let digest = DigestConfig::from_budgets_config(config.digest.as_ref(), &channels)
        .map_err(|e| CliError::failed(format!("budgets file: {e}")))?
        .unwrap_or_else(|| DigestConfig::new(DigestSchedule::Weekly, [channel]));
    let zone = crate::context::zone(cli);
    let now = ai_usage_core::now_timestamp();
    let period = digest.latest_due(now, &zone);
    let answers = crate::context::answers(cli, Some(period.previous_from), config.budgets)?;
    let message =
        DigestMessage::build(answers.queries.as_ref(), &period, digest.top_entries(), now)
            .map_err(|e| CliError::failed(format!("cannot build the digest: {e}")))?
            .with_language(digest.forced_language());
    match send_digest(&target, &message) {
        Ok(()) => {
            outln!(
                "已发送 sent the digest of {} to `{channel}` ({target})",
                period.label()
            );
            Ok(())
        }
        Err(e) => Err(send_failed(channel, &e)),
    }
}

fn send_failed(channel: &str, e: &ai_usage_notify::SendError) -> CliError {
    CliError::failed(format!(
        "`{channel}`: {e}{}",
        if e.is_retryable() {
            " (temporary: try again)"
        } else {
            " (check the channel's url, secret and keywords)"
        }
    ))
}

/// The budgets file and its channel `channel`.
fn channel_of(
    cli: &Cli,
    channel: &str,
) -> CliResult<(ai_usage_core::BudgetsConfig, ChannelConfig)> {
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
    let target = target.clone();
    Ok((config, target))
}

/// `ai-usage budgets test-notify CHANNEL`: one sample alert, sent now.
pub fn test_notify(cli: &Cli, channel: &str) -> CliResult {
    let (_, target) = channel_of(cli, channel)?;
    let target = &target;
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
        Err(e) => Err(send_failed(channel, &e)),
    }
}

/// The digest `serve` posts, if the budgets file has one (an error when
/// its "digest" object is wrong, so the mistake shows before `serve`).
pub fn print_digest(cli: &Cli) -> CliResult {
    let path = budgets_file(cli);
    let config = ai_usage_core::load_budgets_config(&path)?;
    let Some(raw) = config.digest.as_ref() else {
        return Ok(());
    };
    let channels = channels_from_json(&config.channels)
        .map_err(|e| CliError::failed(format!("{}: {e}", path.display())))?;
    let digest = DigestConfig::from_budgets_config(Some(raw), &channels)
        .map_err(|e| CliError::failed(format!("{}: {e}", path.display())))?;
    if let Some(d) = digest {
        let zone = crate::context::zone(cli);
        let next = d.next_due(ai_usage_core::now_timestamp(), &zone);
        outln!(
            "报告 digest: {} (next {}, covering {})",
            describe(&d),
            ai_usage_notify::message::time_in_zone(next.due, &zone).format("%Y-%m-%d %H:%M %:z"),
            next.label()
        );
    }
    Ok(())
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
