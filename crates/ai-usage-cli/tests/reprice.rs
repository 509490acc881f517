//! `ai-usage reprice` and `--rates FILE` end to end: corrections reach every
//! answer, the usage files stay byte for byte, and a month converts at each
//! day's rate.

mod support;

use std::path::Path;

use ai_usage_core::Zone;
use chrono::{Datelike, NaiveDate};
use serde_json::Value;
use support::{run, stderr};

fn ok_json(dir: &Path, args: &[&str]) -> Value {
    let out = run(dir, args);
    assert!(out.status.success(), "{args:?} failed: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn zone() -> Zone {
    "+08:00".parse().unwrap()
}

/// One stored line, as the monitor writes it.
fn line(ts: f64, model: &str, user: &str, cost: &str, currency: &str, priced: bool) -> String {
    format!(
        r#"{{"timestamp": {ts}, "user_id": "{user}", "anchor_id": "a1", "session_id": "s1", "model": "{model}", "function": "实时分析", "input_tokens": 1000, "output_tokens": 500, "total_tokens": 1500, "cost": {cost}, "duration_ms": 120.0, "success": true, "error_msg": null, "currency": "{currency}", "priced": {priced}}}"#
    )
}

fn write_day(dir: &Path, day: NaiveDate, lines: &[String]) {
    std::fs::create_dir_all(dir).unwrap();
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(dir.join(format!("usage_{day}.jsonl")), text).unwrap();
}

/// The usage files and their bytes.
fn usage_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().starts_with("usage_"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn reprice_only_unpriced_prices_yesterdays_calls_in_every_answer() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ai_usage");
    let z = zone();
    let yesterday = z.today() - chrono::Duration::days(1);
    let noon = z.day_bounds(yesterday).0 + 12.0 * 3600.0;
    write_day(
        &dir,
        yesterday,
        &[
            line(noon, "acme-private", "u1", "0.0", "CNY", false),
            line(noon + 1.0, "acme-private", "u1", "0.0", "CNY", false),
            line(noon + 2.0, "acme-private", "u2", "0.0", "CNY", false),
            line(noon + 3.0, "qwen-plus", "u3", "0.0018", "CNY", true),
        ],
    );
    // The catalogue in force now prices the model: ¥0.01 / ¥0.02 per 1K,
    // so each call costs ¥0.02.
    let prices = tmp.path().join("prices.json");
    std::fs::write(
        &prices,
        r#"{"models": {"acme-private": {"display_name": "Acme", "input": 0.01, "output": 0.02}}}"#,
    )
    .unwrap();
    let p = prices.to_str().unwrap();
    let y = yesterday.to_string();
    let before = usage_files(&dir);
    let stats_before = ok_json(&dir, &["stats", "daily", "--date", &y, "--json"]);
    assert_eq!(stats_before["unpriced_calls"], 3);

    let missing = ok_json(&dir, &["--pricing", p, "pricing", "missing", "--json"]);
    let row = &missing.as_array().unwrap()[0];
    assert_eq!(row["model"], "acme-private");
    assert_eq!(row["priced_now"], true);
    assert_eq!(row["reprice_would_price"], 3);
    assert_eq!(row["reprice_would_add"]["CNY"], 0.06);

    let dry = ok_json(
        &dir,
        &[
            "--pricing",
            p,
            "reprice",
            "--from",
            &y,
            "--to",
            &y,
            "--only-unpriced",
            "--dry-run",
            "--json",
        ],
    );
    assert_eq!(dry["written"], 0);
    assert_eq!(dry["total"]["newly_priced"], 3);
    assert_eq!(dry["total"]["delta"]["CNY"], 0.06);
    assert_eq!(dry["changes"][0]["model"], "acme-private");
    assert_eq!(dry["changes"][0]["day"], y.as_str());
    assert!(
        !dir.join(format!("adjustments_{y}.jsonl")).exists(),
        "a dry run writes nothing"
    );
    let text = run(
        &dir,
        &[
            "--pricing",
            p,
            "reprice",
            "--from",
            &y,
            "--to",
            &y,
            "--only-unpriced",
            "--dry-run",
        ],
    );
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("acme-private") && text.contains("+¥0.0600"),
        "{text}"
    );

    let done = ok_json(
        &dir,
        &[
            "--pricing",
            p,
            "reprice",
            "--from",
            &y,
            "--to",
            &y,
            "--only-unpriced",
            "--json",
        ],
    );
    assert_eq!(done["written"], 3);
    assert_eq!(usage_files(&dir), before, "usage files byte for byte");
    let adj = std::fs::read_to_string(dir.join(format!("adjustments_{y}.jsonl"))).unwrap();
    let first: Value = serde_json::from_str(adj.lines().next().unwrap()).unwrap();
    assert_eq!(first["file"], format!("usage_{y}.jsonl"));
    assert_eq!(first["offset"], 0);
    assert_eq!(
        (first["old_cost"].as_f64(), first["new_cost"].as_f64()),
        (Some(0.0), Some(0.02))
    );
    assert_eq!(first["old_priced"], false);
    assert!(first["price_source"]
        .as_str()
        .unwrap()
        .contains("acme-private"));

    // Every answer, even without the pricing file: the corrections are data.
    let s = ok_json(&dir, &["stats", "daily", "--date", &y, "--json"]);
    assert_eq!(s["unpriced_calls"], 0);
    assert_eq!(s["total_calls"], stats_before["total_calls"]);
    assert_eq!(s["total_tokens"], stats_before["total_tokens"]);
    assert_eq!(s["by_model"]["acme-private"]["cost"], 0.06);
    assert_eq!(s["by_user"]["u1"]["cost"], 0.04);
    assert_eq!(s["by_anchor"]["a1"]["cost"], 0.0618);
    assert_eq!(s["total_cost"], 0.0618);
    let session = ok_json(&dir, &["session", "s1", "--json"]);
    assert_eq!(session["cost"], 0.0618, "{session}");
    let trend = ok_json(&dir, &["trend", "--from", &y, "--to", &y, "--json"]);
    assert_eq!(trend[0]["cost"], 0.0618, "{trend}");
    let top = ok_json(
        &dir,
        &[
            "top-users",
            "--by",
            "cost",
            "--from",
            &y,
            "--to",
            &y,
            "--json",
        ],
    );
    assert_eq!(top[0]["cost"], 0.04, "{top}");
    assert!(top[0].to_string().contains("\"u1\""), "{top}");
    let csv = tmp.path().join("daily.csv");
    let out = run(
        &dir,
        &[
            "report",
            "--days",
            "2",
            "--format",
            "csv",
            "-o",
            csv.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let csv = std::fs::read_to_string(&csv).unwrap();
    assert!(
        csv.contains("acme-private") && csv.contains(",3,3000,1500,4500,0.060000,CNY"),
        "{csv}"
    );
    let records = tmp.path().join("records.csv");
    let out = run(
        &dir,
        &[
            "report",
            "--days",
            "2",
            "--format",
            "records",
            "-o",
            records.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let records = std::fs::read_to_string(&records).unwrap();
    assert!(records.matches("0.02").count() >= 3, "{records}");
    if z.today().day() != 1 {
        // A monthly budget counts yesterday's corrected spend.
        let budgets = tmp.path().join("budgets.json");
        std::fs::write(
            &budgets,
            r#"[{"name": "m", "period": "monthly", "limit": 1}]"#,
        )
        .unwrap();
        let b = ok_json(
            &dir,
            &["--budgets", budgets.to_str().unwrap(), "budgets", "--json"],
        );
        let spent = b.to_string();
        assert!(spent.contains("0.0618"), "{spent}");
    }

    // Again with the same prices: nothing.
    let again = ok_json(
        &dir,
        &[
            "--pricing",
            p,
            "reprice",
            "--from",
            &y,
            "--to",
            &y,
            "--only-unpriced",
            "--json",
        ],
    );
    assert_eq!(again["written"], 0);
    let all = ok_json(
        &dir,
        &[
            "--pricing",
            p,
            "reprice",
            "--from",
            &y,
            "--to",
            &y,
            "--model",
            "acme-private",
            "--json",
        ],
    );
    assert_eq!(all["written"], 0, "{all}");
    assert_eq!(
        adj,
        std::fs::read_to_string(dir.join(format!("adjustments_{y}.jsonl"))).unwrap()
    );
    let missing = ok_json(&dir, &["--pricing", p, "pricing", "missing", "--json"]);
    assert_eq!(missing, serde_json::json!([]));
    assert_eq!(usage_files(&dir), before);

    let bad = run(&dir, &["reprice", "--from", &y, "--to", "2000-01-01"]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("--from"), "{}", stderr(&bad));
}

#[test]
fn a_months_converted_total_uses_each_days_rate() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ai_usage");
    let z = zone();
    let this_month = z.today().with_day(1).unwrap();
    let first = (this_month - chrono::Duration::days(1))
        .with_day(1)
        .unwrap();
    let day = |n: i64| first + chrono::Duration::days(n);
    let noon = |d: NaiveDate| z.day_bounds(d).0 + 12.0 * 3600.0;
    // $0.50 on the 1st, $0.25 on the 2nd (no rate of its own), $1 on the 3rd.
    for (n, cost) in [(0, "0.5"), (1, "0.25"), (2, "1.0")] {
        write_day(
            &dir,
            day(n),
            &[line(noon(day(n)), "gpt-4o", "u1", cost, "USD", true)],
        );
    }
    let rates = tmp.path().join("rates.csv");
    std::fs::write(
        &rates,
        format!(
            "date,currency,rate\n{},USD,7.0\n{},USD,7.2\n",
            day(0),
            day(2)
        ),
    )
    .unwrap();
    let month = first.format("%Y-%m").to_string();
    let s = ok_json(
        &dir,
        &[
            "--rates",
            rates.to_str().unwrap(),
            "stats",
            "monthly",
            "--month",
            &month,
            "--json",
        ],
    );
    let c = &s["converted_total"];
    // 0.5 × 7.0 + 0.25 × 7.0 + 1.0 × 7.2
    assert_eq!(c["total"], 12.45, "{c}");
    assert_eq!(c["currency"], "CNY");
    assert_eq!(
        c["rates_by_day"],
        serde_json::json!([
            {"currency": "USD", "from": day(0).to_string(), "to": day(1).to_string(), "rate": 7.0, "rate_date": day(0).to_string()},
            {"currency": "USD", "from": day(2).to_string(), "to": day(2).to_string(), "rate": 7.2, "rate_date": day(2).to_string()},
        ]),
        "{c}"
    );
    // One day converts at its own rate.
    let d = ok_json(
        &dir,
        &[
            "--rates",
            rates.to_str().unwrap(),
            "stats",
            "daily",
            "--date",
            &day(1).to_string(),
            "--json",
        ],
    );
    assert_eq!(d["converted_total"]["total"], 1.75);
    // The constant rate stays as it was.
    let k = ok_json(
        &dir,
        &[
            "--rate", "USD=7.1", "stats", "monthly", "--month", &month, "--json",
        ],
    );
    assert_eq!(k["converted_total"]["total"], 12.425);
    assert_eq!(k["converted_total"]["rates"]["USD"], 7.1);
    assert!(k["converted_total"].get("rates_by_day").is_none());
    // The table says which rates it used.
    let out = run(
        &dir,
        &[
            "--rates",
            rates.to_str().unwrap(),
            "stats",
            "monthly",
            "--month",
            &month,
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("rate of {}", day(2))), "{text}");
    // A bad file is refused, naming the line.
    std::fs::write(&rates, "2026-11-01,USD,abc\n").unwrap();
    let bad = run(
        &dir,
        &["--rates", rates.to_str().unwrap(), "stats", "monthly"],
    );
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("line 1"), "{}", stderr(&bad));
}
