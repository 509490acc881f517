//! Errors of the ClickHouse shipper and queries.

use std::path::PathBuf;

/// What went wrong talking to ClickHouse or keeping the checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The ClickHouse URL or database name is not usable.
    #[error("invalid ClickHouse address: {0}")]
    InvalidUrl(String),
    /// The host id given for this records directory cannot be used.
    #[error("invalid host id: {0}")]
    InvalidHostId(String),
    /// The server could not be reached or the connection broke.
    #[error("ClickHouse at {endpoint} unreachable: {message}")]
    Transport {
        /// The server (without credentials).
        endpoint: String,
        /// The transport error.
        message: String,
    },
    /// The server answered with an error.
    #[error("ClickHouse error (HTTP {status}): {message}")]
    Server {
        /// HTTP status code.
        status: u16,
        /// The server's first line of error text.
        message: String,
    },
    /// The server's answer was not in the expected shape.
    #[error("unexpected answer from ClickHouse: {0}")]
    Protocol(String),
    /// A file could not be read or written.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The checkpoint file exists but does not fit this shipper.
    #[error("checkpoint {}: {message}", path.display())]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// Why it cannot be used.
        message: String,
    },
    /// The records directory's host id file cannot be used.
    #[error("host id file {}: {message}", path.display())]
    HostId {
        /// The host id file.
        path: PathBuf,
        /// Why it cannot be used.
        message: String,
    },
    /// Another shipper holds the records directory's ship lock.
    #[error("another shipper is already shipping {} (lock {})", dir.display(), lock.display())]
    Locked {
        /// The records directory.
        dir: PathBuf,
        /// The lock file.
        lock: PathBuf,
    },
    /// The server's rows for this host and day file came from another file
    /// (two records directories shipping under one host id): nothing of it
    /// was shipped.
    #[error(
        "the server's rows for host {host:?}, file {file} come from another file \
         (first-line fingerprint {theirs:016x} there, {ours:016x} in {}): two records \
         directories ship under one host id; give this one its own --host-id or checkpoint. \
         Nothing was shipped", dir.display()
    )]
    FileMismatch {
        /// The host id both ship under.
        host: String,
        /// The day file's name.
        file: String,
        /// This records directory.
        dir: PathBuf,
        /// This file's fingerprint.
        ours: u64,
        /// The fingerprint the server holds for (host, file).
        theirs: u64,
    },
    /// The database was written by a newer version of this crate.
    #[error("database schema version {found} is newer than this program's {supported}")]
    SchemaTooNew {
        /// Version found in `schema_version`.
        found: u32,
        /// Newest version this program knows.
        supported: u32,
    },
    /// An error of the core library (day files, pricing).
    #[error(transparent)]
    Core(#[from] ai_usage_core::Error),
}

impl Error {
    /// True when retrying later may succeed (network, server down or busy).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Transport { .. } => true,
            // 5xx are the server's trouble (overloaded, restarting); 4xx are ours.
            Error::Server { status, .. } => *status >= 500,
            _ => false,
        }
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
