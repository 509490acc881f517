//! `pricing update` (fetch, validate and install a newer price catalogue,
//! or roll back) and `pricing status` (the catalogue in force and what
//! changed since the previous one).

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use ai_usage_core::catalogue::Catalogue;
use ai_usage_core::installed::{
    catalogue_points, CatalogueDiff, CatalogueFormat, CatalogueInfo, CatalogueStore, InstalledInfo,
    Origin, PricePoint, STALE_AFTER_DAYS,
};
use ai_usage_core::MAX_PRICING_FILE_BYTES;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::args::Cli;
use crate::context::{pricing, print_json};
use crate::{CliError, CliResult};

/// Where the genai-prices project publishes its catalogue (the file the
/// built-in snapshot was taken from).
pub const DEFAULT_CATALOGUE_URL: &str =
    "https://raw.githubusercontent.com/pydantic/genai-prices/main/prices/data_slim.json";

/// The bytes of a catalogue and where they came from.
struct Fetched {
    bytes: Vec<u8>,
    /// The date its prices stand for: today for a download, the file's
    /// modification date for a local file.
    date: chrono::NaiveDate,
}

fn is_url(s: &str) -> bool {
    let lower = s.trim().to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// Downloads `url` with a timeout and the pricing-file size limit. A body
/// shorter than its `Content-Length` (a cut connection) is an error.
fn download(url: &str, timeout: Duration) -> Result<Vec<u8>, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .timeout_connect(Some(timeout.min(Duration::from_secs(10))))
        .user_agent(concat!("ai-usage/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let mut response = agent
        .get(url)
        .call()
        .map_err(|e| format!("cannot download {url}: {e}"))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("cannot download {url}: HTTP {status}"));
    }
    let expected = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(n) = expected.filter(|&n| n > MAX_PRICING_FILE_BYTES) {
        return Err(format!(
            "{url}: {n} bytes; a price catalogue may have at most {MAX_PRICING_FILE_BYTES}"
        ));
    }
    let mut bytes = Vec::new();
    response
        .body_mut()
        .as_reader()
        .take(MAX_PRICING_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| {
            format!(
                "partial download of {url} ({} bytes received): {e}",
                bytes.len()
            )
        })?;
    if bytes.len() as u64 > MAX_PRICING_FILE_BYTES {
        return Err(format!(
            "{url}: more than {MAX_PRICING_FILE_BYTES} bytes; a price catalogue may have at most that"
        ));
    }
    if let Some(n) = expected.filter(|&n| n != bytes.len() as u64) {
        return Err(format!(
            "partial download of {url}: {} of {n} bytes received",
            bytes.len()
        ));
    }
    Ok(bytes)
}

fn read_file(path: &Path) -> Result<Fetched, String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if meta.len() > MAX_PRICING_FILE_BYTES {
        return Err(format!(
            "{}: {} bytes; a price catalogue may have at most {MAX_PRICING_FILE_BYTES}",
            path.display(),
            meta.len()
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let today = Utc::now().date_naive();
    let date = meta
        .modified()
        .ok()
        .map(|t| DateTime::<Utc>::from(t).date_naive())
        .map_or(today, |d| d.min(today));
    Ok(Fetched { bytes, date })
}

fn fetch(source: &str, timeout: Duration) -> Result<Fetched, String> {
    if is_url(source) {
        Ok(Fetched {
            bytes: download(source, timeout)?,
            date: Utc::now().date_naive(),
        })
    } else {
        read_file(Path::new(source))
    }
}

/// What `pricing update --json` prints.
#[derive(Serialize)]
struct UpdateResult<'a> {
    /// False when the same file was already in force.
    changed: bool,
    /// The catalogue now in force.
    current: &'a InstalledInfo,
    /// The one before it (`null`: the built-in snapshot).
    previous: Option<&'a InstalledInfo>,
    /// What changed from the previous one.
    changes: Option<DiffCounts>,
}

#[derive(Serialize)]
struct DiffCounts {
    added: usize,
    removed: usize,
    changed: usize,
}

impl From<&CatalogueDiff> for DiffCounts {
    fn from(d: &CatalogueDiff) -> DiffCounts {
        DiffCounts {
            added: d.added.len(),
            removed: d.removed.len(),
            changed: d.changed.len(),
        }
    }
}

pub fn update(cli: &Cli, from: Option<&str>, timeout: Duration) -> CliResult {
    let source = from.unwrap_or(DEFAULT_CATALOGUE_URL).trim();
    if source.is_empty() {
        return Err(CliError::usage("--from is empty: give a URL or a file"));
    }
    let fetched = fetch(source, timeout).map_err(CliError::failed)?;
    let fetched_at = Utc::now();
    let sha256 = hex::encode(Sha256::digest(&fetched.bytes));
    // A local file is recorded by its absolute path (status may run elsewhere).
    let source = if is_url(source) {
        source.to_string()
    } else {
        std::path::absolute(source).map_or_else(|_| source.to_string(), |p| p.display().to_string())
    };
    let store = CatalogueStore::new(&cli.dir);
    let done = store
        .install(
            &fetched.bytes,
            Origin {
                source,
                fetched_at,
                date: fetched.date,
                sha256,
            },
        )
        .map_err(|e| CliError::failed(format!("price catalogue not installed: {e}")))?;
    let Some(current) = done.manifest.current.as_ref() else {
        return Err(CliError::failed(
            "price catalogue manifest has no current entry",
        ));
    };
    let diff = if done.changed {
        Some(diff_of(
            &store,
            done.manifest.previous.as_ref(),
            Some(current),
        )?)
    } else {
        None
    };
    if cli.json {
        return print_json(&UpdateResult {
            changed: done.changed,
            current,
            previous: done.manifest.previous.as_ref(),
            changes: diff.as_ref().map(DiffCounts::from),
        });
    }
    if !done.changed {
        outln!(
            "this catalogue is already in force (same SHA-256 {}): nothing changed",
            short(&current.sha256)
        );
        return Ok(());
    }
    outln!(
        "installed the {} price catalogue from {}: {}, dated {}, sha256 {}",
        current.format,
        current.source,
        count(current.models, "model", "models"),
        current.date,
        short(&current.sha256)
    );
    outln!("  before it: {}", describe(done.manifest.previous.as_ref()));
    if let Some(d) = &diff {
        outln!(
            "  changes: {}, {}, {} no longer listed (`ai-usage pricing status` lists them)",
            count(d.added.len(), "new model", "new models"),
            count(d.changed.len(), "changed price", "changed prices"),
            count(d.removed.len(), "model", "models")
        );
    }
    outln!("  a running `serve` uses it within seconds; `pricing update --rollback` returns to the previous one");
    Ok(())
}

pub fn rollback(cli: &Cli) -> CliResult {
    let store = CatalogueStore::new(&cli.dir);
    let m = store
        .rollback()
        .map_err(|e| CliError::failed(format!("rollback failed: {e}")))?;
    if cli.json {
        return print_json(&m);
    }
    outln!("price catalogue in force: {}", describe(m.current.as_ref()));
    outln!(
        "  rolled back from: {} (`pricing update --rollback` again restores it)",
        describe(m.previous.as_ref())
    );
    Ok(())
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

fn describe(info: Option<&InstalledInfo>) -> String {
    match info {
        None => format!(
            "the built-in genai-prices snapshot ({})",
            ai_usage_core::catalogue::BUILTIN_SNAPSHOT_DATE
        ),
        Some(i) => format!(
            "{} catalogue from {} ({}, {}, fetched {})",
            i.format,
            i.source,
            i.date,
            count(i.models, "model", "models"),
            i.fetched_at.format("%Y-%m-%d %H:%M UTC")
        ),
    }
}

/// The text prices of a catalogue at `at` (`None`: the built-in snapshot).
fn points_of(
    store: &CatalogueStore,
    info: Option<&InstalledInfo>,
    at: DateTime<Utc>,
) -> CliResult<std::collections::BTreeMap<String, PricePoint>> {
    match info {
        None => Catalogue::builtin()
            .map(|c| catalogue_points(c, at))
            .map_err(|e| {
                CliError::failed(format!("the built-in price catalogue does not load: {e}"))
            }),
        Some(i) => store
            .load(i)
            .map(|c| c.price_points(at))
            .map_err(|e| CliError::failed(e.to_string())),
    }
}

fn format_of(info: Option<&InstalledInfo>) -> CatalogueFormat {
    info.map_or(CatalogueFormat::GenaiPrices, |i| i.format)
}

/// What changed from `previous` to `current` (`None`: the built-in
/// snapshot). Across formats (genai-prices ↔ LiteLLM) models are keyed
/// differently and the snapshot still prices what LiteLLM's list lacks, so
/// only new models and changed prices are listed, not removed ones.
fn diff_of(
    store: &CatalogueStore,
    previous: Option<&InstalledInfo>,
    current: Option<&InstalledInfo>,
) -> CliResult<CatalogueDiff> {
    let now = Utc::now();
    let mut d = CatalogueDiff::between(
        &points_of(store, previous, now)?,
        &points_of(store, current, now)?,
    );
    if format_of(previous) != format_of(current) {
        d.removed.clear();
    }
    Ok(d)
}

/// `n thing` or `n things`.
fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// What `pricing status --json` prints.
#[derive(Serialize)]
struct Status<'a> {
    /// The catalogue in force: kind, format, date, age, stale, models.
    in_force: CatalogueInfo,
    /// Its manifest entry (source, fetch time, SHA-256) when updated.
    installed: Option<&'a InstalledInfo>,
    /// The catalogue in force before it (`null` with `previous_is_builtin`
    /// false: there is none).
    previous: Option<&'a InstalledInfo>,
    /// True when the previous catalogue is the built-in snapshot.
    previous_is_builtin: bool,
    /// What changed from the previous catalogue to the one in force.
    changes: Option<CatalogueDiff>,
    /// Days after which a catalogue counts as stale.
    stale_after_days: i64,
}

pub fn status(cli: &Cli) -> CliResult {
    let store = CatalogueStore::new(&cli.dir);
    let manifest = store
        .manifest()
        .map_err(|e| CliError::failed(e.to_string()))?;
    let table = pricing(cli)?;
    let in_force = table.catalogue_info();
    // The table falls back to the snapshot when the install is damaged:
    // show what is really in force.
    let current = table.installed().map(|i| i.info());
    let has_previous = manifest.current.is_some() || manifest.previous.is_some();
    let previous = if has_previous {
        if current.is_some() {
            manifest.previous.as_ref()
        } else {
            // Rolled back to the snapshot: the update rolled back from.
            manifest.previous.as_ref().or(manifest.current.as_ref())
        }
    } else {
        None
    };
    let previous_is_builtin = has_previous && current.is_some() && previous.is_none();
    let changes = if has_previous {
        Some(diff_of(&store, previous, current)?)
    } else {
        None
    };
    let out = Status {
        in_force,
        installed: current,
        previous,
        previous_is_builtin,
        changes,
        stale_after_days: STALE_AFTER_DAYS,
    };
    if cli.json {
        return print_json(&out);
    }
    let c = &out.in_force;
    outln!(
        "价格目录 price catalogue in force: {} ({}), dated {}, {} old, {}",
        c.kind,
        c.format,
        c.date,
        count(c.age_days.max(0) as usize, "day", "days"),
        count(c.models, "model", "models")
    );
    if let Some(i) = out.installed {
        outln!(
            "  source: {}, fetched {}, sha256 {}",
            i.source,
            i.fetched_at.format("%Y-%m-%d %H:%M UTC"),
            short(&i.sha256)
        );
    }
    if c.stale {
        outln!(
            "  stale: older than {STALE_AFTER_DAYS} days; new models may be unpriced (`ai-usage pricing update`)"
        );
    }
    if !has_previous {
        outln!("  no previous catalogue: nothing was installed with `ai-usage pricing update`");
        return Ok(());
    }
    // `None` here is the built-in snapshot (`has_previous` holds).
    outln!("  previous: {}", describe(previous));
    if let Some(d) = &out.changes {
        outln!(
            "变化 changes since the previous one: {}, {}, {} no longer listed",
            count(d.added.len(), "new model", "new models"),
            count(d.changed.len(), "changed price", "changed prices"),
            count(d.removed.len(), "model", "models")
        );
        if format_of(previous) != format_of(current) {
            outln!(
                "  ({} → {}: models are named differently, so none is listed as gone; the built-in snapshot still prices what LiteLLM's list lacks)",
                format_of(previous),
                format_of(current)
            );
        }
        for m in &d.added {
            outln!("  new: {m}");
        }
        for ch in &d.changed {
            outln!("  changed: {}: {} → {}", ch.model, ch.old, ch.new);
        }
        for m in &d.removed {
            outln!("  no longer listed: {m}");
        }
    }
    Ok(())
}
