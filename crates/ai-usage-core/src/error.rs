//! Errors of the core crate.

use std::path::PathBuf;

/// Errors returned by the monitor's setup, flush, store and query calls.
///
/// Recording itself never returns an error: I/O failures of the writer are
/// logged, counted and visible through [`crate::UsageMonitor::health`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done, e.g. "cannot create directory".
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The pricing table or file is invalid.
    #[error(transparent)]
    Pricing(#[from] crate::pricing::PricingError),
    /// A configuration value is invalid (names the setting).
    #[error("invalid {setting}: {message}")]
    Config {
        /// The setting, e.g. `AI_USAGE_DIR`.
        setting: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The writer thread is gone (after `shutdown`, or it could not start).
    #[error("the usage writer has stopped; records can no longer be written")]
    WriterStopped,
    /// Records could not be written to disk (the writer keeps retrying).
    #[error("usage records not yet on disk: {0}")]
    NotDurable(String),
    /// The writer's queue is full and the call would have to wait (see
    /// [`crate::UsageMonitor::try_record`]); nothing was counted.
    #[error("the usage queue is full ({capacity} records not yet on disk); try again later")]
    QueueFull {
        /// The queue capacity.
        capacity: usize,
    },
    /// A recorded value is out of range (names the field); nothing was counted.
    #[error(transparent)]
    InvalidRecord(#[from] crate::record::RecordError),
    /// Reading a day file at start-up panicked (a bug); its records were
    /// not counted, so the monitor refuses to start rather than under-count.
    #[error("replaying {path} panicked: {message}")]
    ReplayPanicked {
        /// The day file being read.
        path: PathBuf,
        /// The panic's message.
        message: String,
    },
    /// Compressing a day file did not give back its exact bytes; the plain
    /// file was kept.
    #[error("compressing {path} failed its check, plain file kept: {message}")]
    Compaction {
        /// The day file.
        path: PathBuf,
        /// What differed.
        message: String,
    },
    /// A query argument is out of range (names the argument).
    #[error("invalid {argument}: {message}")]
    InvalidArgument {
        /// The argument's name, e.g. `month`.
        argument: &'static str,
        /// What is wrong with it.
        message: String,
    },
}

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Error {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// Result with the core [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
