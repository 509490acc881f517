//! Safe defaults checked before the commands that write or listen: `demo`
//! never silently adds to existing records, and `serve` never opens the
//! recording route to the network without a token.

use std::path::Path;

use ai_usage_core::dayfile;

use crate::args::ServeArgs;
use crate::{CliError, CliResult};

/// `demo` into `dir`: refused when a day file there already holds records,
/// unless `append` (a second run would otherwise double the data).
pub fn demo_target(dir: &Path, append: bool) -> CliResult {
    if append {
        return Ok(());
    }
    let holding: Vec<_> = dayfile::list_day_files(dir)?
        .into_iter()
        .filter(|(_, path)| std::fs::metadata(path).is_ok_and(|m| m.len() > 0))
        .collect();
    if let Some((first, _)) = holding.first() {
        return Err(CliError::usage(format!(
            "{} already holds records ({} day file(s) from {first}): demo would add to them; \
             use an empty --dir, or --append to add anyway",
            dir.display(),
            holding.len()
        )));
    }
    Ok(())
}

/// `serve` on a non-loopback address needs `--token` (else `POST /record`
/// is open to anyone who can reach it) or an explicit
/// `--allow-unauthenticated`.
pub fn serve_exposure(a: &ServeArgs) -> CliResult {
    if a.addr.ip().is_loopback() || a.token.is_some() || a.allow_unauthenticated {
        return Ok(());
    }
    Err(CliError::usage(format!(
        "refusing to serve {} without --token: it is reachable from other machines, \
         which could then record calls; give --token (or AI_USAGE_TOKEN), \
         or --allow-unauthenticated to serve it open",
        a.addr
    )))
}
