//! Helpers shared by the facade's integration tests.
// Not every test module uses every helper.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use ai_usage_monitor::UsageMonitor;
use serde_json::Value;

/// A monitor writing to its own temp dir, and the records it wrote.
pub struct TestMonitor {
    /// The records directory (removed on drop).
    pub dir: tempfile::TempDir,
    /// Shared, so async tasks and methods can hold it too.
    pub monitor: Arc<UsageMonitor>,
}

impl TestMonitor {
    /// A monitor with default settings on a fresh temp dir.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let monitor = UsageMonitor::builder()
            .dir(dir.path())
            .build()
            .expect("monitor");
        TestMonitor {
            dir,
            monitor: Arc::new(monitor),
        }
    }

    /// Flushes, then parses every `usage_*.jsonl` line in order.
    pub fn records(&self) -> Vec<Value> {
        self.monitor.flush().expect("flush");
        read_records(self.dir.path())
    }

    /// The one record written so far.
    pub fn only(&self) -> Value {
        let mut r = self.records();
        assert_eq!(r.len(), 1, "expected one record, got {r:#?}");
        r.remove(0)
    }
}

/// Every line of the `usage_*.jsonl` day files of `dir`, oldest file first.
pub fn read_records(dir: &Path) -> Vec<Value> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("read dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("usage_") && n.ends_with(".jsonl"))
        })
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .expect("day file")
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| serde_json::from_str::<Value>(l).expect("json line"))
                .collect::<Vec<_>>()
        })
        .collect()
}
