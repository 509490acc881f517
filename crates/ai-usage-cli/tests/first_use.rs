//! What a new user meets first: safe defaults (`demo` into a directory with
//! records, `serve` on the network without a token), help that is organised
//! and free of internal words, one spelling of each token flag, `cost` on
//! raw provider bodies, and money in tables at 4 decimals.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

mod support;
use support::{cmd, run, stderr, BIN};

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asserts a failed run with `code` and exactly one `error: …` line on stderr.
fn assert_error(out: &Output, code: i32, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected: {err:?}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(err.contains(needle), "{err} should mention {needle}");
}

fn ok(out: Output) -> Output {
    assert!(out.status.success(), "failed: {}", stderr(&out));
    out
}

fn records_in(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("usage_"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap().lines().count())
        .sum()
}

#[test]
fn demo_refuses_a_directory_with_records_unless_append() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ai_usage");
    let first = ok(run(&dir, &["demo", "--days", "2", "--json"]));
    let first: Value = serde_json::from_slice(&first.stdout).unwrap();
    let written = records_in(&dir);
    assert_eq!(first["records"].as_u64(), Some(written as u64));

    // A second run would double every figure: refused, nothing added.
    let again = run(&dir, &["demo", "--days", "2"]);
    assert_error(&again, 2, "already holds records");
    assert!(stderr(&again).contains("--append"), "{}", stderr(&again));
    assert_eq!(records_in(&dir), written, "a refused demo writes nothing");

    // --append adds on purpose.
    let more = ok(run(&dir, &["demo", "--days", "1", "--append", "--json"]));
    let more: Value = serde_json::from_slice(&more.stdout).unwrap();
    assert_eq!(
        records_in(&dir),
        written + more["records"].as_u64().unwrap() as usize
    );

    // A directory with only other files (budgets) is still empty of records.
    let other = tmp.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("budgets.json"), "[]").unwrap();
    ok(run(&other, &["demo", "--days", "1"]));
}

/// Starts `serve` with `args`, returns whether it accepted a connection on
/// `port` (then stops it).
fn serve_listens(dir: &Path, args: &[&str], port: u16) -> bool {
    let mut child = cmd(dir)
        .arg("serve")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut up = false;
    for _ in 0..100 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            up = true;
            break;
        }
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    up
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn serve_refuses_the_network_without_a_token() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ai_usage");
    let port = free_port();
    let addr = format!("0.0.0.0:{port}");
    let out = run(&dir, &["serve", "--addr", &addr]);
    assert_error(&out, 2, "without --token");
    let err = stderr(&out);
    assert!(err.contains(&addr), "{err}");
    assert!(err.contains("--allow-unauthenticated"), "{err}");
    assert!(!dir.exists(), "a refused serve creates nothing");
    // --allow-unauthenticated and --token exclude each other.
    let both = run(
        &dir,
        &[
            "serve",
            "--addr",
            &addr,
            "--token",
            "t",
            "--allow-unauthenticated",
        ],
    );
    assert_eq!(both.status.code(), Some(2), "{}", stderr(&both));

    // With a token, or with the explicit opt-out, it serves.
    assert!(
        serve_listens(&dir, &["--addr", &addr, "--token", "s3cret"], port),
        "serve with --token on {addr}"
    );
    let port = free_port();
    let addr = format!("0.0.0.0:{port}");
    assert!(
        serve_listens(&dir, &["--addr", &addr, "--allow-unauthenticated"], port),
        "serve with --allow-unauthenticated on {addr}"
    );
}

const COMMANDS: &[&str] = &[
    "stats",
    "session",
    "top-users",
    "top-anchors",
    "trend",
    "report",
    "forecast",
    "savings",
    "budgets",
    "cost",
    "pricing",
    "record",
    "demo",
    "serve",
    "ship",
];

fn help(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    stdout(&out)
}

#[test]
fn help_lists_the_commands_options_first_then_the_global_ones() {
    let text = help(&["stats", "--help"]);
    let own = text.find("\nOptions:").expect("an Options heading");
    let global = text
        .find("\nGlobal options:")
        .expect("a Global options heading");
    assert!(own < global, "the command's options come first:\n{text}");
    let days_ago = text.find("--days-ago").unwrap();
    let dir = text.find("--dir <DIR>").unwrap();
    assert!(own < days_ago && days_ago < global, "{text}");
    assert!(global < dir, "--dir is a global option:\n{text}");
    for flag in [
        "--tz",
        "--pricing",
        "--budgets",
        "--rate",
        "--clickhouse",
        "--json",
    ] {
        let at = text
            .find(flag)
            .unwrap_or_else(|| panic!("{flag} in\n{text}"));
        assert!(at > global, "{flag} under Global options:\n{text}");
    }
}

#[test]
fn help_speaks_to_users_not_to_the_repository() {
    let mut pages = vec![help(&["--help"])];
    for cmd in COMMANDS {
        pages.push(help(&[cmd, "--help"]));
        pages.push(help(&[cmd, "-h"]));
    }
    for page in &pages {
        let lower = page.to_lowercase();
        for word in ["seed's", "the seed", "docs/", ".md", "issue"] {
            assert!(!lower.contains(word), "{word:?} in help:\n{page}");
        }
    }
    // The budgets file's format, where a user of the binary can read it.
    let budgets = help(&["budgets", "--help"]);
    for needle in [
        "budgets.json",
        "\"period\"",
        "\"limit\"",
        "\"thresholds\"",
        "\"anchor\"",
    ] {
        assert!(budgets.contains(needle), "{needle} in\n{budgets}");
    }
    // And no pointer to a file an installed binary's user does not have.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path()).unwrap();
    let out = ok(run(tmp.path(), &["budgets"]));
    let text = stdout(&out);
    assert!(text.contains("ai-usage budgets --help"), "{text}");
    assert!(!text.contains(".md"), "{text}");
}

fn cost_json(args: &[&str]) -> Value {
    let tmp = tempfile::tempdir().unwrap();
    let mut all = vec!["cost"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = ok(run(tmp.path(), &all));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn cost_spells_token_flags_like_record_and_keeps_the_old_ones() {
    let new = cost_json(&[
        "gpt-5",
        "1000",
        "500",
        "--cached-tokens",
        "200",
        "--cache-write-tokens",
        "100",
        "--reasoning-tokens",
        "50",
    ]);
    assert_eq!(new["cache_read_tokens"], 200, "{new}");
    assert_eq!(new["cache_write_tokens"], 100, "{new}");
    assert_eq!(new["reasoning_tokens"], 50, "{new}");
    let old = cost_json(&[
        "gpt-5",
        "1000",
        "500",
        "--cached",
        "200",
        "--cache-write",
        "100",
        "--reasoning",
        "50",
    ]);
    assert_eq!(new["cost_exact"], old["cost_exact"]);
    assert_eq!(new["parts"], old["parts"]);
    // Errors name the flag as it is spelled now.
    let tmp = tempfile::tempdir().unwrap();
    let out = run(tmp.path(), &["cost", "gpt-5", "10", "10", "--cached", "20"]);
    assert_error(&out, 2, "--cached-tokens 20");
}

#[test]
fn cost_reads_openai_bodies_without_an_api_flavour() {
    let tmp = tempfile::tempdir().unwrap();
    let chat = tmp.path().join("chat.json");
    std::fs::write(
        &chat,
        r#"{"object":"chat.completion","model":"gpt-4o","usage":{"prompt_tokens":1000,"completion_tokens":100}}"#,
    )
    .unwrap();
    let responses = tmp.path().join("responses.json");
    std::fs::write(
        &responses,
        r#"{"object":"response","model":"gpt-4o","usage":{"input_tokens":1000,"output_tokens":100}}"#,
    )
    .unwrap();
    let chat = cost_json(&["--provider", "openai", "--response", chat.to_str().unwrap()]);
    let resp = cost_json(&[
        "--provider",
        "openai",
        "--response",
        responses.to_str().unwrap(),
    ]);
    // The same tokens through either API cost the same, priced by the catalogue.
    for q in [&chat, &resp] {
        assert_eq!(q["input_tokens"], 1000, "{q}");
        assert_eq!(q["output_tokens"], 100, "{q}");
        assert_eq!(q["catalogue_model"], "gpt-4o", "{q}");
    }
    assert_eq!(chat["cost_exact"], resp["cost_exact"]);
    // An explicit flavour is still obeyed: a chat body read as `responses` fails.
    let out = run(
        tmp.path(),
        &[
            "cost",
            "--provider",
            "openai",
            "--api",
            "responses",
            "--response",
            tmp.path().join("chat.json").to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn cost_responses_counts_bad_lines_and_survives_invalid_utf8() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("bodies.jsonl");
    let good = r#"{"model":"gpt-4o","usage":{"prompt_tokens":10,"completion_tokens":5}}"#;
    let mut bytes = Vec::new();
    bytes.extend_from_slice(good.as_bytes());
    bytes.extend_from_slice(b"\n\xff\xfe not utf-8\n");
    bytes.extend_from_slice(good.as_bytes());
    bytes.push(b'\n');
    std::fs::write(&file, bytes).unwrap();
    let out = run(
        tmp.path(),
        &[
            "cost",
            "--provider",
            "openai",
            "--responses",
            file.to_str().unwrap(),
        ],
    );
    assert_error(&out, 1, "1 of 3 response line(s) could not be priced");
    let lines: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "every line answered: {lines:?}");
    assert_eq!(lines[0]["input_tokens"], 10);
    assert_eq!(lines[1]["line"], 2);
    assert!(
        lines[1]["error"].as_str().unwrap().contains("UTF-8"),
        "{lines:?}"
    );
    assert_eq!(lines[2]["input_tokens"], 10, "the line after it is priced");

    // All good: exit 0, nothing on stderr.
    let ok_file = tmp.path().join("good.jsonl");
    std::fs::write(&ok_file, format!("{good}\n{good}\n")).unwrap();
    let out = ok(run(
        tmp.path(),
        &[
            "cost",
            "--provider",
            "openai",
            "--responses",
            ok_file.to_str().unwrap(),
        ],
    ));
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
}

/// Every amount after a currency sign in `text`, as written.
fn amounts(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (i, ch) in text.char_indices() {
        if ch == '¥' || ch == '$' {
            let rest = &text[i + ch.len_utf8()..];
            let n: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            if !n.is_empty() {
                found.push(n);
            }
        }
    }
    found
}

#[test]
fn tables_print_money_at_four_decimals() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ai_usage");
    ok(run(&dir, &["demo", "--days", "7", "--seed", "3"]));
    std::fs::write(
        dir.join("budgets.json"),
        r#"[{"name": "daily", "period": "daily", "limit": 50},
            {"name": "month", "period": "monthly", "limit": "1234.5"}]"#,
    )
    .unwrap();
    let mut seen = 0;
    for args in [
        &["stats", "daily"][..],
        &["stats", "monthly"],
        &["top-anchors", "--by", "cost"],
        &["trend", "--days", "7"],
        &["forecast"],
        &["budgets"],
        &["savings", "--days", "7"],
    ] {
        let text = stdout(&ok(run(&dir, args)));
        for a in amounts(&text) {
            seen += 1;
            let decimals = a.split_once('.').map_or(0, |(_, d)| d.len());
            let tiny = a.starts_with("0.0000");
            assert!(
                decimals == 4 || (tiny && decimals <= 9),
                "{args:?}: {a} has {decimals} decimals:\n{text}"
            );
        }
    }
    assert!(seen > 50, "amounts found: {seen}");
    // --json stays exact: some model's cost has the digits the table rounds.
    let out = ok(run(&dir, &["stats", "monthly", "--json"]));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let fine = v["by_model"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(|g| g["cost"].as_number().map(|n| n.to_string()))
        .any(|n| n.split_once('.').is_some_and(|(_, d)| d.len() > 4));
    assert!(fine, "exact costs in --json: {v}");
}

#[test]
fn pricing_table_shows_each_entrys_source_and_date() {
    let tmp = tempfile::tempdir().unwrap();
    let text = stdout(&ok(run(tmp.path(), &["pricing"])));
    assert!(text.contains("来源 source"), "{text}");
    assert!(text.contains("日期 date"), "{text}");
    // A provider's own page with its date, an entry no page confirmed,
    // and the genai-prices snapshot date appear.
    assert!(text.contains("Alibaba Cloud Model Studio"), "{text}");
    assert!(text.contains("2024-09"), "{text}");
    assert!(text.contains("未核实 unverified"), "{text}");
    assert!(text.contains("2026-08-21"), "{text}");
    assert!(!text.to_lowercase().contains("seed"), "{text}");
}

#[test]
fn an_unreachable_clickhouse_is_one_error_line_without_internal_notices() {
    // A closed port: nothing listens there.
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let tmp = tempfile::tempdir().unwrap();
    for args in [&["stats", "daily"][..], &["trend", "--days", "3"]] {
        let mut all = vec!["--clickhouse", url.as_str()];
        all.extend_from_slice(args);
        let out = run(tmp.path(), &all);
        assert_error(&out, 1, &port.to_string());
        assert!(!stderr(&out).contains("reporting zone"), "{}", stderr(&out));
    }
}

/// `record` takes the same token flags as `cost`, reasoning tokens included,
/// and writes them into the record.
#[test]
fn record_takes_reasoning_tokens() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ai_usage");
    let flags = [
        "record",
        "--model",
        "deepseek-reasoner",
        "--function",
        "问答",
        "--input-tokens",
        "1000",
        "--output-tokens",
        "600",
        "--reasoning-tokens",
        "400",
        "--cached-tokens",
        "200",
    ];
    ok(run(&dir, &flags));
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "jsonl") {
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                lines.push(serde_json::from_str::<Value>(line).unwrap());
            }
        }
    }
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["reasoning_tokens"], 400, "{}", lines[0]);
    assert_eq!(lines[0]["cached_input_tokens"], 200, "{}", lines[0]);
    // More reasoning than output is refused, naming the flag's field.
    let mut bad = flags;
    bad[10] = "700";
    assert_error(&run(&dir, &bad), 2, "reasoning");
}
