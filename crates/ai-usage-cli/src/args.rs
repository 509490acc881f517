//! Command-line arguments.

use std::net::SocketAddr;
use std::path::PathBuf;

use ai_usage_core::bounds;
use ai_usage_core::Zone;
use ai_usage_core::{Currency, Money};
use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Help heading of the options every command takes, listed after the
/// command's own.
const GLOBAL: &str = "Global options";

/// Know exactly what your AI features cost: usage statistics, rankings,
/// reports, budgets and savings advice from the monitor's day files.
#[derive(Debug, Parser)]
#[command(name = "ai-usage", version, propagate_version = true)]
pub struct Cli {
    /// Records directory (day files `usage_YYYY-MM-DD.jsonl`).
    #[arg(
        long,
        global = true,
        help_heading = GLOBAL,
        env = "AI_USAGE_DIR",
        default_value = "records/ai_usage"
    )]
    pub dir: PathBuf,
    /// Time zone of days: `local`, `UTC`, an IANA name (`America/New_York`), an offset (`+08:00`) (default: local).
    #[arg(long, global = true,
        help_heading = GLOBAL, env = "AI_USAGE_TZ", value_parser = parse_zone)]
    pub tz: Option<Zone>,
    /// Pricing file (JSON or TOML) merged over the built-in prices.
    #[arg(long, global = true,
        help_heading = GLOBAL, env = "AI_USAGE_PRICING")]
    pub pricing: Option<PathBuf>,
    /// Budgets file (default: DIR/budgets.json).
    #[arg(long, global = true,
        help_heading = GLOBAL, env = "AI_USAGE_BUDGETS")]
    pub budgets: Option<PathBuf>,
    /// Exchange rate into CNY for converted totals, e.g. `--rate USD=7.1`
    /// (repeatable; env: comma-separated). Amounts stay apart per currency;
    /// the converted total says which rates it used.
    #[arg(long = "rate", global = true, help_heading = GLOBAL, env = "AI_USAGE_RATES", value_delimiter = ',', value_parser = parse_rate)]
    pub rates: Vec<(Currency, Money)>,
    /// Exchange rates by day into CNY: a CSV file `date,currency,rate` or
    /// JSON. Converted totals take each day's rate (the last earlier one
    /// for a day without; `--rate` before the first) and list the rates
    /// they used for which days.
    #[arg(long = "rates", global = true, help_heading = GLOBAL, env = "AI_USAGE_RATES_FILE")]
    pub rates_file: Option<PathBuf>,
    /// Answer queries from this ClickHouse server (the fleet's records) and
    /// ship to it: `http[s]://[user:password@]host:8123`.
    #[arg(
        long,
        global = true,
        help_heading = GLOBAL,
        env = "AI_USAGE_CLICKHOUSE",
        hide_env_values = true
    )]
    pub clickhouse: Option<String>,
    /// ClickHouse database of the fleet's tables.
    #[arg(
        long,
        global = true,
        help_heading = GLOBAL,
        env = "AI_USAGE_CLICKHOUSE_DATABASE",
        default_value = "ai_usage"
    )]
    pub clickhouse_database: String,
    /// Machine-readable JSON instead of tables.
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub json: bool,
    /// More log output on stderr (-v info, -vv debug).
    #[arg(short, long, global = true, help_heading = GLOBAL, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Usage summary of a day, an hour or a month (统计).
    Stats(StatsArgs),
    /// One broadcast session's figures (会话).
    Session {
        /// Session id, e.g. live_20251026_193000.
        id: String,
    },
    /// Users ranked by tokens or cost (Top 用户).
    TopUsers(TopArgs),
    /// Anchors (主播) ranked by tokens or cost.
    TopAnchors(TopArgs),
    /// Daily cost trend (成本趋势).
    Trend(RangeArgs),
    /// Export a report: JSON (the original monitor's format), daily CSV or raw records CSV.
    Report(ReportArgs),
    /// This month's cost forecast (预测本月费用).
    Forecast,
    /// Savings advice: cheaper models and lower call frequency (成本优化建议).
    Savings {
        /// Days of usage to analyse (today included).
        #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(bounds::DAYS.range()))]
        days: u32,
    },
    /// Budgets from the budgets file and where they stand (预算).
    ///
    /// The budgets file is DIR/budgets.json (or --budgets FILE, or
    /// AI_USAGE_BUDGETS): a JSON array of budgets, or an object with a
    /// "budgets" array. Each budget has a "name", a "period" (daily or
    /// monthly) and a "limit" (a number or a decimal string); "currency"
    /// defaults to CNY and "thresholds" (percent) to [80, 100]. An optional
    /// scope key limits it to one "user", "anchor", "function" or "model"
    /// (none: everything). Example:
    ///
    ///   {"budgets": [
    ///     {"name": "每日总预算", "period": "daily", "limit": 50},
    ///     {"name": "anchor_002 月预算", "anchor": "anchor_002", "period": "monthly", "limit": 300},
    ///     {"name": "qwen-max 每日", "model": "qwen-max", "period": "daily", "limit": "20.00", "thresholds": [50, 80, 100]}
    ///   ]}
    ///
    /// Alerts reach group chats when the file has a "notify" map of
    /// channels (kind feishu, dingtalk, wecom, slack or webhook, a "url",
    /// an optional "secret") and a budget names them in "notify":
    ///
    ///   {"notify": {"ops": {"kind": "feishu", "url": "https://open.feishu.cn/open-apis/bot/v2/hook/…", "secret": "…"}},
    ///    "budgets": [{"name": "每日总预算", "period": "daily", "limit": 50, "notify": ["ops"]}]}
    ///
    /// `serve` also posts a daily or weekly digest (cost against the period
    /// before, top functions, models and anchors, budget status, savings
    /// advice) when the file has a "digest" object; "at" is local time in
    /// --tz, "weekday" mon…sun (weekly), "language"/"lang" zh or en, "top"
    /// 1…20:
    ///
    ///   {"digest": {"schedule": "weekly", "weekday": "mon", "at": "09:00", "notify": ["ops"]}}
    ///
    /// `serve` delivers them; this command also shows the deliveries
    /// pending and the channels whose configuration was refused.
    #[command(verbatim_doc_comment)]
    Budgets {
        /// `test-notify CHANNEL [--digest]`: send a sample message.
        #[command(subcommand)]
        action: Option<BudgetsAction>,
    },
    /// Price calculator: the cost of one call (费用计算).
    Cost(CostArgs),
    /// The pricing table in force (定价); `pricing show MODEL`, `pricing missing`.
    Pricing(PricingArgs),
    /// Record one call (flushed to disk before exit).
    Record(RecordArgs),
    /// Write realistic demo data for a live-streaming app into --dir.
    Demo {
        /// Days of history to generate (today included).
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=366))]
        days: u32,
        /// Random seed (same seed, same data).
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Add to a directory that already holds records (by default demo
        /// refuses, so that running it twice does not double the data).
        #[arg(long)]
        append: bool,
    },
    /// Re-price stored calls with the prices in force now, each at its own
    /// time. Writes adjustment lines (DIR/adjustments_YYYY-MM-DD.jsonl) and
    /// never rewrites a usage file; a second run with the same prices
    /// writes nothing.
    Reprice(RepriceArgs),
    /// Serve the HTTP API, metrics and dashboard.
    Serve(ServeArgs),
    /// Ship the day files to ClickHouse (--clickhouse URL): everything not yet
    /// shipped, then exit; --follow keeps tailing.
    Ship(ShipArgs),
    /// Compress old day files to usage_YYYY-MM-DD.jsonl.zst (zstd); every
    /// command, the server and the shipper read them. Recent days stay plain
    /// JSONL. `serve` also does this every hour.
    Compact(CompactArgs),
}

/// `compact` arguments.
#[derive(Debug, Args)]
pub struct CompactArgs {
    /// Compress day files more than DAYS days old (today's and the recent
    /// days' files stay plain JSONL).
    #[arg(long, value_name = "DAYS", default_value_t = ai_usage_core::compact::DEFAULT_COMPRESS_AFTER_DAYS, value_parser = clap::value_parser!(u32).range(1..=36_600))]
    pub older_than: u32,
    /// Also remove day files more than DAYS days old. When the directory is
    /// shipped to ClickHouse (it has a ship checkpoint), a file not fully
    /// shipped is never removed.
    #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..=36_600))]
    pub delete_after: Option<u32>,
    /// zstd level (1-22): higher is smaller and slower.
    #[arg(long, default_value_t = ai_usage_core::compact::DEFAULT_LEVEL, value_parser = clap::value_parser!(i32).range(1..=22))]
    pub level: i32,
    /// The ship checkpoint that --delete-after respects (default:
    /// DIR/.clickhouse-ship.json).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
}

/// `reprice` arguments (prices: the built-in ones, plus --pricing FILE).
#[derive(Debug, Args)]
pub struct RepriceArgs {
    /// First day file YYYY-MM-DD.
    #[arg(long, value_parser = parse_date)]
    pub from: NaiveDate,
    /// Last day file YYYY-MM-DD.
    #[arg(long, value_parser = parse_date)]
    pub to: NaiveDate,
    /// Only calls recorded without a price.
    #[arg(long)]
    pub only_unpriced: bool,
    /// Only calls of this model (as recorded).
    #[arg(long)]
    pub model: Option<String>,
    /// Show the change per day and model, and the total, without writing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `ship` arguments.
#[derive(Debug, Args)]
pub struct ShipArgs {
    /// Keep shipping what is appended (until killed; killing is safe).
    #[arg(long)]
    pub follow: bool,
    /// This host's id in the fleet (default: the records directory's own id,
    /// HOSTNAME-xxxxxxxx, generated once and kept in DIR/.ai-usage-host-id).
    #[arg(long, env = "AI_USAGE_HOST_ID", value_parser = parse_host_id)]
    pub host_id: Option<String>,
    /// Checkpoint file (default: DIR/.clickhouse-ship.json).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Without --follow: seconds to keep retrying while ClickHouse is unreachable.
    #[arg(long, default_value_t = 30)]
    pub retry_for: u64,
    /// With --follow: also export the GenAI metrics of the records appended
    /// while shipping over OTLP/HTTP protobuf (OTEL_EXPORTER_OTLP_* variables).
    #[arg(long, env = "AI_USAGE_OTLP", requires = "follow")]
    pub otlp: bool,
    /// Records per insert.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub batch_rows: u64,
}

/// Which summary `stats` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Period {
    /// One local day.
    Daily,
    /// One clock hour.
    Hourly,
    /// One calendar month.
    Monthly,
}

/// `stats` arguments.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// daily, hourly or monthly.
    #[arg(value_enum)]
    pub period: Period,
    /// Daily: days before today (0 = today; at most 90, older days with --date).
    #[arg(long, conflicts_with_all = ["date", "hours_ago", "month"],
        value_parser = clap::value_parser!(u32).range(bounds::DAYS_AGO.range()))]
    pub days_ago: Option<u32>,
    /// Hourly: hours before the current hour (0 = this hour; at most 72).
    #[arg(long, conflicts_with_all = ["date", "days_ago", "month"],
        value_parser = clap::value_parser!(u32).range(bounds::HOURS_AGO.range()))]
    pub hours_ago: Option<u32>,
    /// Daily or hourly: a local date YYYY-MM-DD.
    #[arg(long, value_parser = parse_date)]
    pub date: Option<NaiveDate>,
    /// Hourly with --date: the hour 0–23.
    #[arg(long, requires = "date", value_parser = clap::value_parser!(u8).range(0..=23))]
    pub hour: Option<u8>,
    /// Monthly: YYYY-MM (default: this month).
    #[arg(long, value_parser = parse_month)]
    pub month: Option<(i32, u32)>,
}

/// What rankings order by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum By {
    /// Total tokens.
    Tokens,
    /// Cost.
    Cost,
    /// Calls.
    Calls,
}

/// A period of whole days: the last N days, or FROM..=TO.
#[derive(Debug, Clone, Args)]
pub struct DaysArgs {
    /// The last N days, today included (at most 90; longer periods with --from/--to).
    #[arg(long, conflicts_with_all = ["from", "to"], value_parser = clap::value_parser!(u32).range(bounds::DAYS.range()))]
    pub days: Option<u32>,
    /// First local date YYYY-MM-DD (with --to).
    #[arg(long, requires = "to", value_parser = parse_date)]
    pub from: Option<NaiveDate>,
    /// Last local date YYYY-MM-DD (with --from).
    #[arg(long, requires = "from", value_parser = parse_date)]
    pub to: Option<NaiveDate>,
}

/// `top-users` / `top-anchors` arguments.
#[derive(Debug, Args)]
pub struct TopArgs {
    /// Rows to show (1 to 100).
    #[arg(long, default_value_t = 10, value_parser = parse_limit)]
    pub limit: usize,
    /// Period (default: the last 7 days).
    #[command(flatten)]
    pub range: DaysArgs,
    /// Order by tokens, cost or calls.
    #[arg(long, value_enum, default_value_t = By::Tokens)]
    pub by: By,
}

/// `trend` arguments.
#[derive(Debug, Args)]
pub struct RangeArgs {
    /// Period (default: the last 30 days).
    #[command(flatten)]
    pub range: DaysArgs,
}

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// The JSON usage report.
    Json,
    /// One row per day × model × function.
    Csv,
    /// Every raw record of the period.
    Records,
}

/// `report` arguments.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Days covered, today included (at most 90).
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(bounds::DAYS.range()))]
    pub days: u32,
    /// Output file (default: DIR/usage_report_YYYYMMDD_HHMMSS.json, never overwritten).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// json, csv (daily rows) or records (raw records CSV).
    #[arg(long, value_enum, default_value_t = Format::Json)]
    pub format: Format,
    /// Start a CSV file with a UTF-8 byte order mark, so Excel shows Chinese
    /// names right (off by default: most other tools do not expect one).
    #[arg(long)]
    pub bom: bool,
}

/// `cost` arguments: a model and token counts, or provider response bodies.
#[derive(Debug, Args)]
pub struct CostArgs {
    /// Model name, e.g. qwen-plus.
    #[arg(required_unless_present_any = ["response", "responses"])]
    pub model: Option<String>,
    /// Input (prompt) tokens, cached and cache-written ones included.
    #[arg(required_unless_present_any = ["response", "responses"])]
    pub input_tokens: Option<u64>,
    /// Output (completion) tokens.
    #[arg(required_unless_present_any = ["response", "responses"])]
    pub output_tokens: Option<u64>,
    /// Input tokens read from the cache (part of the input).
    #[arg(long = "cached-tokens", alias = "cached", default_value_t = 0)]
    pub cached: u64,
    /// Input tokens written to the cache (part of the input).
    #[arg(
        long = "cache-write-tokens",
        alias = "cache-write",
        default_value_t = 0
    )]
    pub cache_write: u64,
    /// Reasoning tokens (part of the output).
    #[arg(long = "reasoning-tokens", alias = "reasoning", default_value_t = 0)]
    pub reasoning: u64,
    /// Provider (catalogue id such as `anthropic`, an API base URL, or a
    /// name): picks that provider's catalogue entry.
    #[arg(long)]
    pub provider: Option<String>,
    /// API flavour of the response bodies (e.g. `chat`, `responses`,
    /// `embeddings`; default: the provider's `default` flavour, or else the
    /// first of its flavours that reads the body).
    #[arg(long, requires = "provider")]
    pub api: Option<String>,
    /// Price as of this moment (RFC 3339, e.g. 2026-03-01T00:00:00Z; default: now).
    #[arg(long, value_parser = parse_instant)]
    pub at: Option<chrono::DateTime<chrono::Utc>>,
    /// One raw response body (JSON) of --provider to price; `-` reads stdin.
    #[arg(long, requires = "provider", conflicts_with_all = ["model", "responses"])]
    pub response: Option<PathBuf>,
    /// A JSONL file of response bodies (`-`: stdin): one JSON result per
    /// line, in order; a bad line prints `{"line": N, "error": …}`, and the
    /// command then exits 1 with the count of bad lines on stderr.
    #[arg(long, requires = "provider", conflicts_with_all = ["model"])]
    pub responses: Option<PathBuf>,
}

/// `pricing` arguments.
#[derive(Debug, Args)]
pub struct PricingArgs {
    /// What to show (default: the table).
    #[command(subcommand)]
    pub action: Option<PricingAction>,
}

/// `pricing` subcommands.
#[derive(Debug, Subcommand)]
pub enum PricingAction {
    /// How a model is priced: the match, the provider, the prices and their history.
    Show {
        /// Model name.
        model: String,
        /// Provider (catalogue id, API base URL or name).
        #[arg(long)]
        provider: Option<String>,
    },
    /// Models seen in the records that have no price, with call counts.
    Missing,
    /// Install a newer price catalogue into DIR/pricing (default: the
    /// genai-prices project's published data_slim.json), or roll back.
    ///
    /// The file (genai-prices data_slim.json or LiteLLM's
    /// model_prices_and_context_window.json, detected) is validated
    /// completely before anything changes; a bad or partial download changes
    /// nothing. `serve`, the monitor and every command then price the
    /// models the built-in CNY table does not know with it; a running
    /// `serve` picks it up within seconds.
    Update {
        /// Where to fetch it: an http(s) URL or a local file.
        #[arg(long, value_name = "URL|FILE", conflicts_with = "rollback")]
        from: Option<String>,
        /// Return to the catalogue in force before the last update (a second
        /// rollback undoes the first).
        #[arg(long)]
        rollback: bool,
        /// Give up a download after this many seconds.
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
        timeout: u64,
    },
    /// The price catalogue in force (built-in or updated), its date, age and
    /// size, and what changed since the previous one.
    Status,
}

/// `record` arguments.
#[derive(Debug, Args)]
pub struct RecordArgs {
    /// Model name.
    #[arg(long)]
    pub model: String,
    /// Function (功能), e.g. 实时分析.
    #[arg(long)]
    pub function: String,
    /// Input tokens.
    #[arg(long)]
    pub input_tokens: u64,
    /// Output tokens.
    #[arg(long)]
    pub output_tokens: u64,
    /// Cached input tokens (part of the input).
    #[arg(long, default_value_t = 0)]
    pub cached_tokens: u64,
    /// Wall time of the call in milliseconds.
    #[arg(long, default_value_t = 0.0)]
    pub duration_ms: f64,
    /// User id.
    #[arg(long)]
    pub user_id: Option<String>,
    /// Anchor (主播) id.
    #[arg(long)]
    pub anchor_id: Option<String>,
    /// Session id.
    #[arg(long)]
    pub session_id: Option<String>,
    /// The call failed.
    #[arg(long)]
    pub failed: bool,
    /// Error message of a failed call (implies --failed).
    #[arg(long)]
    pub error: Option<String>,
    /// Explicit cost (decimal, in the model's currency or --currency) instead of the price table.
    #[arg(long)]
    pub cost: Option<Money>,
    /// Currency of --cost, e.g. CNY or USD.
    #[arg(long, requires = "cost")]
    pub currency: Option<Currency>,
    /// Input tokens written to the prompt cache (part of the input), priced
    /// at the cache-write rate.
    #[arg(long, default_value_t = 0)]
    pub cache_write_tokens: u64,
    /// Reasoning (thinking) tokens, part of the output tokens.
    #[arg(long, default_value_t = 0)]
    pub reasoning_tokens: u64,
    /// Audio input tokens (part of the input).
    #[arg(long, default_value_t = 0)]
    pub input_audio_tokens: u64,
    /// Audio output tokens (part of the output).
    #[arg(long, default_value_t = 0)]
    pub output_audio_tokens: u64,
    /// Provider that served the call (anthropic, aws, an API base URL …):
    /// picks that provider's price.
    #[arg(long)]
    pub provider: Option<String>,
}

/// `budgets` subcommands.
#[derive(Debug, Subcommand)]
pub enum BudgetsAction {
    /// Send a sample alert to the channel CHANNEL of the budgets file's
    /// "notify" map, to check its URL, secret and keyword set-up.
    TestNotify {
        /// The channel's name in the "notify" map.
        channel: String,
        /// Send the digest of the latest period due instead (the file's
        /// "digest" schedule, else weekly), built from the records (or the
        /// fleet with --clickhouse).
        #[arg(long)]
        digest: bool,
    },
}

/// `serve` arguments.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1:10090")]
    pub addr: SocketAddr,
    /// Bearer token for write routes (and reads with --protect-reads).
    #[arg(long, env = "AI_USAGE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Require the token on read routes too.
    #[arg(long)]
    pub protect_reads: bool,
    /// Serve a non-loopback address without --token (anyone who can reach
    /// it can then record calls).
    #[arg(long, conflicts_with = "token")]
    pub allow_unauthenticated: bool,
    /// Serve a separate demo directory (DIR/../ai_usage_demo), generating
    /// 30 days of demo data first when it is empty.
    #[arg(long)]
    pub demo: bool,
    /// With --clickhouse: answer from ClickHouse but do not ship this
    /// host's day files there (another process ships them).
    #[arg(long)]
    pub no_ship: bool,
    /// Export GenAI metrics (token usage, duration, cost) over OTLP/HTTP
    /// protobuf, configured by the OTEL_EXPORTER_OTLP_* variables.
    #[arg(long, env = "AI_USAGE_OTLP")]
    pub otlp: bool,
    /// With --clickhouse: keep budget alerts per host (each on its own
    /// records) instead of alerting on the fleet's spend, once per
    /// threshold across the fleet (the default when budgets exist).
    #[arg(long)]
    pub no_fleet_alerts: bool,
    /// The dashboard's address as people reach it (e.g.
    /// https://ai-usage.example.com), linked from budget alerts.
    #[arg(long, env = "AI_USAGE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// With --clickhouse: seconds between reads of the fleet's spend for
    /// the hard limits (`block_at`) that budgets/check and check_budget
    /// apply; a check is at most this far behind the fleet.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub fleet_budget_refresh: u64,
    /// Every hour, compress day files more than DAYS days old (as
    /// `ai-usage compact --older-than DAYS`).
    #[arg(long, value_name = "DAYS", env = "AI_USAGE_COMPACT_AFTER", default_value_t = ai_usage_core::compact::DEFAULT_COMPRESS_AFTER_DAYS, value_parser = clap::value_parser!(u32).range(1..=36_600))]
    pub compact_after: u32,
    /// Never compress day files (keep every day plain JSONL).
    #[arg(long, env = "AI_USAGE_NO_COMPACT")]
    pub no_compact: bool,
    /// Every hour, remove day files more than DAYS days old (never one not
    /// fully shipped when the directory is shipped to ClickHouse).
    #[arg(long, value_name = "DAYS", env = "AI_USAGE_DELETE_AFTER", value_parser = clap::value_parser!(u32).range(1..=36_600))]
    pub delete_after: Option<u32>,
}

/// An RFC 3339 instant, e.g. `2026-03-01T00:00:00Z`.
pub fn parse_instant(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|_| format!("expected a time like 2026-03-01T00:00:00Z, got {s:?}"))
}

/// `YYYY-MM-DD`.
pub fn parse_date(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map_err(|_| format!("expected a date YYYY-MM-DD, got {s:?}"))
}

/// `YYYY-MM`, the year and month within the core's bounds.
pub fn parse_month(s: &str) -> Result<(i32, u32), String> {
    let bad = || format!("expected a month YYYY-MM, got {s:?}");
    let (y, m) = s.trim().split_once('-').ok_or_else(bad)?;
    let y: i32 = y.parse().map_err(|_| bad())?;
    let m: u32 = m.parse().map_err(|_| bad())?;
    let out_of_range = |e: ai_usage_core::Error| format!("{e} (expected a month YYYY-MM)");
    bounds::YEAR.check(y.into()).map_err(out_of_range)?;
    bounds::MONTH.check(m.into()).map_err(out_of_range)?;
    Ok((y, m))
}

/// `--limit`: rows of a ranking, within the core's bounds.
pub fn parse_limit(s: &str) -> Result<usize, String> {
    let n: i64 = s
        .trim()
        .parse()
        .map_err(|_| format!("expected a number of rows, got {s:?}"))?;
    let n = bounds::LIMIT.check(n).map_err(|e| e.to_string())?;
    usize::try_from(n).map_err(|_| format!("{n} rows do not fit this machine"))
}

/// `--host-id` / `AI_USAGE_HOST_ID`: a host's name in the fleet, never blank
/// (a blank id would merge with every other blank host's records).
pub fn parse_host_id(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        return Err(
            "the host id is empty (give a name, or leave it unset for the hostname)".into(),
        );
    }
    Ok(s.to_string())
}

/// A time zone as `Zone::from_str` reads it.
pub fn parse_zone(s: &str) -> Result<Zone, String> {
    s.parse::<Zone>().map_err(|e| e.to_string())
}

/// `CUR=RATE`: units of CNY per unit of `CUR`.
pub fn parse_rate(s: &str) -> Result<(Currency, Money), String> {
    let (cur, rate) = s
        .split_once('=')
        .ok_or_else(|| format!("invalid rate {s:?}: expected CUR=RATE, e.g. USD=7.1"))?;
    let cur: Currency = cur.parse()?;
    let rate: Money = rate
        .parse()
        .map_err(|e: ai_usage_core::MoneyParseError| e.to_string())?;
    if rate <= Money::ZERO {
        return Err(format!("invalid rate {s:?}: must be positive"));
    }
    Ok((cur, rate))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dates_and_months() {
        assert_eq!(
            parse_date("2025-10-26").unwrap(),
            NaiveDate::from_ymd_opt(2025, 10, 26).unwrap()
        );
        assert!(parse_date("2025-13-01").is_err());
        assert_eq!(parse_month("2025-02").unwrap(), (2025, 2));
        assert_eq!(
            parse_rate("usd=7.1").unwrap(),
            (Currency::USD, "7.1".parse().unwrap())
        );
        assert!(parse_rate("USD").is_err());
        assert!(parse_rate("USD=-1").is_err());
        assert!(parse_rate("US=7").is_err());
        assert!(parse_month("2025-00").is_err());
        assert!(parse_month("1999-12").unwrap_err().contains("year"));
        assert_eq!(parse_limit("100").unwrap(), 100);
        assert!(parse_limit("0").unwrap_err().contains("1..=100"));
        assert!(parse_host_id(" ").is_err());
        assert!(parse_month("202502").is_err());
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
