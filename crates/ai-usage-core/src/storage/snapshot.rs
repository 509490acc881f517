//! The rollup snapshot: the rollups of the records directory written to one
//! file, with what they cover, so a start loads it and replays only the
//! tail of the data files after it.
//!
//! # Format (version [`SNAPSHOT_VERSION`])
//!
//! `AIUSROLL` (8 bytes), the version (u32, little-endian), the CRC-32 of
//! the rest (u32, little-endian), then the [`postcard`] encoding of the
//! header and the rollups image. Written atomically (temporary file, fsync,
//! rename) as `rollups.snapshot` in the records directory.
//!
//! # What it covers
//!
//! A generic list of data files, each as (file name, bytes covered, hash of
//! its first line): the rollups hold exactly the records of those bytes.
//! Offsets count the file's uncompressed bytes and the first line is its
//! content, so a file stays recognised whatever later stores it. A start
//! uses the snapshot only when every covered file still begins with the
//! same line and is at least as long, the zone and pricing decisions it was
//! made with are the same (a different retention window is fine: days
//! outside it are dropped, files it did not cover are read whole), and the
//! version and checksum match; anything else means a full replay, logged with the
//! reason and shown in the monitor's health. It never gives a wrong answer.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::pricing::PricingTable;
use crate::rollups::image::{self, ImageNames, RollupsOwned, RollupsRef};
use crate::rollups::Rollups;
use crate::storage::dayfile::{self, ReadStats};
use crate::storage::replay::DayFilePart;

/// Name of the snapshot file in the records directory.
pub const SNAPSHOT_FILE: &str = "rollups.snapshot";
/// Version of the format written; a snapshot of another version is not used.
pub const SNAPSHOT_VERSION: u32 = 2;
const MAGIC: &[u8; 8] = b"AIUSROLL";
/// Longest first line hashed (a record is ~300 bytes).
const FIRST_LINE_MAX: usize = 64 * 1024;

/// One data file the snapshot covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Covered {
    /// File name in the records directory.
    pub name: String,
    /// Bytes covered (uncompressed), from the start; ends at a line end.
    pub len: u64,
    /// CRC-32 of the first line (see [`first_line_hash`]).
    pub first_line: u32,
}

/// What the rollups were made with and from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotHeader {
    /// The monitor's zone (days depend on it).
    pub zone: String,
    /// The retention window in days.
    pub retention_days: u32,
    /// When it was written (epoch seconds).
    pub written_at: f64,
    /// The data files covered.
    pub coverage: Vec<Covered>,
    /// Each model of the rollups, and whether the pricing knew it (a
    /// stored record's priced flag depends on it).
    pub models: Vec<(String, bool)>,
    /// What reading the covered bytes found.
    pub read: ReadStats,
    /// Covered lines skipped for a timestamp outside the window.
    pub out_of_window: u64,
}

/// The CRC-32 of the first line of `bytes` (without its `\n`, at most
/// 64 KiB), which identifies a data file.
pub fn first_line_hash(bytes: &[u8]) -> u32 {
    let line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    crc32fast::hash(&line[..line.len().min(FIRST_LINE_MAX)])
}

/// The first-line hash of a file on disk.
fn file_first_line(path: &Path) -> std::io::Result<u32> {
    // Plain or compressed alike: compaction keeps the day's bytes.
    let file = dayfile::open_day_file(path)?
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no such day file"))?;
    let mut buf = Vec::new();
    file.take(FIRST_LINE_MAX as u64 + 1).read_to_end(&mut buf)?;
    Ok(first_line_hash(&buf))
}

/// The models of `rollups` and whether `pricing` knows each.
pub fn model_decisions(rollups: &Rollups, pricing: &PricingTable) -> Vec<(String, bool)> {
    let mut names: Vec<&str> = rollups
        .days
        .values()
        .flat_map(|d| d.day.by_model.keys())
        .collect();
    names.sort_unstable();
    names.dedup();
    names
        .into_iter()
        .map(|m| (m.to_owned(), pricing.resolve(m).is_some()))
        .collect()
}

/// The coverage of a replay that read `parts`, ending at `ends` (where each
/// part's complete lines end); a part whose first line cannot be read is
/// left out (a later start then reads it whole).
pub fn coverage_of(
    parts: &[DayFilePart],
    ends: &std::collections::BTreeMap<chrono::NaiveDate, u64>,
) -> Vec<Covered> {
    parts
        .iter()
        .filter_map(|p| {
            let len = *ends.get(&p.day)?;
            let first_line = file_first_line(&p.path).ok()?;
            let name = p.path.file_name()?.to_str()?.to_owned();
            Some(Covered {
                name,
                len,
                first_line,
            })
        })
        .collect()
}

/// What identifies `zone` in a snapshot: its name, and for the machine's
/// local zone also its UTC offsets now and half a year ago (so a machine
/// moved to another zone does not reuse days cut for the old one).
pub fn zone_identity(zone: &crate::zone::Zone) -> String {
    match zone {
        crate::zone::Zone::Local => {
            let now = crate::zone::now_timestamp();
            format!(
                "local {} {}",
                zone.utc_offset_at(now),
                zone.utc_offset_at(now - 182.0 * 86_400.0)
            )
        }
        z => z.to_string(),
    }
}

/// The snapshot's path in `dir`.
pub fn snapshot_path(dir: &Path) -> PathBuf {
    dir.join(SNAPSHOT_FILE)
}

/// Writes the snapshot of `rollups` atomically; returns its size in bytes.
pub fn write(dir: &Path, header: &SnapshotHeader, rollups: &Rollups) -> Result<u64> {
    let bytes = encode(dir, header, rollups)?;
    write_encoded(dir, &bytes)
}

/// The snapshot file's bytes (see [`write`]), to write later with
/// [`write_encoded`] (e.g. once the rollups are no longer at hand).
pub fn encode(dir: &Path, header: &SnapshotHeader, rollups: &Rollups) -> Result<Vec<u8>> {
    let names = ImageNames::of(rollups);
    let body = postcard::to_stdvec(&(header, RollupsRef::of(rollups, &names))).map_err(|e| {
        Error::io(
            "cannot encode the rollup snapshot",
            snapshot_path(dir),
            std::io::Error::other(e),
        )
    })?;
    let mut bytes = Vec::with_capacity(body.len() + 16);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    bytes.extend_from_slice(&body);
    Ok(bytes)
}

/// Writes bytes made by [`encode`] atomically; returns their size.
pub fn write_encoded(dir: &Path, bytes: &[u8]) -> Result<u64> {
    crate::export::write_atomic(&snapshot_path(dir), bytes, false)?;
    Ok(bytes.len() as u64)
}

/// A snapshot read back and checked against the directory.
#[derive(Debug)]
pub struct Loaded {
    /// Its header.
    pub header: SnapshotHeader,
    /// Its rollups.
    pub rollups: Rollups,
    /// The parts of the planned files still to replay (the tail after the
    /// covered bytes, and files it does not cover).
    pub tail: Vec<DayFilePart>,
    /// Size of the snapshot file.
    pub bytes: u64,
}

/// Why a snapshot was not used (logged and shown in health).
pub type Unusable = String;

/// Reads the snapshot of `dir` and checks it against `plan` (the day files
/// of the window from `first_day`, about to be replayed), the zone, window
/// and pricing. `Ok(None)` when there is none.
pub fn load(
    dir: &Path,
    zone: &str,
    retention_days: u32,
    pricing: &PricingTable,
    plan: &[DayFilePart],
    first_day: chrono::NaiveDate,
) -> std::result::Result<Option<Loaded>, Unusable> {
    let path = snapshot_path(dir);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read it: {e}")),
    };
    if bytes.len() < 16 || &bytes[..8] != MAGIC {
        return Err("not a rollup snapshot".into());
    }
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if version != SNAPSHOT_VERSION {
        return Err(format!(
            "format version {version}, this build reads {SNAPSHOT_VERSION}"
        ));
    }
    let crc = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
    let body = &bytes[16..];
    if crc32fast::hash(body) != crc {
        return Err("checksum mismatch (the file is damaged)".into());
    }
    let (header, image): (SnapshotHeader, RollupsOwned) =
        image::reading(|| postcard::from_bytes(body))
            .map_err(|e| format!("cannot decode it: {e}"))?;
    if header.zone != zone {
        return Err(format!(
            "made for time zone {}, the monitor uses {zone}",
            header.zone
        ));
    }
    // Another window is fine (days outside this one are dropped, files it
    // did not cover are read whole), unless a wider one would count lines
    // the snapshot skipped for their timestamp.
    if retention_days > header.retention_days && header.out_of_window > 0 {
        return Err(format!(
            "made for a {}-day window that skipped {} lines by timestamp, the monitor keeps {retention_days} days",
            header.retention_days, header.out_of_window
        ));
    }
    if let Some((model, known)) = header
        .models
        .iter()
        .find(|(m, known)| pricing.resolve(m).is_some() != *known)
    {
        return Err(format!(
            "the pricing {} model {model:?} now",
            if *known { "no longer knows" } else { "knows" }
        ));
    }
    let mut tail = Vec::with_capacity(plan.len());
    let mut covered_names = 0;
    for part in plan {
        let name = part
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let Some(c) = header.coverage.iter().find(|c| c.name == name) else {
            tail.push(part.clone());
            continue;
        };
        covered_names += 1;
        if part.to < c.len {
            return Err(format!(
                "{name} is shorter ({} bytes) than the {} bytes it covers",
                part.to, c.len
            ));
        }
        match file_first_line(&part.path) {
            Ok(h) if h == c.first_line => {}
            Ok(_) => return Err(format!("the first line of {name} differs")),
            Err(e) => return Err(format!("cannot read {name}: {e}")),
        }
        tail.push(DayFilePart {
            from: c.len,
            ..part.clone()
        });
    }
    // A covered file of the window that is gone: its records are in the
    // rollups but no longer on disk.
    if covered_names < header.coverage.len() {
        let gone = header.coverage.iter().find(|c| {
            let in_window = dayfile::parse_day_file_name(&c.name).is_some_and(|d| d >= first_day);
            in_window
                && !plan
                    .iter()
                    .any(|p| p.path.file_name() == Some(c.name.as_ref()))
        });
        if let Some(c) = gone {
            return Err(format!("{} is gone", c.name));
        }
    }
    let rollups = image
        .into_rollups()
        .map_err(|e| format!("inconsistent content: {e}"))?;
    Ok(Some(Loaded {
        header,
        rollups,
        tail,
        bytes: bytes.len() as u64,
    }))
}
