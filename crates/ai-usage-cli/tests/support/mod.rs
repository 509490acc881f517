//! What the CLI's test files share: the binary, run on a directory at
//! +08:00 with none of the environment's `AI_USAGE_*` settings.
#![allow(dead_code)] // each test file uses its own part

use std::path::Path;
use std::process::{Command, Output};

/// The `ai-usage` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_ai-usage");

/// `ai-usage --dir DIR --tz +08:00`, unaffected by the caller's settings.
pub fn cmd(dir: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.arg("--dir").arg(dir).args(["--tz", "+08:00"]);
    for var in [
        "AI_USAGE_DIR",
        "AI_USAGE_TZ",
        "AI_USAGE_PRICING",
        "AI_USAGE_BUDGETS",
        "AI_USAGE_TOKEN",
        "AI_USAGE_CLICKHOUSE",
        "AI_USAGE_HOST_ID",
        "AI_USAGE_LOG",
        "RUST_LOG",
    ] {
        c.env_remove(var);
    }
    c
}

/// Runs `ai-usage --dir DIR --tz +08:00 ARGS…` to completion.
pub fn run(dir: &Path, args: &[&str]) -> Output {
    cmd(dir).args(args).output().expect("run ai-usage")
}

/// The run's standard error, as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
