//! The report files this server writes: how often it may write them, how
//! many it keeps, and the names they carry. The export route and the
//! shared state both read these; neither owns them.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Duration;

/// Report exports allowed per [`EXPORT_WINDOW`].
pub const EXPORTS_PER_WINDOW: usize = 10;
/// The rate-limit window of report exports.
pub const EXPORT_WINDOW: Duration = Duration::from_secs(60);
/// Reports this server keeps on disk; older ones it wrote are deleted.
pub const MAX_KEPT_REPORTS: usize = 20;
/// File-name prefixes of report files (`export_report` JSON, `export_csv` CSV).
pub const REPORT_PREFIXES: [&str; 2] = ["usage_report_", "usage_daily_"];

/// Report files this server wrote, oldest first (for the on-disk cap).
#[derive(Debug, Default)]
pub struct ReportBook {
    written: VecDeque<PathBuf>,
}

impl ReportBook {
    /// Notes `written` and returns the files beyond [`MAX_KEPT_REPORTS`]
    /// to delete, oldest first.
    pub(crate) fn note(&mut self, written: PathBuf) -> Vec<PathBuf> {
        self.written.retain(|p| p != &written);
        self.written.push_back(written);
        let excess = self.written.len().saturating_sub(MAX_KEPT_REPORTS);
        self.written.drain(..excess).collect()
    }
}
