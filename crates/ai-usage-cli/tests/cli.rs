//! End-to-end tests of the `ai-usage` binary: every subcommand, `--json`
//! shapes and error exits.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_ai-usage");

/// Runs the binary on `dir` in +08:00 with a clean environment.
fn run(dir: &Path, args: &[&str]) -> Output {
    run_in(dir, "+08:00", args)
}

/// Runs the binary on `dir` in the zone `tz` with a clean environment.
fn run_in(dir: &Path, tz: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--dir")
        .arg(dir)
        .args(["--tz", tz])
        .args(args)
        .env_remove("AI_USAGE_DIR")
        .env_remove("AI_USAGE_TZ")
        .env_remove("AI_USAGE_PRICING")
        .env_remove("AI_USAGE_BUDGETS")
        .env_remove("AI_USAGE_TOKEN")
        .env_remove("RUST_LOG")
        .env_remove("AI_USAGE_LOG")
        .output()
        .expect("run ai-usage")
}

fn ok_json(dir: &Path, args: &[&str]) -> Value {
    let out = run(dir, args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts a failed run with `code` and exactly one `error: …` line on stderr.
fn assert_error(out: &Output, code: i32, needle: &str) {
    assert_eq!(out.status.code(), Some(code), "stderr: {}", stderr(out));
    let err = stderr(out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected: {err:?}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(err.contains(needle), "{err} should mention {needle}");
}

/// A records directory with 3 days of demo data.
fn demo_dir() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ai_usage");
    let stats = ok_json(&dir, &["demo", "--days", "3", "--seed", "1", "--json"]);
    assert!(stats["records"].as_u64().unwrap() > 100, "{stats}");
    (tmp, dir)
}

fn today() -> String {
    let z: ai_usage_core::Zone = "+08:00".parse().unwrap();
    z.today().format("%Y-%m-%d").to_string()
}

#[test]
fn demo_writes_day_files_and_stats_read_them() {
    let (_t, dir) = demo_dir();
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        files
            .iter()
            .any(|f| f.to_string_lossy().starts_with("usage_")),
        "{files:?}"
    );
    let yesterday = ok_json(&dir, &["stats", "daily", "--days-ago", "1", "--json"]);
    for key in [
        "period",
        "total_calls",
        "total_tokens",
        "total_cost",
        "currency",
        "costs",
        "success_rate",
        "by_model",
        "by_function",
        "by_anchor",
        "by_user",
    ] {
        assert!(yesterday.get(key).is_some(), "stats daily lacks {key}");
    }
    assert_eq!(yesterday["period"], "daily");
    // Demo anchors broadcast most evenings: yesterday has 实时分析 calls.
    assert!(yesterday["total_calls"].as_u64().unwrap() > 0);
    let by_date = ok_json(&dir, &["stats", "daily", "--date", &today(), "--json"]);
    assert_eq!(by_date["period"], "daily");
    let hourly = ok_json(
        &dir,
        &[
            "stats",
            "hourly",
            "--date",
            &today(),
            "--hour",
            "0",
            "--json",
        ],
    );
    assert_eq!(hourly["period"], "hourly");
    assert_eq!(
        hourly["end_time"].as_f64().unwrap() - hourly["start_time"].as_f64().unwrap(),
        3600.0
    );
    let month = &today()[..7];
    let monthly = ok_json(&dir, &["stats", "monthly", "--month", month, "--json"]);
    assert_eq!(monthly["period"], "monthly");
    assert!(monthly["total_calls"].as_u64().unwrap() >= by_date["total_calls"].as_u64().unwrap());
    // Human output has the Chinese labels.
    let out = run(&dir, &["stats", "daily", "--days-ago", "1"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("调用次数") && text.contains("按模型"),
        "{text}"
    );
    // Options of another period are usage errors.
    assert_error(
        &run(&dir, &["stats", "monthly", "--days-ago", "1"]),
        2,
        "does not apply",
    );
}

#[test]
fn session_by_id_and_unknown_session() {
    let (_t, dir) = demo_dir();
    // Find a session id in a day file.
    let file = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.starts_with("usage_") && std::fs::read_to_string(p).unwrap().contains("live_")
        })
        .expect("a day file with a session");
    let text = std::fs::read_to_string(file).unwrap();
    let id = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find_map(|v| v["session_id"].as_str().map(str::to_string))
        .unwrap();
    let s = ok_json(&dir, &["session", &id, "--json"]);
    assert_eq!(s["session_id"], id.as_str());
    assert!(s["calls"].as_u64().unwrap() > 0);
    assert!(s["anchor_id"].is_string());
    assert!(s["functions"]["实时分析"].as_u64().unwrap() > 0);
    assert!(run(&dir, &["session", &id]).status.success());
    assert_error(
        &run(&dir, &["session", "live_19990101_000000"]),
        1,
        "not found",
    );
}

#[test]
fn rankings_and_trend() {
    let (_t, dir) = demo_dir();
    let users = ok_json(
        &dir,
        &["top-users", "--limit", "3", "--days", "3", "--json"],
    );
    let users = users.as_array().unwrap();
    assert!(!users.is_empty() && users.len() <= 3);
    assert!(users[0]["user_id"].is_string());
    let tokens: Vec<u64> = users
        .iter()
        .map(|u| u["tokens"].as_u64().unwrap())
        .collect();
    assert!(
        tokens.windows(2).all(|w| w[0] >= w[1]),
        "sorted by tokens: {tokens:?}"
    );
    let anchors = ok_json(&dir, &["top-anchors", "--by", "cost", "--json"]);
    let anchors = anchors.as_array().unwrap();
    assert!(anchors[0]["anchor_id"].is_string());
    let costs: Vec<f64> = anchors
        .iter()
        .map(|u| u["cost"].as_f64().unwrap())
        .collect();
    assert!(
        costs.windows(2).all(|w| w[0] >= w[1]),
        "sorted by cost: {costs:?}"
    );
    assert!(run(&dir, &["top-anchors"]).status.success());
    let trend = ok_json(&dir, &["trend", "--days", "5", "--json"]);
    let trend = trend.as_array().unwrap();
    assert_eq!(trend.len(), 5);
    assert_eq!(trend[4]["date"], today().as_str());
    for key in ["date", "cost", "currency", "calls", "tokens"] {
        assert!(trend[0].get(key).is_some(), "trend lacks {key}");
    }
    let t = today();
    let range = ok_json(&dir, &["trend", "--from", &t, "--to", &t, "--json"]);
    assert_eq!(range.as_array().unwrap().len(), 1);
    assert_error(
        &run(
            &dir,
            &["trend", "--from", "2025-02-01", "--to", "2025-01-01"],
        ),
        2,
        "after",
    );
    assert!(run(&dir, &["trend"]).status.success());
}

#[test]
fn forecast_savings_and_reports() {
    let (_t, dir) = demo_dir();
    let f = ok_json(&dir, &["forecast", "--json"]);
    for key in [
        "month",
        "month_to_date",
        "avg_daily_cost",
        "projected_total",
        "basis",
    ] {
        assert!(f.get(key).is_some(), "forecast lacks {key}");
    }
    assert!(run(&dir, &["forecast"]).status.success());
    let s = ok_json(&dir, &["savings", "--days", "3", "--json"]);
    let functions = s["functions"].as_array().unwrap();
    assert!(!functions.is_empty());
    assert!(functions[0]["alternatives"].is_array());
    assert_eq!(functions[0]["halve_frequency"]["saving_pct"], 50.0);
    let table = run(&dir, &["savings"]);
    assert!(table.status.success());
    // A cell's second line (the current cost under the model) is a line
    // break, not an escaped `\n` shown as two characters.
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(!text.contains("\\n"), "escaped line break in:\n{text}");
    let first = functions[0]["function"].as_str().unwrap();
    let row = text.lines().position(|l| l.contains(first)).unwrap();
    let cost_line = text.lines().nth(row + 1).unwrap();
    assert!(cost_line.contains('¥') || cost_line.contains('$'), "{text}");
    // JSON report at the default path, inside the records directory.
    let w = ok_json(&dir, &["report", "--days", "3", "--json"]);
    let path = PathBuf::from(w["report_path"].as_str().unwrap());
    assert_eq!(path.parent().unwrap(), dir);
    let report: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    for key in [
        "generated_at",
        "period_days",
        "today_summary",
        "top_users",
        "cost_trend",
        "by_anchor",
        "forecast",
        "budgets",
        "savings",
    ] {
        assert!(report.get(key).is_some(), "report lacks {key}");
    }
    assert_eq!(report["period_days"], 3);
    // CSV to an explicit file.
    let csv = dir.join("out").join("daily.csv");
    let out = run(
        &dir,
        &["report", "--format", "csv", "-o", csv.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(text.starts_with("date,model,display_name,function,calls,input_tokens,output_tokens,total_tokens,cost,currency\n"));
    assert!(text.lines().count() > 3);
    let rec = dir.join("records.csv");
    assert!(run(
        &dir,
        &[
            "report",
            "--format",
            "records",
            "--days",
            "1",
            "-o",
            rec.to_str().unwrap()
        ]
    )
    .status
    .success());
    assert!(std::fs::read_to_string(&rec)
        .unwrap()
        .starts_with("timestamp,local_time,user_id,anchor_id,session_id,model"));
}

#[test]
fn report_bom_is_opt_in_and_csv_only() {
    let (_t, dir) = demo_dir();
    let plain = dir.join("plain.csv");
    let excel = dir.join("excel.csv");
    let p = plain.to_str().unwrap();
    let x = excel.to_str().unwrap();
    assert!(run(&dir, &["report", "--format", "csv", "-o", p])
        .status
        .success());
    let out = run(&dir, &["report", "--format", "csv", "--bom", "-o", x]);
    assert!(out.status.success(), "{}", stderr(&out));
    let plain = std::fs::read(&plain).unwrap();
    let excel = std::fs::read(&excel).unwrap();
    assert!(plain.starts_with(b"date,"));
    assert_eq!(&excel[..3], b"\xEF\xBB\xBF");
    assert_eq!(&excel[3..], &plain[..]);
    let out = run(&dir, &["report", "--format", "json", "--bom"]);
    assert_error(&out, 2, "--bom");
}

#[test]
fn budgets_from_the_budgets_file() {
    let (_t, dir) = demo_dir();
    assert_eq!(ok_json(&dir, &["budgets", "--json"]), Value::Array(vec![]));
    std::fs::write(
        dir.join("budgets.json"),
        r#"{"budgets": [
            {"name": "每日总预算", "period": "daily", "limit": 50, "thresholds": [80, 100]},
            {"name": "anchor_001 月预算", "anchor": "anchor_001", "period": "monthly", "limit": "0.01"}
        ]}"#,
    )
    .unwrap();
    let status = ok_json(&dir, &["budgets", "--json"]);
    let status = status.as_array().unwrap();
    assert_eq!(status.len(), 2);
    for key in [
        "name",
        "scope",
        "period",
        "period_label",
        "spent",
        "limit",
        "remaining",
        "percent",
        "projected_end_of_period",
        "currency",
        "thresholds_fired",
    ] {
        assert!(status[0].get(key).is_some(), "budget status lacks {key}");
    }
    assert_eq!(status[0]["period_label"], today().as_str());
    assert_eq!(status[1]["scope"]["kind"], "anchor");
    // anchor_001 broadcasts most days: 1 fen is long spent, both thresholds crossed.
    assert_eq!(status[1]["thresholds_fired"], serde_json::json!([80, 100]));
    assert!(run(&dir, &["budgets"]).status.success());
    // A broken file: the error names the file, the line and the field.
    std::fs::write(
        dir.join("budgets.json"),
        "[\n {\"name\": \"x\", \"period\": \"daily\", \"limt\": 5}\n]",
    )
    .unwrap();
    let out = run(&dir, &["budgets"]);
    assert_error(&out, 1, "budgets.json, line 2");
    assert!(stderr(&out).contains("limt"));
}

#[test]
fn cost_and_pricing() {
    let dir = tempfile::tempdir().unwrap();
    let q = ok_json(dir.path(), &["cost", "qwen-max", "1000", "500", "--json"]);
    assert_eq!(q["cost"], 0.05);
    assert_eq!(q["currency"], "CNY");
    assert_eq!(q["canonical_model"], "qwen-max");
    let q = ok_json(
        dir.path(),
        &[
            "cost",
            "deepseek-chat",
            "1000",
            "0",
            "--cached",
            "1000",
            "--json",
        ],
    );
    assert_eq!(q["cost"], 0.0001, "cached input at ¥0.1/M");
    // qwen-plus ¥0.0008 / ¥0.002 per 1K (Alibaba Cloud's list).
    let out = run(dir.path(), &["cost", "qwen-plus", "1200", "300"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("¥0.00156"));
    assert_error(
        &run(dir.path(), &["cost", "no-such-model", "1", "1"]),
        2,
        "unknown model",
    );
    assert_error(
        &run(dir.path(), &["cost", "qwen-plus", "x", "1"]),
        2,
        "INPUT_TOKENS",
    );
    let table = ok_json(dir.path(), &["pricing", "--json"]);
    let plus = table
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["model"] == "qwen-plus")
        .unwrap();
    assert_eq!(plus["input"], 0.0008);
    assert_eq!(plus["display_name"], "通义千问-Plus");
    assert_eq!(plus["price_date"], "2024-09");
    assert!(plus["source"]
        .as_str()
        .is_some_and(|s| s.contains("Model Studio")));
    assert!(plus.get("unverified").is_none(), "{plus}");
    let spark = table
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["model"] == "spark-pro")
        .unwrap();
    assert_eq!(spark["unverified"], true, "{spark}");
    // The table shows source, date and the unverified mark.
    let text = String::from_utf8_lossy(&run(dir.path(), &["pricing"]).stdout).into_owned();
    assert!(
        text.contains("2024-09") && text.contains("Model Studio"),
        "{text}"
    );
    assert!(text.contains("unverified"), "{text}");
    assert!(run(dir.path(), &["pricing"]).status.success());
    // A custom pricing file is merged in.
    let file = dir.path().join("prices.json");
    std::fs::write(
        &file,
        r#"{"models": {"my-model": {"display_name": "我的模型", "input": 0.01, "output": 0.03}}}"#,
    )
    .unwrap();
    let q = ok_json(
        dir.path(),
        &[
            "--pricing",
            file.to_str().unwrap(),
            "cost",
            "my-model",
            "1000",
            "1000",
            "--json",
        ],
    );
    assert_eq!(q["cost"], 0.04);
    assert_error(
        &run(dir.path(), &["--pricing", "/nonexistent.json", "pricing"]),
        1,
        "nonexistent.json",
    );
    // No command touched a records directory.
    assert!(!dir.path().join("records").exists());
}

/// Every model the original priced is priced; OpenAI/Gemini in USD by
/// default, the original's CNY figures through `pricing/original-service.toml`.
#[test]
fn cost_of_every_model_the_original_priced() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("gpt-4", "USD", 0.06),
        ("deepseek-coder", "CNY", 0.002),
        ("glm-3-turbo", "CNY", 0.0015),
        ("lite", "CNY", 0.0),
        ("generalv3", "CNY", 0.027),
        ("generalv3.5", "CNY", 0.0315),
        ("4.0Ultra", "CNY", 0.105),
        ("gpt-4-1106-preview", "USD", 0.025),
        ("gpt-4-turbo-preview", "USD", 0.025),
        ("gpt-4.1-mini", "USD", 0.0012),
        ("gemini-2.5-flash-preview-09-2025", "USD", 0.00155),
    ];
    for (model, currency, cost) in cases {
        let q = ok_json(dir.path(), &["cost", model, "1000", "500", "--json"]);
        assert_eq!(q["priced"], true, "{model}: {q}");
        assert_eq!(q["currency"], currency, "{model}: {q}");
        assert_eq!(q["cost"], cost, "{model}: {q}");
        assert!(
            q["display_name"].as_str().is_some_and(|n| n != model),
            "{model}: {q}"
        );
    }
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pricing/original-service.toml");
    let file = file.to_str().unwrap();
    for (model, cost) in [
        ("qwen-plus", 0.01),
        ("gpt-4", 0.42),
        ("doubao-lite-32k", 0.0045),
    ] {
        let q = ok_json(
            dir.path(),
            &["--pricing", file, "cost", model, "1000", "500", "--json"],
        );
        assert_eq!(
            (&q["currency"], &q["cost"]),
            (&Value::from("CNY"), &Value::from(cost)),
            "{model}: {q}"
        );
    }
    let out = run(
        dir.path(),
        &["--pricing", file, "cost", "gpt-4", "1000", "500"],
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("¥0.4200"),
        "{out:?}"
    );
}

#[test]
fn record_flushes_and_prints_the_record() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("new_dir");
    let r = ok_json(
        &dir,
        &[
            "record",
            "--model",
            "qwen-plus",
            "--function",
            "实时分析",
            "--input-tokens",
            "1200",
            "--output-tokens",
            "300",
            "--duration-ms",
            "850",
            "--user-id",
            "42",
            "--anchor-id",
            "anchor_123",
            "--session-id",
            "session_456",
            "--json",
        ],
    );
    assert_eq!(r["model"], "qwen-plus");
    assert_eq!(r["cost"], 0.00156);
    assert_eq!(r["success"], true);
    assert_eq!(r["session_id"], "session_456");
    // On disk before the process exited.
    let day_file = dir.join(format!("usage_{}.jsonl", today()));
    let line = std::fs::read_to_string(&day_file).unwrap();
    assert_eq!(line.lines().count(), 1);
    let failed = ok_json(
        &dir,
        &[
            "record",
            "--model",
            "qwen-max",
            "--function",
            "问答",
            "--input-tokens",
            "10",
            "--output-tokens",
            "0",
            "--failed",
            "--error",
            "请求超时",
            "--cost",
            "0.5",
            "--json",
        ],
    );
    assert_eq!(failed["success"], false);
    assert_eq!(failed["error_msg"], "请求超时");
    assert_eq!(failed["cost"], 0.5);
    let s = ok_json(&dir, &["stats", "daily", "--json"]);
    assert_eq!(s["total_calls"], 2);
    assert_eq!(s["failed_calls"], 1);
    assert_eq!(s["total_cost"], 0.50156);
    assert!(run(
        &dir,
        &[
            "record",
            "--model",
            "qwen-plus",
            "--function",
            "f",
            "--input-tokens",
            "1",
            "--output-tokens",
            "1"
        ]
    )
    .status
    .success());
    assert_error(
        &run(&dir, &["record", "--model", "qwen-plus"]),
        2,
        "--function",
    );
}

#[test]
fn record_cache_writes_and_provider() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let args = [
        "record",
        "--model",
        "claude-sonnet-4-5",
        "--function",
        "问答",
        "--input-tokens",
        "7000",
        "--cached-tokens",
        "4000",
        "--cache-write-tokens",
        "2000",
        "--output-tokens",
        "200",
        "--provider",
        "anthropic",
        "--json",
    ];
    let r = ok_json(dir, &args);
    // $3 × 1000 + $3.75 × 2000 + $0.30 × 4000 + $15 × 200 per M tokens.
    assert_eq!(r["cost"], 0.0147);
    assert_eq!(r["currency"], "USD");
    assert_eq!(r["cache_write_tokens"], 2000);
    assert_eq!(r["provider"], "anthropic");
    let line = std::fs::read_to_string(dir.join(format!("usage_{}.jsonl", today()))).unwrap();
    let stored: Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(stored["cache_write_tokens"], 2000);
    assert_eq!(stored["provider"], "anthropic");
    let mut too_many = args;
    too_many[10] = "3001";
    assert_error(&run(dir, &too_many), 2, "--cache-write-tokens");
}

#[test]
fn genai_prices_pricing_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let file = dir.join("prices.json");
    let text = r#"[{"id": "acme", "name": "Acme AI", "api_pattern": "https://api\\.acme\\.example",
  "models": [{"id": "acme-large", "match": {"starts_with": "acme-large"},
    "prices": {"input_mtok": 2, "output_mtok": 8, "cache_write_mtok": 2.5}}]}]"#;
    std::fs::write(&file, text).unwrap();
    let f = file.to_str().unwrap();
    let r = ok_json(
        dir,
        &[
            "--pricing",
            f,
            "cost",
            "acme-large",
            "10000",
            "1000",
            "--cache-write",
            "2000",
            "--json",
        ],
    );
    // 8,000 × $2 + 2,000 × $2.50 + 1,000 × $8 per M tokens.
    assert_eq!(r["cost_exact"], "0.029");
    assert_eq!(r["provider"], "acme");
    assert_eq!(r["cache_write_tokens"], 2000);
    let s = ok_json(
        dir,
        &["--pricing", f, "pricing", "show", "acme-large", "--json"],
    );
    assert_eq!(s["priced_by"], "catalogue");
    assert_eq!(
        s["catalogue"]["history"][0]["prices"]["cache_write_mtok"],
        "2.5"
    );
    std::fs::write(
        &file,
        text.replace("\"output_mtok\": 8", "\"output_mtok\": -8"),
    )
    .unwrap();
    assert_error(
        &run(dir, &["--pricing", f, "cost", "acme-large", "1", "1"]),
        1,
        "prices.output_mtok",
    );
}

#[test]
fn bad_input_exits_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing");
    for cmd in [
        &["stats", "daily"][..],
        &["trend"],
        &["top-users"],
        &["forecast"],
        &["savings"],
        &["report"],
        &["session", "x"],
        &["budgets"],
    ] {
        let out = run(&missing, cmd);
        assert_error(&out, 1, "does not exist");
        assert!(!missing.exists(), "{cmd:?} created the directory");
    }
    assert_error(
        &run(&missing, &["stats", "daily", "--date", "2025-13-01"]),
        2,
        "YYYY-MM-DD",
    );
    assert_error(
        &run(&missing, &["stats", "monthly", "--month", "2025-13"]),
        2,
        "YYYY-MM",
    );
    let bad_tz = Command::new(BIN)
        .args([
            "--dir",
            missing.to_str().unwrap(),
            "--tz",
            "Mars/Base",
            "stats",
            "daily",
        ])
        .output()
        .unwrap();
    assert_error(&bad_tz, 2, "time zone");
    assert_error(&run(&missing, &["no-such-command"]), 2, "no-such-command");
    assert_error(&run(&missing, &["top-users", "--by", "karma"]), 2, "karma");
}

#[test]
fn serve_listens_and_checks_its_options() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ai_usage");
    assert_error(&run(&dir, &["serve", "--protect-reads"]), 2, "--token");
    // Start on a free port, wait until it accepts a connection, stop it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = Command::new(BIN)
        .args([
            "--dir",
            dir.to_str().unwrap(),
            "--tz",
            "+08:00",
            "serve",
            "--addr",
            &addr,
        ])
        .env_remove("AI_USAGE_TOKEN")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut up = false;
    for _ in 0..100 {
        if std::net::TcpStream::connect(&addr).is_ok() {
            up = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    child.kill().unwrap();
    let _ = child.wait();
    assert!(up, "serve did not listen on {addr}");
    assert!(dir.is_dir(), "serve creates its records directory");
}

#[test]
fn help_and_version() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in [
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
    ] {
        assert!(text.contains(cmd), "--help lacks {cmd}");
    }
    assert!(Command::new(BIN)
        .arg("--version")
        .output()
        .unwrap()
        .status
        .success());
}

#[test]
fn exchange_rates_give_a_converted_total_and_keep_currencies_apart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // ¥0.00156 (qwen-plus) and $0.10 (explicit cost of a Gemini call).
    let rec = |args: &[&str]| {
        let mut all = vec![
            "record",
            "--function",
            "问答",
            "--input-tokens",
            "1200",
            "--output-tokens",
            "300",
        ];
        all.extend_from_slice(args);
        assert!(run(dir, &all).status.success());
    };
    rec(&["--model", "qwen-plus"]);
    rec(&["--model", "gemini-2.0-flash", "--cost", "0.1"]);
    let plain = ok_json(dir, &["stats", "daily", "--json"]);
    assert_eq!(plain["total_cost"], 0.00156, "CNY only");
    assert_eq!(plain["costs"]["USD"], 0.1);
    assert!(
        plain["converted_total"].is_null(),
        "no rates, no conversion"
    );
    let conv = ok_json(dir, &["--rate", "USD=7.1", "stats", "daily", "--json"]);
    assert_eq!(conv["total_cost"], 0.00156);
    assert_eq!(conv["converted_total"]["total"], 0.71156);
    assert_eq!(conv["converted_total"]["rates"]["USD"], 7.1);
    assert_error(
        &run(dir, &["--rate", "USD", "stats", "daily"]),
        2,
        "USD=7.1",
    );
}

#[test]
fn iana_zones_work_across_dst() {
    use ai_usage_core::Zone;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ai_usage");
    let ny: Zone = "America/New_York".parse().unwrap();
    // One call every 30 minutes over New York's fall-back day, written by the
    // library in that zone: 25 local hours, 01:00 twice.
    let day: chrono::NaiveDate = "2026-11-01".parse().unwrap();
    let (start, end) = ny.day_bounds(day);
    assert_eq!(end - start, 25.0 * 3600.0);
    {
        let m = ai_usage_core::UsageMonitor::builder()
            .dir(&dir)
            .timezone(ny)
            .retention_days(100_000)
            .build()
            .unwrap();
        let mut ts = start;
        while ts < end {
            m.record(
                &ai_usage_core::UsageEvent::new("qwen-plus", "问答")
                    .tokens(1000, 500)
                    .at(ts),
            );
            ts += 1800.0;
        }
        m.shutdown().unwrap();
    }
    let json = |args: &[&str]| -> Value {
        let out = run_in(&dir, "America/New_York", args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let d = json(&["stats", "daily", "--date", "2026-11-01", "--json"]);
    assert_eq!(d["total_calls"], 50, "{d}");
    assert_eq!(d["start_time"].as_f64(), Some(start));
    assert_eq!(d["end_time"].as_f64(), Some(end));
    let h1 = json(&[
        "stats",
        "hourly",
        "--date",
        "2026-11-01",
        "--hour",
        "1",
        "--json",
    ]);
    assert_eq!(h1["total_calls"], 4, "01:00 EDT and 01:00 EST: {h1}");
    // Seen from Berlin (CET, UTC+1) the same calls, 04:00Z..05:00Z the next
    // day, fall on two local days split at 23:00Z.
    let berlin = |date: &str| -> Value {
        let out = run_in(
            &dir,
            "Europe/Berlin",
            &["stats", "daily", "--date", date, "--json"],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    assert_eq!(berlin("2026-11-01")["total_calls"], 38);
    assert_eq!(berlin("2026-11-02")["total_calls"], 12);

    // The text form runs for today and names the zone.
    let out = run_in(&dir, "America/New_York", &["stats", "daily"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("America/New_York"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_error(
        &run_in(&dir, "Mars/Base", &["stats", "daily"]),
        2,
        "America/New_York",
    );
}

// --- the genai-prices catalogue ----------------------------------------

/// Models only the catalogue knows are priced in USD, exactly to 1e-9.
#[test]
fn cost_prices_catalogue_models_exactly() {
    let dir = tempfile::tempdir().unwrap();
    // Claude Sonnet 4.5: $3 in / $15 out per million tokens (genai-prices 2026-08-21).
    let q = ok_json(
        dir.path(),
        &["cost", "claude-sonnet-4-5", "1000", "100", "--json"],
    );
    assert_eq!(
        (
            &q["currency"],
            &q["cost_exact"],
            &q["provider"],
            &q["catalogue_model"]
        ),
        (
            &Value::from("USD"),
            &Value::from("0.0045"),
            &Value::from("anthropic"),
            &Value::from("claude-sonnet-4-5")
        ),
        "{q}"
    );
    assert_eq!(q["priced"], true);
    // $0.02 per million: 10 tokens cost $0.0000002, not 0.
    let q = ok_json(
        dir.path(),
        &["cost", "text-embedding-3-small", "10", "0", "--json"],
    );
    assert_eq!(q["cost_exact"], "0.0000002", "{q}");
    assert_eq!(q["cost"], 0.0000002);
    assert_eq!(q["currency"], "USD");
    // The number itself is written as the exact decimal, not `2e-7`.
    let out = run(
        dir.path(),
        &["cost", "text-embedding-3-small", "10", "0", "--json"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(r#""cost": 0.0000002,"#), "{text}");
    assert!(!text.contains("e-7"), "{text}");
    let out = run(dir.path(), &["cost", "text-embedding-3-small", "10", "0"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("$0.0000002 USD"));
    // A table-priced tiny cost keeps its digits instead of `¥0.0000`:
    // qwen-turbo ¥0.0003/1K input → one token is ¥0.0000003.
    let out = run(dir.path(), &["cost", "qwen-turbo", "1", "0"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("¥0.0000003 CNY"), "{text}");
    // Cache reads and writes are parts of the input, each at its own rate:
    // 100 × $3 + 10,000 × $0.30 + 2,000 × $3.75 per million, + 500 × $15.
    let q = ok_json(
        dir.path(),
        &[
            "cost",
            "claude-sonnet-4-5",
            "12100",
            "500",
            "--cached",
            "10000",
            "--cache-write",
            "2000",
            "--json",
        ],
    );
    assert_eq!(q["cost_exact"], "0.0183", "{q}");
    // gpt-4o is the catalogue's (USD models come from it alone), with or
    // without a provider.
    let q = ok_json(dir.path(), &["cost", "gpt-4o", "1000", "0", "--json"]);
    assert_eq!(
        (&q["priced_by"], &q["cost_exact"]),
        (&Value::from("catalogue"), &Value::from("0.0025"))
    );
    let q = ok_json(
        dir.path(),
        &[
            "cost",
            "gpt-4o",
            "1000",
            "0",
            "--provider",
            "openai",
            "--json",
        ],
    );
    assert_eq!(
        (&q["priced_by"], &q["provider"]),
        (&Value::from("catalogue"), &Value::from("openai"))
    );
    // The table's CNY models keep the table's price.
    let q = ok_json(dir.path(), &["cost", "qwen-plus", "1200", "300", "--json"]);
    assert_eq!(
        (&q["currency"], &q["cost"]),
        (&Value::from("CNY"), &Value::from(0.00156))
    );
    // --at: Sonnet 4.6 had long-context tiers (cliff above 200K input: $6)
    // until 2026-03-13, then one flat $3.
    let at = |t: &str| {
        ok_json(
            dir.path(),
            &[
                "cost",
                "claude-sonnet-4-6",
                "300000",
                "0",
                "--at",
                t,
                "--json",
            ],
        )["cost_exact"]
            .clone()
    };
    assert_eq!(at("2026-03-01T00:00:00Z"), "1.8");
    assert_eq!(at("2026-04-01T00:00:00Z"), "0.9");
    assert_error(
        &run(
            dir.path(),
            &["cost", "claude-sonnet-4-6", "1", "1", "--at", "yesterday"],
        ),
        2,
        "2026-03-01T00:00:00Z",
    );
    assert_error(
        &run(
            dir.path(),
            &["cost", "no-such-model", "1", "1", "--provider", "anthropic"],
        ),
        2,
        "unknown model",
    );
}

/// An Anthropic messages body (API reference: `usage.input_tokens` excludes
/// cache reads and writes).
const ANTHROPIC_BODY: &str = r#"{"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[{"type":"text","text":"Hi"}],"stop_reason":"end_turn","usage":{"input_tokens":100,"cache_creation_input_tokens":2000,"cache_read_input_tokens":10000,"output_tokens":500}}"#;

#[test]
fn cost_of_raw_response_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body.json");
    std::fs::write(&body, ANTHROPIC_BODY).unwrap();
    let q = ok_json(
        dir.path(),
        &[
            "cost",
            "--provider",
            "anthropic",
            "--response",
            body.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(q["model"], "claude-sonnet-4-5-20250929");
    assert_eq!(q["catalogue_model"], "claude-sonnet-4-5");
    // All input: 100 + 2,000 + 10,000.
    assert_eq!(q["input_tokens"], 12100, "{q}");
    assert_eq!(
        (&q["cache_read_tokens"], &q["cache_write_tokens"]),
        (&Value::from(10000), &Value::from(2000))
    );
    assert_eq!(q["output_tokens"], 500);
    assert_eq!(
        (&q["cost_exact"], &q["currency"]),
        (&Value::from("0.0183"), &Value::from("USD"))
    );
    let parts: Vec<(String, String)> = q["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["part"].as_str().unwrap().to_owned(),
                p["cost"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        parts,
        [
            ("uncached_input", "0.0003"),
            ("cache_read", "0.003"),
            ("cache_write", "0.0075"),
            ("output", "0.0075")
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    // An OpenAI embeddings body, flavour given.
    let emb = dir.path().join("emb.json");
    std::fs::write(
        &emb,
        r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1]}],"model":"text-embedding-3-small","usage":{"prompt_tokens":10,"total_tokens":10}}"#,
    )
    .unwrap();
    let q = ok_json(
        dir.path(),
        &[
            "cost",
            "--provider",
            "openai",
            "--api",
            "embeddings",
            "--response",
            emb.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(
        (&q["input_tokens"], &q["cost_exact"]),
        (&Value::from(10), &Value::from("0.0000002")),
        "{q}"
    );

    // --responses: one line out per line in, in order; bad lines say why.
    let lines = dir.path().join("bodies.jsonl");
    std::fs::write(
        &lines,
        format!(
            "{ANTHROPIC_BODY}\nnot json\n{{\"model\":\"claude-sonnet-4-5\"}}\n{ANTHROPIC_BODY}\n"
        ),
    )
    .unwrap();
    let out = run(
        dir.path(),
        &[
            "cost",
            "--provider",
            "anthropic",
            "--responses",
            lines.to_str().unwrap(),
        ],
    );
    // Every line is answered, then the bad ones fail the command, counted.
    assert_error(&out, 1, "2 of 4 response line(s) could not be priced");
    let got: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!(got[0]["cost_exact"], "0.0183");
    assert_eq!(got[1]["line"], 2);
    assert!(
        got[1]["error"].as_str().unwrap().contains("not JSON"),
        "{}",
        got[1]
    );
    assert_eq!(got[2]["line"], 3);
    assert!(
        got[2]["error"].as_str().unwrap().contains("usage"),
        "{}",
        got[2]
    );
    assert_eq!(got[3]["cost_exact"], "0.0183");
    // --response needs --provider.
    assert_eq!(
        run(dir.path(), &["cost", "--response", body.to_str().unwrap()])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn pricing_show_and_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ai_usage");
    let s = ok_json(&dir, &["pricing", "show", "claude-sonnet-4-6", "--json"]);
    assert_eq!(s["priced_by"], "catalogue");
    assert_eq!(s["catalogue"]["provider"], "anthropic");
    let history = s["catalogue"]["history"].as_array().unwrap();
    assert_eq!(history.len(), 2, "{s}");
    assert_eq!(history[1]["when"], "from 2026-03-13");
    assert_eq!(history[1]["prices"]["input_mtok"], "3");
    assert_eq!(history[0]["prices"]["input_mtok"], "3 (above 200000: 6)");
    let s = ok_json(&dir, &["pricing", "show", "qwen-plus", "--json"]);
    assert_eq!(
        (&s["priced_by"], &s["table"]["currency"]),
        (&Value::from("table"), &Value::from("CNY"))
    );
    assert_error(
        &run(&dir, &["pricing", "show", "no-such-model"]),
        2,
        "unknown model",
    );

    let record = |model: &str| {
        ok_json(
            &dir,
            &[
                "record",
                "--model",
                model,
                "--function",
                "f",
                "--input-tokens",
                "10",
                "--output-tokens",
                "1",
                "--json",
            ],
        )
    };
    record("qwen-plus");
    record("my-private-model");
    record("my-private-model");
    record("claude-sonnet-4-5");
    let m = ok_json(&dir, &["pricing", "missing", "--json"]);
    assert_eq!(
        m,
        serde_json::json!([{"model": "my-private-model", "calls": 2, "unpriced_calls": 2, "priced_now": false,
            "reprice_would_price": 0, "reprice_would_add": {}}])
    );
}

/// Starts the binary with stdout on a pipe, reads one line and closes the
/// pipe, like `ai-usage … | head -1`; returns the exit status and stderr.
fn read_one_line_then_close(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    use std::io::BufRead;
    let mut child = Command::new(BIN)
        .arg("--dir")
        .arg(dir)
        .args(["--tz", "+08:00"])
        .args(args)
        .env_remove("AI_USAGE_PRICING")
        .env_remove("RUST_LOG")
        .env_remove("AI_USAGE_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start ai-usage");
    let mut first = String::new();
    {
        let stdout = child.stdout.take().expect("piped stdout");
        let mut reader = std::io::BufReader::new(stdout);
        reader.read_line(&mut first).expect("first line");
        // Dropping the reader closes the pipe's read end.
    }
    let out = child.wait_with_output().expect("wait for ai-usage");
    (out.status.code(), first, stderr(&out))
}

#[test]
fn closed_stdout_ends_quietly_with_status_141() {
    let dir = tempfile::tempdir().unwrap();
    // Every output must be far larger than a pipe's buffer (64 KiB), so the
    // program is still writing when the reader goes away.
    let mut litellm = serde_json::Map::new();
    for i in 0..2_000 {
        litellm.insert(
            format!("pipe-test-model-{i:05}"),
            serde_json::json!({
                "input_cost_per_token": 1e-6,
                "output_cost_per_token": 2e-6,
                "litellm_provider": "openai",
                "mode": "chat"
            }),
        );
    }
    let prices = dir.path().join("model_prices_and_context_window.json");
    std::fs::write(&prices, Value::Object(litellm).to_string()).unwrap();
    let bodies = dir.path().join("bodies.jsonl");
    std::fs::write(&bodies, format!("{ANTHROPIC_BODY}\n").repeat(2_000)).unwrap();
    let prices = prices.to_str().unwrap();
    let cases: [&[&str]; 3] = [
        // Pretty JSON (print_json).
        &["--pricing", prices, "pricing", "--json"],
        // A human table.
        &["--pricing", prices, "pricing"],
        // One JSON line per input line.
        &[
            "cost",
            "--provider",
            "anthropic",
            "--responses",
            bodies.to_str().unwrap(),
        ],
    ];
    for args in cases {
        let (code, first, err) = read_one_line_then_close(dir.path(), args);
        assert!(!first.is_empty(), "{args:?}: no first line");
        assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
        assert_eq!(err, "", "{args:?}: nothing on stderr");
        assert_eq!(code, Some(141), "{args:?}: 128 + SIGPIPE");
    }
}

/// `--response -` and `--responses -` read the body (or bodies) from stdin,
/// with the same result as from a file.
#[test]
fn response_bodies_from_stdin() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let from_stdin = |args: &[&str], input: String| -> Output {
        let mut child = Command::new(BIN)
            .arg("--dir")
            .arg(dir.path())
            .args(args)
            .env_remove("AI_USAGE_PRICING")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start ai-usage");
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin.write_all(input.as_bytes()).unwrap();
        drop(stdin);
        child.wait_with_output().expect("wait for ai-usage")
    };
    let out = from_stdin(
        &[
            "cost",
            "--provider",
            "anthropic",
            "--response",
            "-",
            "--json",
        ],
        ANTHROPIC_BODY.to_string(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let q: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (&q["input_tokens"], &q["cost_exact"], &q["currency"]),
        (
            &Value::from(12100),
            &Value::from("0.0183"),
            &Value::from("USD")
        ),
        "{q}"
    );
    let out = from_stdin(
        &["cost", "--provider", "anthropic", "--responses", "-"],
        format!("{ANTHROPIC_BODY}\nnot json\n"),
    );
    assert_error(&out, 1, "1 of 2 response line(s) could not be priced");
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["cost_exact"], "0.0183");
    assert_eq!(lines[1]["line"], 2);
}
