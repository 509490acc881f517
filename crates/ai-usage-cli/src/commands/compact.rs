//! `compact`: old day files compressed, expired ones removed; and the same
//! pass run hourly by `serve`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ai_usage_clickhouse::{Checkpoint, CHECKPOINT_FILE};
use ai_usage_core::compact::{compact_dir, CompactOptions};
use ai_usage_core::Zone;

use crate::args::{Cli, CompactArgs};
use crate::context::{print_json, zone};
use crate::{CliError, CliResult};

/// How often `serve` compacts.
const SERVE_INTERVAL: Duration = Duration::from_secs(3600);

pub fn run(cli: &Cli, a: &CompactArgs) -> CliResult {
    if !cli.dir.is_dir() {
        return Err(CliError::failed(format!(
            "records directory {} does not exist (set --dir or AI_USAGE_DIR)",
            cli.dir.display()
        )));
    }
    let opts = CompactOptions {
        older_than_days: a.older_than,
        delete_after_days: a.delete_after,
        level: a.level,
    };
    let checkpoint = a
        .checkpoint
        .clone()
        .unwrap_or_else(|| cli.dir.join(CHECKPOINT_FILE));
    let r = compact_dir(&cli.dir, zone(cli).today(), &opts, &|name, len| {
        fully_shipped(&checkpoint, name, len)
    })?;
    if cli.json {
        return print_json(&r);
    }
    let per_record = if r.lines > 0 {
        format!(
            ", {:.1} bytes per record",
            r.compressed_bytes as f64 / r.lines as f64
        )
    } else {
        String::new()
    };
    outln!(
        "compressed {} day files ({} → {} bytes{per_record}); {} left for later (in use); {} removed",
        r.compressed,
        r.plain_bytes,
        r.compressed_bytes,
        r.busy,
        r.deleted
    );
    if !r.kept_unshipped.is_empty() {
        outln!(
            "kept {} files past --delete-after: not fully shipped yet ({})",
            r.kept_unshipped.len(),
            r.kept_unshipped.join(", ")
        );
    }
    Ok(())
}

/// Whether a day file (its plain name, `len` plain bytes) may be removed:
/// always when the directory is not shipped (no checkpoint), else only once
/// the checkpoint covers all of it. An unreadable checkpoint keeps everything.
fn fully_shipped(checkpoint: &Path, name: &str, len: u64) -> bool {
    match Checkpoint::load(checkpoint) {
        Ok(None) => true,
        Ok(Some(c)) => c.files.get(name).is_some_and(|m| m.offset >= len),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the ship checkpoint; removing nothing");
            false
        }
    }
}

/// Starts `serve`'s hourly pass (compress after `after` days; remove after
/// `delete_after`, never an unshipped file).
pub fn start_background(
    dir: &Path,
    zone: &Zone,
    after: u32,
    delete_after: Option<u32>,
) -> CliResult {
    let opts = CompactOptions {
        older_than_days: after,
        delete_after_days: delete_after,
        ..CompactOptions::default()
    };
    opts.validate()?;
    let dir: PathBuf = dir.to_path_buf();
    let zone = *zone;
    let checkpoint = dir.join(CHECKPOINT_FILE);
    std::thread::Builder::new()
        .name("ai-usage-compact".into())
        .spawn(move || loop {
            // A pass cut short by shutdown is safe: see the core's compact module.
            match compact_dir(&dir, zone.today(), &opts, &|name, len| {
                fully_shipped(&checkpoint, name, len)
            }) {
                Ok(r) if r.compressed + r.deleted > 0 => {
                    tracing::info!(
                        compressed = r.compressed,
                        removed = r.deleted,
                        "compacted old day files"
                    )
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "compacting old day files failed; will retry"),
            }
            std::thread::sleep(SERVE_INTERVAL);
        })
        .map_err(|e| CliError::failed(format!("cannot start the compaction thread: {e}")))?;
    Ok(())
}
