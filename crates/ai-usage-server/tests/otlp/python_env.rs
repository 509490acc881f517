//! A Python venv with the real OpenTelemetry clients, made once per pin set
//! in the temp dir (`aiu-otel-py-<hash>`) and reused. Without python3 or
//! PyPI, and without `CI`, the caller prints `skipped: …` and passes; under
//! `CI` it fails.

use std::path::PathBuf;
use std::process::Command;

/// Versions that install and import together: the official OpenAI
/// instrumentation, the SDK and its OTLP/HTTP exporter (which brings the
/// `opentelemetry-proto` decoder), and the one GenAI helper release the
/// instrumentation imports.
pub const PINS: &[&str] = &[
    "openai==2.54.0",
    "opentelemetry-sdk==1.45.2",
    "opentelemetry-exporter-otlp-proto-http==1.45.2",
    "opentelemetry-instrumentation-openai-v2==2.4b0",
    "opentelemetry-util-genai==1.1b0",
];

const IMPORTS: &str = "import openai, opentelemetry.sdk, opentelemetry.proto.collector.metrics.v1.metrics_service_pb2, \
                       opentelemetry.exporter.otlp.proto.http.trace_exporter, \
                       opentelemetry.instrumentation.openai_v2";

/// The venv's python, or `None` after printing why the test is skipped
/// (a panic under `CI`).
pub fn python() -> Option<PathBuf> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let hash = PINS
        .iter()
        .flat_map(|p| p.bytes())
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
    let dir = std::env::temp_dir().join(format!("aiu-otel-py-{hash:016x}"));
    let py = dir.join("bin").join("python");
    let imports = |py: &PathBuf| {
        Command::new(py)
            .args(["-c", IMPORTS])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if imports(&py) {
        return Some(py);
    }
    let build = || -> Result<(), String> {
        let tmp = dir.with_extension(format!("tmp{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let run = |cmd: &mut Command, what: &str| -> Result<(), String> {
            let out = cmd.output().map_err(|e| format!("{what}: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "{what} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                        .lines()
                        .last()
                        .unwrap_or("")
                ))
            }
        };
        run(
            Command::new("python3").args(["-m", "venv"]).arg(&tmp),
            "python3 -m venv",
        )?;
        run(
            Command::new(tmp.join("bin").join("python"))
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                ])
                .args(PINS),
            "pip install",
        )?;
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&tmp, &dir).map_err(|e| format!("moving the venv in place: {e}"))?;
        Ok(())
    };
    let outcome = build().and_then(|()| {
        if imports(&py) {
            Ok(())
        } else {
            Err("the pinned packages do not import".into())
        }
    });
    match outcome {
        Ok(()) => Some(py),
        Err(why) => {
            let what = format!(
                "install python3 with venv and pip, and reach PyPI for {} ({why})",
                PINS.join(" ")
            );
            assert!(std::env::var_os("CI").is_none(), "{what}");
            println!("skipped: {what}");
            None
        }
    }
}
