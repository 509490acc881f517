//! A private ClickHouse server for tests: its own data directory in a temp
//! dir and free loopback ports; killed (SIGKILL) and restarted on demand.
//!
//! Without the server binary the tests print `skipped: …` and pass, unless
//! env `CI` is set, where a missing server fails them.
#![allow(dead_code)]

/// ClickHouse 26.x's engine (chDB) behind our HTTP front.
pub mod chdb;
/// The fleet scenario's shared data and checks.
pub mod scenario;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ai_usage_clickhouse::{Client, Endpoint};

const SKIP: &str = "skipped: install clickhouse-server (apt-get install clickhouse-server)";
const CONFIG: &str = "/etc/clickhouse-server/config.xml";

/// A running test server.
pub struct Server {
    bin: PathBuf,
    dir: tempfile::TempDir,
    http: u16,
    tcp: u16,
    interserver: u16,
    child: Option<Child>,
}

fn find_binary() -> Option<PathBuf> {
    // CLICKHOUSE_SERVER overrides the search (tests use it to check skipping).
    if let Ok(p) = std::env::var("CLICKHOUSE_SERVER") {
        return Some(PathBuf::from(p)).filter(|p| p.exists());
    }
    ["/usr/sbin/clickhouse-server", "/usr/bin/clickhouse-server"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Server {
    /// Starts a server, or returns `None` (after printing why) when the
    /// binary is missing outside CI.
    pub fn start() -> Option<Server> {
        let bin = match find_binary() {
            Some(b) if Path::new(CONFIG).exists() => b,
            _ => {
                if std::env::var_os("CI").is_some() {
                    panic!("CI is set but clickhouse-server is not installed");
                }
                println!("{SKIP}");
                return None;
            }
        };
        let mut s = Server {
            bin,
            dir: tempfile::tempdir().expect("temp dir"),
            http: free_port(),
            tcp: free_port(),
            interserver: free_port(),
            child: None,
        };
        // A port found free can be taken by another process before the
        // server binds it: then start again on other ports.
        for _ in 0..4 {
            match s.try_spawn() {
                Ok(()) => return Some(s),
                Err(e) if e.contains("Address already in use") => {
                    s.http = free_port();
                    s.tcp = free_port();
                    s.interserver = free_port();
                }
                Err(e) => panic!("{e}"),
            }
        }
        panic!("clickhouse-server: no free ports after 4 attempts");
    }

    /// The HTTP URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.http)
    }

    /// An endpoint of `database` on this server.
    pub fn endpoint(&self, database: &str) -> Endpoint {
        Endpoint::parse(&self.url(), database).expect("endpoint")
    }

    /// A client of `database`.
    pub fn client(&self, database: &str) -> Client {
        Client::new(self.endpoint(database), Duration::from_secs(30))
    }

    /// Starts the server process (again) and waits until it answers.
    pub fn spawn(&mut self) {
        if let Err(e) = self.try_spawn() {
            panic!("{e}");
        }
    }

    /// [`Server::spawn`], saying why the server did not start.
    fn try_spawn(&mut self) -> Result<(), String> {
        // Only this attempt's errors say why it failed.
        let _ = std::fs::remove_file(self.dir.path().join("err"));
        let d = self.dir.path().display().to_string();
        let log = std::fs::File::create(self.dir.path().join("stdout")).expect("log file");
        let child = Command::new(&self.bin)
            .arg(format!("--config-file={CONFIG}"))
            .arg("--")
            .arg(format!("--path={d}/"))
            .arg(format!("--tmp_path={d}/tmp/"))
            .arg(format!("--user_files_path={d}/uf/"))
            .arg(format!("--format_schema_path={d}/fs/"))
            .arg(format!("--logger.log={d}/log"))
            .arg(format!("--logger.errorlog={d}/err"))
            .arg(format!("--http_port={}", self.http))
            .arg(format!("--tcp_port={}", self.tcp))
            .arg(format!("--interserver_http_port={}", self.interserver))
            .arg("--listen_host=127.0.0.1")
            // A suite run under libfaketime (to prove no test depends on the
            // hour) fakes our clock, not the database server's.
            .env_remove("LD_PRELOAD")
            .env_remove("FAKETIME")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("log file")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start clickhouse-server");
        self.child = Some(child);
        let probe = self.client("default");
        let started = Instant::now();
        while probe.query_u64("SELECT 1").ok() != Some(1) {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    let err =
                        std::fs::read_to_string(self.dir.path().join("err")).unwrap_or_default();
                    self.child = None;
                    return Err(format!("clickhouse-server exited ({status}): {err}"));
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "clickhouse-server did not answer within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// SIGKILLs the server (no clean shutdown) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}
