//! Who a host is in the fleet.
//!
//! A records directory ships under one host id, fixed on its first ship
//! (record ids and the server's resume offsets depend on it). The default id
//! belongs to the directory, not to the machine: it is generated once, with
//! the hostname as a readable prefix and a random suffix, and kept in
//! [`HOST_ID_FILE`] inside the directory. Two directories of one machine
//! (several services on one VM, containers with host networking, a
//! re-imaged host that reuses its name) therefore never ship as one host.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// The file in the records directory that keeps its generated host id.
pub const HOST_ID_FILE: &str = ".ai-usage-host-id";

/// The machine's name: `HOSTNAME`, else the kernel's, else `localhost`.
pub fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.trim().is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "localhost".to_string())
}

/// The records directory's own host id: the one kept in [`HOST_ID_FILE`],
/// else a new `HOSTNAME-xxxxxxxx` written there (durably) first.
pub fn directory_host_id(dir: &Path) -> Result<String> {
    let path = dir.join(HOST_ID_FILE);
    if let Some(id) = read(&path)? {
        return Ok(id);
    }
    let id = format!("{}-{:08x}", hostname(), random_suffix(dir));
    let mut tmp = tempfile::Builder::new()
        .prefix(".ai-usage-host-id.")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| Error::io("cannot create host id file", dir, e))?;
    tmp.write_all(format!("{id}\n").as_bytes())
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| Error::io("cannot write host id file", tmp.path(), e))?;
    // No clobbering: a process that created the file first wins, and both
    // then use its id.
    match tmp.persist_noclobber(&path) {
        Ok(_) => {
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
            tracing::info!(host_id = %id, file = %path.display(), "new fleet host id for this records directory");
            Ok(id)
        }
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
            read(&path)?.ok_or_else(|| Error::HostId {
                path: path.clone(),
                message: "host id file is empty".into(),
            })
        }
        Err(e) => Err(Error::io("cannot write host id file", &path, e.error)),
    }
}

fn read(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let id = text.trim();
            if id.is_empty() || id.chars().any(char::is_control) {
                return Err(Error::HostId {
                    path: path.to_path_buf(),
                    message: "not a host id (empty or with control characters); remove the file \
                              only if this directory has never been shipped"
                        .into(),
                });
            }
            Ok(Some(id.to_string()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("cannot read host id file", path, e)),
    }
}

/// 32 bits that differ between directories and between runs: the clock's
/// nanoseconds, the process id and the directory's path, hashed.
fn random_suffix(dir: &Path) -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let seed = format!("{nanos}/{}/{}", std::process::id(), dir.display());
    xxhash_rust::xxh3::xxh3_64(seed.as_bytes()) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_keeps_its_own_id_and_two_directories_differ() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let id_a = directory_host_id(a.path()).unwrap();
        assert!(id_a.starts_with(&hostname()), "{id_a}");
        assert_eq!(directory_host_id(a.path()).unwrap(), id_a);
        assert_eq!(
            std::fs::read_to_string(a.path().join(HOST_ID_FILE)).unwrap(),
            format!("{id_a}\n")
        );
        assert_ne!(directory_host_id(b.path()).unwrap(), id_a);
    }

    #[test]
    fn a_damaged_id_file_is_an_error_not_a_new_identity() {
        let a = tempfile::tempdir().unwrap();
        std::fs::write(a.path().join(HOST_ID_FILE), "  \n").unwrap();
        let e = directory_host_id(a.path()).unwrap_err().to_string();
        assert!(e.contains("not a host id"), "{e}");
    }
}
