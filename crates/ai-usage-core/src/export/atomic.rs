//! Atomic file writes for reports: a temporary file in the target's
//! directory (`tempfile`), synced, then renamed into place, so a reader never
//! sees half a report.

use std::io::Write;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use crate::error::{Error, Result};

/// How many `_N` suffixes a default name tries before giving up.
const MAX_SUFFIX: u32 = 10_000;

/// Writes `bytes` to `path` atomically and returns the final path.
///
/// Without `no_clobber` an existing `path` is replaced. With it, the first
/// free name of `path`, `stem_1.ext`, `stem_2.ext`, … is taken; the
/// no-replace rename (`persist_noclobber`) makes that free of races with
/// another writer. The directory is created when missing.
pub fn write_atomic(path: &Path, bytes: &[u8], no_clobber: bool) -> Result<PathBuf> {
    write_atomic_with(path, no_clobber, |f| {
        f.write_all(bytes)
            .map_err(|e| Error::io("cannot write temporary file", path, e))
    })
}

/// [`write_atomic`] with the content written by `fill` into the temporary
/// file (so a large export need not be held in memory). Nothing appears at
/// `path` when `fill` fails.
pub fn write_atomic_with<E: From<Error>>(
    path: &Path,
    no_clobber: bool,
    fill: impl FnOnce(&mut std::fs::File) -> std::result::Result<(), E>,
) -> std::result::Result<PathBuf, E> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create directory", dir, e))?;
    let mut tmp = NamedTempFile::new_in(dir)
        .map_err(|e| Error::io("cannot create a temporary file in", dir, e))?;
    fill(tmp.as_file_mut())?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| Error::io("cannot write temporary file", tmp.path(), e))?;
    if !no_clobber {
        tmp.persist(path)
            .map_err(|e| Error::io("cannot rename temporary file to", path, e.error))?;
        return Ok(path.to_path_buf());
    }
    for n in 0..MAX_SUFFIX {
        let candidate = if n == 0 {
            path.to_path_buf()
        } else {
            suffixed(path, n)
        };
        match tmp.persist_noclobber(&candidate) {
            Ok(_) => return Ok(candidate),
            // Taken: try the next name with the same temporary file.
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => tmp = e.file,
            Err(e) => {
                return Err(
                    Error::io("cannot rename temporary file to", &candidate, e.error).into(),
                )
            }
        }
    }
    // Dropping `tmp` removes the temporary file.
    Err(Error::Config {
        setting: "report path",
        message: format!("no free file name next to {}", path.display()),
    }
    .into())
}

/// `dir/stem_N.ext`.
fn suffixed(path: &Path, n: u32) -> PathBuf {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match path.extension() {
        Some(ext) => format!("{stem}_{n}.{}", ext.to_string_lossy()),
        None => format!("{stem}_{n}"),
    };
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn default_names_are_never_clobbered() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.json");
        assert_eq!(write_atomic(&p, b"one", true).unwrap(), p);
        let second = write_atomic(&p, b"two", true).unwrap();
        assert_eq!(second, dir.path().join("r_1.json"));
        let third = write_atomic(&p, b"three", true).unwrap();
        assert_eq!(third, dir.path().join("r_2.json"));
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        assert_eq!(std::fs::read(&second).unwrap(), b"two");
        assert_eq!(std::fs::read(&third).unwrap(), b"three");
        // No temporary files left behind.
        assert_eq!(names(dir.path()), ["r.json", "r_1.json", "r_2.json"]);
    }

    #[test]
    fn a_failed_fill_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.csv");
        let r: Result<PathBuf> = write_atomic_with(&p, true, |f| {
            f.write_all(b"half a report").unwrap();
            Err(Error::Config {
                setting: "test",
                message: "the source failed".into(),
            })
        });
        assert!(r.is_err());
        assert!(names(dir.path()).is_empty(), "{:?}", names(dir.path()));
        let ok = write_atomic_with::<Error>(&p, true, |f| {
            f.write_all(b"whole").map_err(|e| Error::io("write", &p, e))
        });
        assert_eq!(ok.unwrap(), p);
        assert_eq!(std::fs::read(&p).unwrap(), b"whole");
    }

    #[test]
    fn explicit_paths_are_replaced_and_directories_created() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/dir/r.csv");
        assert_eq!(write_atomic(&p, b"old", false).unwrap(), p);
        assert_eq!(write_atomic(&p, b"new", false).unwrap(), p);
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        assert_eq!(names(&dir.path().join("sub/dir")), ["r.csv"]);
    }
}
