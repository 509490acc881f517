//! Report files: export (JSON or CSV, rate-limited, capped on disk) and
//! download by bare file name. All file work runs on the blocking pool.

use std::io::Read;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::json::PlainJson as Json;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use serde_json::json;

use crate::answers::ask_off_worker;
use crate::error::{ApiError, ErrorBody};
use crate::params::{ExportQuery, Params, DAYS, REPORT_FORMAT};
use crate::report_files::{ReportBook, EXPORTS_PER_WINDOW, EXPORT_WINDOW, REPORT_PREFIXES};
use crate::routes::off_worker;
use crate::state::AppState;

/// Writes a report file (JSON or CSV) and says where to download it; under
/// `serve --clickhouse` the report holds the whole fleet's figures.
#[utoipa::path(post, path = "/api/ai_usage/export_report", tag = "reports",
    params(ExportQuery),
    responses((status = 200, description = "`{success, report_path, download_url}`", body = serde_json::Value),
              (status = 401, description = "Token required", body = ErrorBody),
              (status = 422, description = "Invalid parameter", body = ErrorBody),
              (status = 429, description = "Too many exports", body = ErrorBody),
              (status = 500, description = "The report could not be written (details in the server log under the error id)", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn export_report(State(st): State<AppState>, p: Params) -> Result<Response, ApiError> {
    let days = p.u32_of(&DAYS, None)?;
    let format = p.choice_of(&REPORT_FORMAT)?;
    if !st.export_limit.lock().try_acquire(Instant::now()) {
        return Err(ApiError::RateLimited(format!(
            "at most {EXPORTS_PER_WINDOW} report exports per {} s; try again shortly",
            EXPORT_WINDOW.as_secs()
        )));
    }
    let monitor = Arc::clone(&st.monitor);
    let book = Arc::clone(&st.reports);
    let csv = format == "csv";
    // The figures come from the query interface (a fleet's under
    // `serve --clickhouse`); the file is written here either way, so
    // downloads and the on-disk cap work the same.
    let bytes = if csv {
        ask_off_worker(&st.queries, move |q| {
            let (from, to) = q.last_days(days);
            q.daily_csv(from, to, false)
        })
        .await?
    } else {
        ask_off_worker(&st.queries, move |q| q.usage_report(days))
            .await
            .and_then(|report| {
                ai_usage_core::report_json(&report)
                    .map_err(|e| ApiError::internal("cannot write the report", e))
            })?
    };
    let path = off_worker(move || {
        let stamp = monitor
            .zone()
            .local(ai_usage_core::now_timestamp())
            .format("%Y%m%d_%H%M%S")
            .to_string();
        let (prefix, ext) = if csv {
            ("usage_daily", "csv")
        } else {
            ("usage_report", "json")
        };
        let written = ai_usage_core::write_export(monitor.dir(), &stamp, None, prefix, ext, &bytes)
            .map_err(|e| ApiError::internal("cannot write the report", e))?;
        prune_reports(&book, written.clone());
        Ok(written)
    })
    .await?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .ok_or_else(|| ApiError::internal("the report has no file name", path.display()))?;
    tracing::info!(path = %path.display(), days, format, "report exported");
    Ok(Json(json!({
        "success": true,
        "report_path": path.display().to_string(),
        "download_url": format!("/api/ai_usage/download_report?path={name}"),
    }))
    .into_response())
}

/// Deletes the oldest reports this server wrote beyond `MAX_KEPT_REPORTS`,
/// so repeated exports cannot fill the disk. Files it did not write are
/// never touched. Blocking: call off the async workers.
fn prune_reports(book: &Mutex<ReportBook>, written: PathBuf) {
    let old = book.lock().note(written);
    for p in old {
        if let Err(e) = std::fs::remove_file(&p) {
            tracing::warn!(path = %p.display(), error = %e, "could not delete an old report");
        }
    }
}

/// True for a bare report file name: `usage_report_…`/`usage_daily_…` +
/// `.json`/`.csv`, only ASCII letters, digits, `_` and `-` in between (no
/// dots, slashes, backslashes or percent signs: no traversal in any encoding).
pub fn is_report_name(name: &str) -> bool {
    let Some(rest) = REPORT_PREFIXES.iter().find_map(|p| name.strip_prefix(p)) else {
        return false;
    };
    let Some(stem) = rest
        .strip_suffix(".json")
        .or_else(|| rest.strip_suffix(".csv"))
    else {
        return false;
    };
    !stem.is_empty()
        && stem.len() <= 64
        && stem
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Reads a report file the monitor wrote, refusing anything else.
/// Blocking: call off the async workers.
fn read_report(dir: &FsPath, name: &str) -> Result<Vec<u8>, ApiError> {
    let not_found = || ApiError::NotFound(format!("no report named {name:?}"));
    // The name is bare (checked by the caller), so the only link that could
    // lead elsewhere is the file itself: open it without following links and
    // without blocking (a FIFO would otherwise wait for a writer), then check
    // what was opened — no window between check and read.
    let canon_dir = dir.canonicalize().map_err(|_| not_found())?;
    let mut file = open_report(&canon_dir.join(name)).map_err(|_| not_found())?;
    let meta = file.metadata().map_err(|_| not_found())?;
    if !meta.file_type().is_file() {
        tracing::warn!(name, "refused a download of something not a regular file");
        return Err(not_found());
    }
    if link_count(&meta) > 1 {
        // A hard link made by someone else in the records directory could
        // point at any file the server may read (e.g. /etc/passwd).
        tracing::warn!(name, "refused a download of a file with several hard links");
        return Err(not_found());
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.read_to_end(&mut bytes).map_err(|_| not_found())?;
    Ok(bytes)
}

#[cfg(unix)]
fn open_report(path: &FsPath) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
}

#[cfg(not(unix))]
fn open_report(path: &FsPath) -> std::io::Result<std::fs::File> {
    if std::fs::symlink_metadata(path)?.file_type().is_symlink() {
        return Err(std::io::Error::new(std::io::ErrorKind::NotFound, "symlink"));
    }
    std::fs::File::open(path)
}

#[cfg(unix)]
fn link_count(meta: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    meta.nlink()
}

#[cfg(not(unix))]
fn link_count(_meta: &std::fs::Metadata) -> u64 {
    1
}

/// Downloads a report by bare file name.
#[utoipa::path(get, path = "/api/ai_usage/download_report", tag = "reports",
    params(("path" = String, Query, description = "Bare report file name, e.g. usage_report_20251026_143022.json")),
    responses((status = 200, description = "The report file (attachment)"),
              (status = 400, description = "Not a report file name", body = ErrorBody),
              (status = 404, description = "No such report", body = ErrorBody)))]
pub async fn download_report(State(st): State<AppState>, p: Params) -> Result<Response, ApiError> {
    let name = p
        .get("path")
        .ok_or_else(|| ApiError::param("path", "required: a report file name"))?
        .to_string();
    if !is_report_name(&name) {
        tracing::warn!(name = %name, "refused a download outside the report files");
        return Err(ApiError::BadRequest(
            "path must be a bare report file name (usage_report_….json or usage_daily_….csv)"
                .into(),
        ));
    }
    let dir = st.monitor.dir().to_path_buf();
    let n = name.clone();
    let bytes = off_worker(move || read_report(&dir, &n)).await?;
    let ctype = if name.ends_with(".csv") {
        "text/csv; charset=utf-8"
    } else {
        "application/json"
    };
    // The name is checked ASCII without quotes, so this cannot fail.
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
        .map_err(|e| ApiError::internal("cannot name the download", e))?;
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(ctype)),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_names() {
        assert!(is_report_name("usage_report_20251026_143022.json"));
        assert!(is_report_name("usage_report_20251026_143022.csv"));
        assert!(is_report_name("usage_daily_20251026_143022_1.csv"));
        for bad in [
            "../usage_report_1.json",
            "usage_report_../../etc/passwd.json",
            "usage_report_1.json/..",
            "/etc/passwd",
            "usage_report_%2e%2e.json",
            "usage_report_a\\b.json",
            "usage_report_.json",
            "usage_2025-10-26.jsonl",
            "usage_report_1.txt",
            "usage_report_1.json.json",
        ] {
            assert!(!is_report_name(bad), "{bad}");
        }
    }

    #[test]
    fn book_keeps_the_newest_and_forgets_rewrites() {
        let mut book = ReportBook::default();
        for i in 0..crate::report_files::MAX_KEPT_REPORTS {
            assert!(book.note(PathBuf::from(format!("r{i}"))).is_empty());
        }
        // Writing an existing name again does not count twice.
        assert!(book.note(PathBuf::from("r0")).is_empty());
        assert_eq!(book.note(PathBuf::from("new")), vec![PathBuf::from("r1")]);
    }
}
