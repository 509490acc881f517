//! `ai-usage`: the command line of ai-usage-monitor.
//!
//! Human tables by default, `--json` for the library's structures. Errors
//! print one `error: …` line on stderr and exit with 2 for bad arguments,
//! 1 for everything else (missing directory, unreadable file, I/O).
//! When stdout closes early (`ai-usage … | head -1`) the command stops
//! quietly with status 141, the shell's status for a writer ended by SIGPIPE.
#![forbid(unsafe_code)]
// The doc comments on the arguments are the `--help` text, read in a
// terminal: a URL there is plain text, not a rustdoc link.
#![allow(rustdoc::bare_urls)]

/// `println!` that never panics: writes one line to stdout and returns from
/// the enclosing command with [`CliError`] when stdout is gone (a closed
/// pipe ends the command quietly) or fails.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::stdout_line(format_args!($($arg)*))?
    };
}

mod args;
mod commands;
mod context;
mod output;

use std::process::ExitCode;

use clap::Parser;

use crate::args::Cli;

/// A failed command: what to print and the exit code.
#[derive(Debug)]
pub struct CliError {
    /// 2 for bad arguments, 1 otherwise.
    pub code: u8,
    /// One line, without the `error: ` prefix.
    pub message: String,
    /// True when nothing is to be printed (stdout was closed by its reader).
    pub quiet: bool,
}

impl CliError {
    /// A bad argument (exit code 2).
    pub fn usage(message: impl Into<String>) -> CliError {
        CliError {
            code: 2,
            message: message.into(),
            quiet: false,
        }
    }

    /// A failure that is not the caller's syntax (exit code 1).
    pub fn failed(message: impl Into<String>) -> CliError {
        CliError {
            code: 1,
            message: message.into(),
            quiet: false,
        }
    }

    /// Stdout was closed by its reader (`| head`): stop without a message,
    /// with status 141 (128 + SIGPIPE), what a shell reports for a writer
    /// that the closed pipe ended.
    pub fn closed_stdout() -> CliError {
        CliError {
            code: CLOSED_STDOUT_STATUS,
            message: String::new(),
            quiet: true,
        }
    }
}

impl From<ai_usage_core::QueryError> for CliError {
    /// A refused question as the core's error; a store that cannot answer
    /// (ClickHouse) as a failure with its message.
    fn from(e: ai_usage_core::QueryError) -> CliError {
        match e {
            ai_usage_core::QueryError::Core(e) => e.into(),
            ai_usage_core::QueryError::Unavailable(e) => CliError::failed(e.to_string()),
        }
    }
}

impl From<ai_usage_core::Error> for CliError {
    fn from(e: ai_usage_core::Error) -> CliError {
        use ai_usage_core::Error;
        let code = match e {
            Error::InvalidArgument { .. } => 2,
            _ => 1,
        };
        CliError {
            code,
            message: e.to_string(),
            quiet: false,
        }
    }
}

/// Exit status when stdout was closed early: 128 + SIGPIPE (13).
pub const CLOSED_STDOUT_STATUS: u8 = 141;

/// Result of a command.
pub type CliResult<T = ()> = Result<T, CliError>;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return clap_error(e),
    };
    init_tracing(cli.verbose);
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.quiet => ExitCode::from(e.code),
        Err(e) => {
            // One line: newlines inside messages would break log scrapers.
            eprintln!("error: {}", e.message.replace('\n', " "));
            ExitCode::from(e.code)
        }
    }
}

/// Help and version go to stdout as clap prints them; every other parse
/// error becomes one `error: …` line and exit code 2.
fn clap_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        _ => {
            // The first paragraph is the message (a list of missing arguments
            // spans a few lines); the usage and "try --help" lines are not.
            let rendered = e.render().to_string();
            let first: Vec<&str> = rendered
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            let line = first.join(" ");
            let line = line.strip_prefix("error: ").unwrap_or(&line);
            eprintln!("error: {line} (see --help)");
            ExitCode::from(2)
        }
    }
}

/// Logs to stderr: `warn` by default (budget alerts, skipped lines), more
/// with `-v`, or whatever `AI_USAGE_LOG` / `RUST_LOG` say.
fn init_tracing(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = std::env::var("AI_USAGE_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
