//! Report JSON shape, CSV content and records export.

use ai_usage_core::Zone;
use ai_usage_core::{Budget, BudgetPeriod, BudgetScope};
use ai_usage_core::{Currency, Money, UsageEvent};

use crate::common::setup;

#[test]
fn json_report_has_the_seed_fields_and_never_overwrites() {
    let (dir, m, ts) = setup();
    m.add_budget(Budget::new(
        "d",
        BudgetScope::Global,
        BudgetPeriod::Daily,
        "10".parse().unwrap(),
        Currency::CNY,
    ))
    .unwrap();
    m.record(
        &UsageEvent::new("qwen-max", "实时分析")
            .tokens(1000, 500)
            .user("u1")
            .anchor("anchor_001")
            .at(ts),
    );
    m.record(
        &UsageEvent::new("qwen-plus", "问答")
            .tokens(100, 50)
            .user("u2")
            .at(ts - 86_400.0),
    );
    let path = m.export_report(None, 7).unwrap();
    assert_eq!(path.parent().unwrap(), dir.path());
    let name = path.file_name().unwrap().to_str().unwrap();
    assert!(
        name.starts_with("usage_report_")
            && name.ends_with(".json")
            && name.len() == "usage_report_20251026_143022.json".len(),
        "{name}"
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
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
        assert!(v.get(key).is_some(), "missing {key}");
    }
    assert_eq!(v["period_days"], 7);
    assert_eq!(v["today_summary"]["total_calls"], 1);
    assert_eq!(v["today_summary"]["total_cost"], 0.05);
    assert_eq!(v["period_summary"]["total_calls"], 2);
    assert_eq!(v["cost_trend"].as_array().unwrap().len(), 7);
    assert_eq!(v["top_users"][0]["user_id"], "u1");
    assert_eq!(v["by_anchor"][0]["anchor_id"], "anchor_001");
    assert_eq!(v["budgets"][0]["name"], "d");
    assert_eq!(v["budgets"][0]["spent"], 0.05);
    assert!(v["savings"]["functions"].as_array().unwrap().len() >= 2);
    // The same second again: a new name, the first file untouched.
    let first = std::fs::read(&path).unwrap();
    let again = m.export_report(None, 7).unwrap();
    assert_ne!(again, path);
    assert_eq!(std::fs::read(&path).unwrap(), first);
    // Explicit path with a missing directory.
    let out = dir.path().join("reports").join("monthly_usage.json");
    assert_eq!(m.export_report(Some(&out), 30).unwrap(), out);
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(v["period_days"], 30);
}

#[test]
fn daily_csv_has_one_row_per_day_model_function() {
    let (dir, m, ts) = setup();
    m.record(
        &UsageEvent::new("qwen-max", "实时分析")
            .tokens(1000, 500)
            .at(ts),
    );
    m.record(
        &UsageEvent::new("qwen-max", "实时分析")
            .tokens(1000, 500)
            .at(ts),
    );
    m.record(
        &UsageEvent::new("qwen-plus", "问答,FAQ")
            .tokens(100, 50)
            .at(ts),
    );
    m.record(
        &UsageEvent::new("gemini-2.0-flash", "问答,FAQ")
            .tokens(1000, 1000)
            .at(ts - 86_400.0),
    );
    let out = dir.path().join("daily.csv");
    m.export_csv(Some(&out), 2, false).unwrap();
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "date,model,display_name,function,calls,input_tokens,output_tokens,total_tokens,cost,currency"
    );
    let zone: Zone = "+08:00".parse().unwrap();
    let today = zone.today().format("%Y-%m-%d").to_string();
    let yesterday = (zone.today() - chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    assert_eq!(
        &lines[1..],
        &[
            format!("{yesterday},gemini-2.0-flash,Gemini 2.0 Flash,\"问答,FAQ\",1,1000,1000,2000,0.000500,USD"),
            format!("{today},qwen-max,通义千问-Max,实时分析,2,2000,1000,3000,0.100000,CNY"),
            format!("{today},qwen-plus,通义千问-Plus,\"问答,FAQ\",1,100,50,150,0.001000,CNY"),
        ]
    );
}

#[test]
fn records_csv_reads_day_files_and_escapes_fields() {
    let (dir, m, ts) = setup();
    m.record(
        &UsageEvent::new("qwen-plus", "问答")
            .tokens(10, 5)
            .session("s\"1")
            .failed("上游错误, \"重试\"\n第二行")
            .at(ts),
    );
    m.record(
        &UsageEvent::new("qwen-plus", "问答")
            .tokens(10, 5)
            .cost(Money::from_micros(7))
            .at(ts + 1.0),
    );
    let today = m.today();
    let out = dir.path().join("records.csv");
    m.export_records_csv(Some(&out), today, today, false)
        .unwrap();
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.starts_with(
        "timestamp,local_time,user_id,anchor_id,session_id,model,function,input_tokens,\
         output_tokens,total_tokens,cached_input_tokens,reasoning_tokens,cost,currency,\
         duration_ms,success,error_msg,request_id,tags,cache_write_tokens,input_audio_tokens,\
         cached_audio_input_tokens,output_audio_tokens,provider\n"
    ));
    assert!(text.contains("\"s\"\"1\""), "{text}");
    assert!(
        text.contains("\"上游错误, \"\"重试\"\"\n第二行\""),
        "{text}"
    );
    assert!(text.contains(",0.000007,CNY,"), "{text}");
    // Header + 2 records; the quoted newline makes one extra physical line.
    assert_eq!(text.lines().count(), 4);
    // A CSV reader gets every field back exactly.
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader.headers().unwrap().clone();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2);
    let field = |row: &csv::StringRecord, name: &str| {
        let i = header.iter().position(|h| h == name).unwrap();
        row[i].to_string()
    };
    assert_eq!(field(&rows[0], "session_id"), "s\"1");
    assert_eq!(field(&rows[0], "error_msg"), "上游错误, \"重试\"\n第二行");
    assert_eq!(field(&rows[0], "success"), "false");
    assert_eq!(field(&rows[1], "cost"), "0.000007");
    assert_eq!(field(&rows[1], "error_msg"), "");
    assert!(m
        .export_records_csv(Some(&out), today, today - chrono::Duration::days(1), false)
        .is_err());
}

#[test]
fn csv_exports_start_with_a_bom_only_when_asked() {
    let (dir, m, ts) = setup();
    m.record(
        &UsageEvent::new("qwen-plus", "实时分析")
            .tokens(10, 5)
            .at(ts),
    );
    let today = m.today();
    let bom = "\u{feff}";
    for with_bom in [false, true] {
        let daily = dir.path().join(format!("daily_{with_bom}.csv"));
        m.export_csv(Some(&daily), 1, with_bom).unwrap();
        let records = dir.path().join(format!("records_{with_bom}.csv"));
        m.export_records_csv(Some(&records), today, today, with_bom)
            .unwrap();
        for (path, first) in [(daily, "date,"), (records, "timestamp,")] {
            let text = std::fs::read_to_string(&path).unwrap();
            let body = match text.strip_prefix(bom) {
                Some(rest) => {
                    assert!(with_bom, "unexpected BOM in {}", path.display());
                    rest
                }
                None => {
                    assert!(!with_bom, "no BOM in {}", path.display());
                    &text
                }
            };
            assert!(body.starts_with(first), "{body}");
            assert!(!body.contains(bom), "a BOM inside the text: {body}");
            assert!(body.contains("实时分析"), "{body}");
        }
    }
}
