//! ClickHouse 26.x's engine behind our HTTP front (tests/current/chdb_http.py):
//! chDB runs the SQL, tables and views; the front speaks the part of the HTTP
//! interface our client uses. Started in a temp dir on a free loopback port,
//! killed on drop.
//!
//! The Python comes from env `AIU_CHDB_PYTHON`, else `python3`, and must
//! import `chdb`. Without it the tests print `skipped: …` and pass, unless
//! env `CI` is set, where it fails them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ai_usage_clickhouse::{Client, Endpoint};

/// What to install when chDB is missing.
const INSTALL: &str = "pip install chdb-core (ClickHouse 26.x engine) and set AIU_CHDB_PYTHON";

const FRONT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/current/chdb_http.py");

/// A running front over a fresh chDB data directory.
pub struct ChdbFront {
    dir: tempfile::TempDir,
    port: u16,
    child: Child,
}

fn imports_chdb(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import chdb"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn find_python() -> Option<PathBuf> {
    let python = std::env::var_os("AIU_CHDB_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("python3"));
    Some(python).filter(|p| imports_chdb(p))
}

impl ChdbFront {
    /// Starts the front, or returns `None` (after printing why) when no
    /// Python with chDB is found outside CI.
    pub fn start() -> Option<ChdbFront> {
        let Some(python) = find_python() else {
            if std::env::var_os("CI").is_some() {
                panic!("CI is set but no Python imports chdb: {INSTALL}");
            }
            println!("skipped: {INSTALL}");
            return None;
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let err = std::fs::File::create(dir.path().join("stderr")).expect("log file");
        let mut child = Command::new(&python)
            .arg(FRONT)
            .arg(dir.path())
            .arg("0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(err))
            .spawn()
            .expect("start the chDB front");
        // Its first line names the port it bound (port 0: no race for it).
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped stdout");
        let _ = BufReader::new(stdout).read_line(&mut line);
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse::<u16>().ok());
        let Some(port) = port else {
            let _ = child.kill();
            let _ = child.wait();
            let err = std::fs::read_to_string(dir.path().join("stderr")).unwrap_or_default();
            panic!("the chDB front did not start ({line:?}): {err}");
        };
        let front = ChdbFront { dir, port, child };
        let probe = front.client("default");
        let started = Instant::now();
        while probe.query_u64("SELECT 1").ok() != Some(1) {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the chDB front did not answer within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(front)
    }

    /// The HTTP URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// An endpoint of `database` behind this front.
    pub fn endpoint(&self, database: &str) -> Endpoint {
        Endpoint::parse(&self.url(), database).expect("endpoint")
    }

    /// A client of `database`.
    pub fn client(&self, database: &str) -> Client {
        Client::new(self.endpoint(database), Duration::from_secs(60))
    }

    /// The front's data directory (chDB's data and the insert spool).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for ChdbFront {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
