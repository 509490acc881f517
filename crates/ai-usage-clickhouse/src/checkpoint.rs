//! The shipper's checkpoint: per day file (and adjustment file), the inode and the byte offset
//! ClickHouse has acknowledged. Written atomically (temp file, fsync,
//! rename, fsync of the directory) and only after an acknowledgement.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Default checkpoint file name inside the records directory.
pub const CHECKPOINT_FILE: &str = ".clickhouse-ship.json";

/// How far one file is shipped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMark {
    /// Inode of the file when shipped (0 where the platform has none).
    pub inode: u64,
    /// Bytes acknowledged: every complete line before this offset is in ClickHouse.
    pub offset: u64,
}

/// The checkpoint's content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// This host's id (fixed on the first ship: record ids depend on it).
    pub host: String,
    /// The server and database shipped to (no credentials).
    pub target: String,
    /// Per file name (day files and adjustment files).
    pub files: BTreeMap<String, FileMark>,
}

impl Checkpoint {
    /// Reads the checkpoint; `None` when there is none yet.
    pub fn load(path: &Path) -> Result<Option<Checkpoint>> {
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("cannot read checkpoint", path, e)),
        };
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|e| Error::Checkpoint {
                path: path.to_path_buf(),
                message: format!("not a checkpoint ({e})"),
            })
    }

    /// Replaces the checkpoint file atomically and durably.
    pub fn save(&self, path: &Path) -> Result<()> {
        let dir = parent_dir(path);
        let mut tmp = tempfile::Builder::new()
            .prefix(".clickhouse-ship.")
            .suffix(".tmp")
            .tempfile_in(&dir)
            .map_err(|e| Error::io("cannot create checkpoint", &dir, e))?;
        let text = serde_json::to_vec_pretty(self).map_err(|e| Error::Checkpoint {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        tmp.write_all(&text)
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(|e| Error::io("cannot write checkpoint", tmp.path(), e))?;
        tmp.persist(path)
            .map_err(|e| Error::io("cannot replace checkpoint", path, e.error))?;
        // The rename is durable only once the directory entry is.
        std::fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io("cannot sync directory", &dir, e))
    }
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The inode of an open file's metadata (0 off Unix).
pub fn inode_of(meta: &std::fs::Metadata) -> u64 {
    #[cfg(unix)]
    {
        std::os::unix::fs::MetadataExt::ino(meta)
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CHECKPOINT_FILE);
        assert_eq!(Checkpoint::load(&path).unwrap(), None);
        let mut c = Checkpoint {
            host: "h".into(),
            target: "http://x:1/db".into(),
            ..Checkpoint::default()
        };
        c.files.insert(
            "usage_2025-01-01.jsonl".into(),
            FileMark {
                inode: 7,
                offset: 99,
            },
        );
        c.save(&path).unwrap();
        c.files.get_mut("usage_2025-01-01.jsonl").unwrap().offset = 120;
        c.save(&path).unwrap();
        assert_eq!(Checkpoint::load(&path).unwrap(), Some(c));
        // No temp files left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        std::fs::write(&path, b"{oops").unwrap();
        assert!(Checkpoint::load(&path).is_err());
    }
}
