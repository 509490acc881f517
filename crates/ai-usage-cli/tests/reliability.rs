//! Reliability against the real binary: every acknowledged record survives
//! SIGKILL exactly once, `serve --token ''` is refused, and
//! `report --format records` writes formula-safe CSV.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod support;
use support::{cmd, run};

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
}

/// Starts `ai-usage serve` on `dir` and waits until `/healthz` answers.
// The caller kills and waits for the returned child.
#[allow(clippy::zombie_processes)]
fn start_server(dir: &Path, addr: SocketAddr) -> Child {
    let mut child = cmd(dir)
        .args(["serve", "--addr", &addr.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut c) = Client::connect(addr) {
            if c.request("GET", "/healthz", "")
                .is_ok_and(|(s, _)| s == 200)
            {
                return child;
            }
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server on {addr} did not come up");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A keep-alive HTTP/1.1 client over one socket.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    addr: SocketAddr,
}

impl Client {
    fn connect(addr: SocketAddr) -> std::io::Result<Client> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.set_nodelay(true)?;
        Ok(Client {
            reader: BufReader::new(s.try_clone()?),
            writer: s,
            addr,
        })
    }

    /// One exchange: status and body.
    fn request(&mut self, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
        write!(
            self.writer,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        )?;
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
        let mut len = 0usize;
        loop {
            line.clear();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; len];
        self.reader.read_exact(&mut body)?;
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

/// Every `request_id` in the day files of `dir`, with how often it occurs.
/// Lines that do not parse (a line torn by the kill) are skipped, as replay
/// skips them.
fn ids_on_disk(dir: &Path) -> HashMap<String, usize> {
    let mut ids = HashMap::new();
    for entry in std::fs::read_dir(dir).expect("records dir").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !(name.starts_with("usage_") && name.ends_with(".jsonl")) {
            continue;
        }
        let text = std::fs::read(entry.path()).expect("day file");
        for line in text.split(|b| *b == b'\n') {
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) else {
                continue;
            };
            if let Some(id) = v["request_id"].as_str() {
                *ids.entry(id.to_string()).or_insert(0) += 1;
            }
        }
    }
    ids
}

/// 8 clients post single records, each with a unique `request_id`, until
/// `stop`; returns the ids answered 2xx.
fn load(
    addr: SocketAddr,
    round: usize,
    stop: Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<Vec<String>>> {
    (0..8)
        .map(|c| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                let Ok(mut client) = Client::connect(addr) else {
                    return acked;
                };
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let id = format!("r{round}-c{c}-{n}");
                    n += 1;
                    let body = format!(
                        r#"{{"model":"qwen-plus","function":"kill9","input_tokens":100,"output_tokens":20,"request_id":"{id}"}}"#
                    );
                    match client.request("POST", "/api/ai_usage/record", &body) {
                        Ok((s, _)) if (200..300).contains(&s) => acked.push(id),
                        Ok((503, _)) => std::thread::sleep(Duration::from_millis(5)),
                        Ok((s, b)) => panic!("unexpected answer {s}: {b}"),
                        // The server was killed mid-request: not acknowledged.
                        Err(_) => break,
                    }
                }
                acked
            })
        })
        .collect()
}

/// SIGKILL under load, 5 times on the same directory: after each restart,
/// every 2xx-acknowledged `request_id` is on disk exactly once.
#[cfg(unix)]
#[test]
fn acknowledged_records_survive_sigkill_exactly_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("ai_usage");
    let mut all_acked: HashSet<String> = HashSet::new();
    let rounds = 5;
    let load_time = Duration::from_millis(2500);
    let started = Instant::now();
    for round in 0..rounds {
        let addr = free_addr();
        let mut server = start_server(&dir, addr);
        let stop = Arc::new(AtomicBool::new(false));
        let clients = load(addr, round, Arc::clone(&stop));
        std::thread::sleep(load_time);
        // Child::kill is SIGKILL on Unix: no flush, no graceful shutdown.
        server.kill().expect("SIGKILL");
        let _ = server.wait();
        stop.store(true, Ordering::Relaxed);
        let mut acked_now = 0;
        for c in clients {
            let ids = c.join().expect("client");
            acked_now += ids.len();
            all_acked.extend(ids);
        }
        assert!(acked_now > 0, "round {round}: no request was acknowledged");

        // Restart on the same directory (replay must cope with the torn
        // tail), then check the disk.
        let addr = free_addr();
        let mut server = start_server(&dir, addr);
        let on_disk = ids_on_disk(&dir);
        let _ = server.kill();
        let _ = server.wait();
        let lost: Vec<&String> = all_acked
            .iter()
            .filter(|id| !on_disk.contains_key(*id))
            .collect();
        let doubled: Vec<(&String, &usize)> = on_disk.iter().filter(|(_, n)| **n > 1).collect();
        println!(
            "round {round}: {acked_now} acknowledged, {} on disk, {} lost, {} duplicated",
            on_disk.len(),
            lost.len(),
            doubled.len()
        );
        // THE durability assertion. It holds once ingest answers
        // only after write + fsync; before that, ~1-2 % were lost here.
        assert!(
            lost.is_empty(),
            "round {round}: {} acknowledged records lost after SIGKILL, e.g. {:?}",
            lost.len(),
            lost.iter().take(5).collect::<Vec<_>>()
        );
        assert!(
            doubled.is_empty(),
            "round {round}: records on disk twice: {:?}",
            doubled.iter().take(5).collect::<Vec<_>>()
        );
    }
    println!("{rounds} rounds in {:?}", started.elapsed());
}

#[test]
fn serve_refuses_a_blank_token() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("ai_usage");
    for args in [
        &["serve", "--token", ""][..],
        &["serve", "--token", "  ", "--protect-reads"][..],
    ] {
        let out = run(&dir, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("empty"), "{err}");
        assert!(
            !dir.exists(),
            "nothing is opened for a refused command line"
        );
    }
    // The same through the environment variable.
    let out = cmd(&dir)
        .args(["serve"])
        .env("AI_USAGE_TOKEN", "")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("empty"));
}

#[test]
fn records_csv_neutralises_formula_cells() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("ai_usage");
    // Ids with control characters ("\tTAB", "\rCR") are refused by
    // `record` (the intake's id rule); the CSV's neutralising of them is
    // tested through the library in the server's tests.
    let hostile = [
        "=HYPERLINK(\"http://evil\",\"x\")",
        "+cmd|' /C calc'!A0",
        "@SUM(1)",
        "-2+3",
    ];
    for id in hostile {
        // `--flag=value`: a value starting with `-` is not taken for a flag.
        let args: Vec<String> = ["function", "user-id", "anchor-id", "session-id"]
            .iter()
            .map(|f| format!("--{f}={id}"))
            .collect();
        let mut argv = vec![
            "record",
            "--model",
            "qwen-plus",
            "--input-tokens",
            "10",
            "--output-tokens",
            "1",
        ];
        argv.extend(args.iter().map(String::as_str));
        let out = run(&dir, &argv);
        assert!(
            out.status.success(),
            "record {id:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let csv_path = tmp.path().join("records.csv");
    let out = run(
        &dir,
        &[
            "report",
            "--format",
            "records",
            "--days",
            "1",
            "--output",
            csv_path.to_str().expect("utf-8 path"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = std::fs::read_to_string(&csv_path).expect("csv");
    for id in hostile {
        let cell = format!("'{id}");
        let cell = if cell.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", cell.replace('"', "\"\""))
        } else {
            cell
        };
        // user_id, anchor_id, session_id in a row, then later the function.
        assert!(
            csv.contains(&format!(",{cell},{cell},{cell},")),
            "{id:?} not neutralised in:\n{csv}"
        );
    }
    for line in csv.split('\n').skip(1) {
        for cell in line.split(',') {
            let cell = cell.trim_start_matches('"');
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "formula cell {cell:?} in {line:?}"
            );
        }
    }
}

/// `record` applies the intake's rules: ids with control characters or over
/// 256 bytes, and a negative cost, are refused naming the option; nothing
/// is written.
#[test]
fn record_refuses_what_every_door_refuses() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("ai_usage");
    let long = format!("--session-id={}", "s".repeat(257));
    let cases: [(&[&str], &str); 5] = [
        (&["--user-id", "u\u{1b}[31m"], "--user-id"),
        (&["--anchor-id", "a\r"], "--anchor-id"),
        (&["--session-id", "s\n"], "--session-id"),
        (&[long.as_str()], "--session-id"),
        (&["--cost=-1"], "--cost"),
    ];
    for (extra, flag) in cases {
        let mut argv = vec![
            "record",
            "--model",
            "qwen-plus",
            "--function",
            "f",
            "--input-tokens",
            "10",
            "--output-tokens",
            "1",
        ];
        argv.extend_from_slice(extra);
        let out = run(&dir, &argv);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(stderr.contains(flag), "{extra:?}: {stderr}");
    }
    let written = std::fs::read_dir(&dir).map_or(0, |d| {
        d.filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".jsonl"))
            .count()
    });
    assert_eq!(written, 0, "a refused record was written");
    // 256 bytes is the limit itself.
    let ok = format!("--session-id={}", "s".repeat(256));
    let out = run(
        &dir,
        &[
            "record",
            "--model",
            "qwen-plus",
            "--function",
            "f",
            "--input-tokens",
            "10",
            "--output-tokens",
            "1",
            &ok,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
