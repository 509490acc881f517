//! The API contract of the original: every key a
//! client of the original reads, with the JSON type the original sent,
//! checked against our answers.
//!
//! The table is written from the guide (`MONITORING_GUIDE.zh.md`: the
//! `/stats/current` example, `session_stats['cost']`, `user['user_id']`,
//! `user['cost']`, `by_model` groups `{calls, cost}`, `d['cost']` of the
//! trend, the export answer) and what its clients were found to read (`by_model`/`by_function` of
//! today, `input_tokens`/`output_tokens`, `date`, `year_month`, ISO
//! `start_time`/`end_time`, session `tokens`, `{period_days, top_users}`,
//! `{period_days, data}`, the dashboard's `this_month`, `cost_trend_7days`,
//! `cost_change_percent` and name-keyed distributions, FastAPI's 422
//! `detail`). `/models/pricing` has its own test with the pricing tables.
//!
//! Paths: `a.b` is a key, `*` every value of an object, `[]` every element of
//! an array; each path must match at least one value, so a wildcard over an
//! empty group cannot pass by matching nothing.

mod common;

use std::process::Command;

use ai_usage_core::{now_timestamp, UsageEvent, UsageMonitor};
use axum::body::Body;
use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use common::{fixture, send, Fixture};

/// The JSON type of a value, as JS's `typeof` sees it (arrays apart).
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Fields of one group of the original's summaries (`by_model`, `by_function`).
const GROUP: [&str; 5] = [
    "calls",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cost",
];

/// `(path, JSON type)` pairs of one answer.
type Shape = Vec<(String, &'static str)>;

/// `(request, expected status, shape)`: what the original answered.
fn original_contract() -> Vec<(&'static str, u16, Shape)> {
    let p = |path: &str, t: &'static str| (path.to_string(), t);
    let groups = |prefix: &str| -> Vec<(String, &'static str)> {
        let mut v = vec![(prefix.to_string(), "object")];
        v.extend(GROUP.iter().map(|f| (format!("{prefix}.*.{f}"), "number")));
        v
    };
    let summary = |extra: Vec<(String, &'static str)>| {
        let mut v = vec![
            p("period", "string"),
            p("start_time", "string"),
            p("end_time", "string"),
            p("total_calls", "number"),
            p("successful_calls", "number"),
            p("failed_calls", "number"),
            p("input_tokens", "number"),
            p("output_tokens", "number"),
            p("total_tokens", "number"),
            p("total_cost", "number"),
            p("success_rate", "number"),
            p("avg_duration_ms", "number"),
        ];
        v.extend(groups("by_model"));
        v.extend(groups("by_function"));
        v.extend(groups("by_user"));
        v.extend(groups("by_anchor"));
        v.extend(extra);
        v
    };
    let mut current = vec![
        p("today", "object"),
        p("today.calls", "number"),
        p("today.tokens", "number"),
        p("today.cost", "number"),
        p("today.success_rate", "number"),
        p("current_hour", "object"),
        p("current_hour.calls", "number"),
        p("current_hour.tokens", "number"),
        p("current_hour.cost", "number"),
        p("current_hour.success_rate", "number"),
    ];
    current.extend(groups("today.by_model"));
    current.extend(groups("today.by_function"));
    let mut dashboard = vec![
        p("today", "object"),
        p("today.calls", "number"),
        p("today.tokens", "number"),
        p("today.cost", "number"),
        p("today.success_rate", "number"),
        p("today.cost_change_percent", "number"),
        p("this_month", "object"),
        p("this_month.calls", "number"),
        p("this_month.tokens", "number"),
        p("this_month.cost", "number"),
        p("this_month.avg_daily_cost", "number"),
        p("top_users", "array"),
        p("top_users.[].user_id", "string"),
        p("top_users.[].tokens", "number"),
        p("top_users.[].cost", "number"),
        p("top_users.[].calls", "number"),
        p("cost_trend_7days", "array"),
        p("cost_trend_7days.[].date", "string"),
        p("cost_trend_7days.[].cost", "number"),
        p("cost_trend_7days.[].calls", "number"),
        p("cost_trend_7days.[].tokens", "number"),
    ];
    dashboard.extend(groups("model_distribution"));
    dashboard.extend(groups("function_distribution"));
    vec![
        ("GET /api/ai_usage/stats/current", 200, current),
        (
            "GET /api/ai_usage/stats/hourly?hours_ago=0",
            200,
            summary(vec![]),
        ),
        (
            "GET /api/ai_usage/stats/daily?days_ago=0",
            200,
            summary(vec![p("date", "string")]),
        ),
        (
            "GET /api/ai_usage/stats/monthly",
            200,
            summary(vec![p("year_month", "string")]),
        ),
        (
            "GET /api/ai_usage/session/live_1",
            200,
            vec![
                p("session_id", "string"),
                p("calls", "number"),
                p("tokens", "number"),
                p("input_tokens", "number"),
                p("output_tokens", "number"),
                p("cost", "number"),
            ],
        ),
        (
            "GET /api/ai_usage/top_users?limit=10&days=7",
            200,
            vec![
                p("period_days", "number"),
                p("top_users", "array"),
                p("top_users.[].user_id", "string"),
                p("top_users.[].tokens", "number"),
                p("top_users.[].cost", "number"),
                p("top_users.[].calls", "number"),
            ],
        ),
        (
            "GET /api/ai_usage/cost_trend?days=7",
            200,
            vec![
                p("period_days", "number"),
                p("data", "array"),
                p("data.[].date", "string"),
                p("data.[].cost", "number"),
                p("data.[].calls", "number"),
                p("data.[].tokens", "number"),
            ],
        ),
        ("GET /api/ai_usage/dashboard", 200, dashboard),
        (
            "POST /api/ai_usage/export_report?days=7",
            200,
            vec![
                p("success", "boolean"),
                p("report_path", "string"),
                p("download_url", "string"),
            ],
        ),
        (
            "GET /api/ai_usage/top_users?days=0",
            422,
            vec![
                p("detail", "array"),
                p("detail.[].type", "string"),
                p("detail.[].loc", "array"),
                p("detail.[].loc.[]", "string"),
                p("detail.[].msg", "string"),
                p("detail.[].input", "string"),
                p("detail.[].ctx", "object"),
                p("detail.[].ctx.ge", "number"),
            ],
        ),
        (
            "GET /api/ai_usage/stats/hourly?hours_ago=73",
            422,
            vec![
                p("detail.[].type", "string"),
                p("detail.[].loc", "array"),
                p("detail.[].msg", "string"),
                p("detail.[].input", "string"),
                p("detail.[].ctx.le", "number"),
            ],
        ),
        (
            "GET /api/ai_usage/stats/hourly?hours_ago=abc",
            422,
            vec![
                p("detail.[].type", "string"),
                p("detail.[].loc", "array"),
                p("detail.[].msg", "string"),
                p("detail.[].input", "string"),
            ],
        ),
    ]
}

/// Every value at `path` (see the module docs for the syntax).
fn select<'a>(v: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut found = vec![v];
    for step in path.split('.') {
        found = found
            .into_iter()
            .flat_map(|v| -> Vec<&Value> {
                match (step, v) {
                    ("*", Value::Object(m)) => m.values().collect(),
                    ("[]", Value::Array(a)) => a.iter().collect(),
                    (key, Value::Object(m)) => m.get(key).into_iter().collect(),
                    _ => Vec::new(),
                }
            })
            .collect();
    }
    found
}

/// Records a day of calls: two users, a session, functions whose display
/// names collide (`live_analysis` shows as `实时分析`), a USD call, and
/// yesterday's calls (for the change vs yesterday).
fn seed_contract(m: &UsageMonitor) {
    let now = now_timestamp();
    m.record(
        &UsageEvent::new("qwen-plus", "live_analysis")
            .tokens(1000, 500)
            .user("u1")
            .anchor("a1")
            .session("live_1")
            .at(now),
    );
    m.record(
        &UsageEvent::new("qwen-plus", "实时分析")
            .tokens(2000, 100)
            .user("u2")
            .anchor("a1")
            .session("live_1")
            .at(now),
    );
    m.record(
        &UsageEvent::new("qwen-max", "script_generation")
            .tokens(3000, 900)
            .user("u2")
            .failed("timeout")
            .at(now),
    );
    m.record(
        &UsageEvent::new("gpt-4o-mini", "qa")
            .tokens(700, 70)
            .user("u3")
            .at(now),
    );
    m.record(
        &UsageEvent::new("qwen-plus", "qa")
            .tokens(500, 50)
            .user("u1")
            .at(now - 86_400.0),
    );
}

async fn call(f: &Fixture, request: &str) -> (StatusCode, Value) {
    let (method, uri) = request.split_once(' ').expect("METHOD uri");
    let method = Method::from_bytes(method.as_bytes()).expect("method");
    let (s, _, b) = send(&f.app, method, uri, &[], Body::empty()).await;
    (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

#[tokio::test]
async fn every_key_the_original_sent_is_there_with_its_type() {
    let f = fixture();
    seed_contract(&f.monitor);
    let mut failures = Vec::new();
    for (request, status, paths) in original_contract() {
        let (s, body) = call(&f, request).await;
        if s.as_u16() != status {
            failures.push(format!("{request}: status {s}, want {status}: {body}"));
            continue;
        }
        for (path, want) in paths {
            let found = select(&body, &path);
            if found.is_empty() {
                failures.push(format!("{request}: no {path}"));
            }
            for v in found {
                if kind(v) != want {
                    failures.push(format!(
                        "{request}: {path} is {} ({v}), want {want}",
                        kind(v)
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// FastAPI's `ctx` carries the broken bound (pydantic's `ge`/`le`); a
/// parse failure has none, as in FastAPI.
#[tokio::test]
async fn validation_issues_carry_fastapis_ctx() {
    let f = fixture();
    let (s, v) = call(&f, "GET /api/ai_usage/stats/hourly?hours_ago=73").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["detail"][0]["type"], "less_than_equal", "{v}");
    assert_eq!(v["detail"][0]["ctx"], json!({ "le": 72 }), "{v}");
    let (_, v) = call(&f, "GET /api/ai_usage/top_users?days=0").await;
    assert_eq!(v["detail"][0]["type"], "greater_than_equal", "{v}");
    assert_eq!(v["detail"][0]["ctx"], json!({ "ge": 1 }), "{v}");
    let (_, v) = call(&f, "GET /api/ai_usage/stats/hourly?hours_ago=abc").await;
    assert_eq!(v["detail"][0]["type"], "int_parsing", "{v}");
    assert!(v["detail"][0].get("ctx").is_none(), "{v}");
}

#[tokio::test]
async fn compat_values_follow_the_originals_rules() {
    let f = fixture();
    seed_contract(&f.monitor);
    let today = f.monitor.today();

    let (_, day) = call(&f, "GET /api/ai_usage/stats/daily?days_ago=0").await;
    let exact = f.monitor.get_daily_summary(0);
    // total_cost is rounded to 2 decimals; the exact figure is ours.
    let rounded = (exact.total_cost.as_f64() * 100.0).round() / 100.0;
    assert_eq!(day["total_cost"].as_f64(), Some(rounded), "{day}");
    assert_eq!(
        day["total_cost_exact"].as_f64(),
        Some(exact.total_cost.as_f64())
    );
    assert_eq!(day["success_rate"], 75.0, "3 of 4 calls succeeded");
    assert_eq!(day["input_tokens"], day["total_input_tokens"]);
    assert_eq!(day["output_tokens"], exact.total_output_tokens);
    assert_eq!(day["date"], today.format("%Y-%m-%d").to_string());
    // Local ISO bounds; the epoch seconds stay under our names.
    assert_eq!(
        day["start_time"],
        format!("{}T00:00:00", today.format("%Y-%m-%d"))
    );
    assert_eq!(day["start_ts"].as_f64(), Some(exact.start_time));
    assert_eq!(day["end_ts"].as_f64(), Some(exact.end_time));
    // live_analysis shows as 实时分析: both groups added, none dropped.
    let rt = &day["by_function"]["实时分析"];
    assert_eq!(rt["calls"], 2, "{day}");
    assert_eq!(rt["total_tokens"], 1500 + 2100);
    assert_eq!(rt["functions"], json!(["live_analysis", "实时分析"]));
    assert!(day["by_function"].get("live_analysis").is_none());
    assert_eq!(day["by_function"]["话术生成"]["calls"], 1);
    assert_eq!(day["by_function"]["问答"]["calls"], 1);
    let calls: u64 = day["by_function"]
        .as_object()
        .expect("by_function")
        .values()
        .map(|g| g["calls"].as_u64().expect("calls"))
        .sum();
    assert_eq!(calls, 4, "every call is in one display group");

    let (_, hour) = call(&f, "GET /api/ai_usage/stats/hourly").await;
    let start = hour["start_time"].as_str().expect("start_time");
    assert!(
        start.len() == 19 && start.ends_with(":00:00") && start.as_bytes()[10] == b'T',
        "{start}"
    );

    let (_, month) = call(&f, "GET /api/ai_usage/stats/monthly").await;
    assert_eq!(month["year_month"], today.format("%Y-%m").to_string());

    let (_, current) = call(&f, "GET /api/ai_usage/stats/current").await;
    // The original's one untranslated `by_function`: recorded names as keys.
    let raw = &current["today"]["by_function"];
    assert_eq!(raw["live_analysis"]["calls"], 1, "{current}");
    assert_eq!(raw["实时分析"]["calls"], 1, "{current}");
    assert_eq!(raw["live_analysis"]["display_name"], "实时分析");
    assert!(raw["live_analysis"]["cost"].is_number());
    assert_eq!(current["today"]["by_model"]["qwen-plus"]["calls"], 2);
    assert_eq!(current["today"]["calls"], 4);

    let (_, session) = call(&f, "GET /api/ai_usage/session/live_1").await;
    assert_eq!(session["tokens"], 1500 + 2100);

    let (_, dash) = call(&f, "GET /api/ai_usage/dashboard").await;
    assert_eq!(dash["function_distribution"]["实时分析"]["calls"], 2);
    assert_eq!(dash["model_distribution"]["qwen-plus"]["calls"], 2);
    assert_eq!(dash["cost_trend_7days"].as_array().map(Vec::len), Some(7));
    assert_eq!(
        dash["this_month"]["avg_daily_cost"],
        dash["month"]["avg_daily_cost"]
    );
    // Our ordered lists stay for the page: most expensive first.
    let costs: Vec<f64> = dash["functions_by_cost"]
        .as_array()
        .expect("functions_by_cost")
        .iter()
        .map(|r| r["cost"].as_f64().expect("cost"))
        .collect();
    assert!(costs.windows(2).all(|w| w[0] >= w[1]), "{costs:?}");
    let yesterday = f.monitor.get_daily_summary(1).total_cost.as_f64();
    let want = ((day["total_cost_exact"].as_f64().expect("exact") - yesterday) / yesterday
        * 10_000.0)
        .round()
        / 100.0;
    let got = dash["today"]["cost_change_percent"].as_f64().expect("pct");
    assert!((got - want).abs() < 0.011, "{got} vs {want}");
}

#[tokio::test]
async fn change_percent_is_a_number_without_yesterday() {
    let f = fixture();
    f.monitor
        .record(&UsageEvent::new("qwen-plus", "qa").tokens(10, 10));
    let (_, dash) = call(&f, "GET /api/ai_usage/dashboard").await;
    assert_eq!(
        dash["today"]["cost_change_percent"], 0.0,
        "{}",
        dash["today"]
    );
    assert!(dash["today"]["cost_change_pct"].is_null());
}

/// What a browser client of the original does with the answers: arithmetic
/// and `toFixed` on numbers, `slice` and `split` on strings, `length` and
/// `forEach` on arrays, `Object.entries` on the name-keyed groups. A wrong
/// type throws (or yields NaN, which the script refuses).
const JS_CLIENT: &str = r#"
const r = JSON.parse(require('fs').readFileSync(process.argv[2], 'utf8'));
const out = [];
const num = (x, what) => {
  if (typeof x !== 'number' || Number.isNaN(x)) throw new Error(what + ' is not a number: ' + JSON.stringify(x));
  return x.toFixed(2);
};
const str = (x, what) => {
  if (typeof x !== 'string') throw new Error(what + ' is not a string: ' + JSON.stringify(x));
  return x.slice(0, 10);
};
const groups = (g, what) => Object.entries(g).forEach(([k, s]) => {
  ['calls', 'input_tokens', 'output_tokens', 'total_tokens', 'cost'].forEach(f => out.push(num(s[f], what + '.' + k + '.' + f)));
});
const c = r.current;
out.push(num(c.today.cost, 'today.cost'), num(c.today.calls, 'today.calls'), num(c.today.tokens, 'today.tokens'), num(c.today.success_rate, 'today.success_rate'));
groups(c.today.by_model, 'today.by_model');
groups(c.today.by_function, 'today.by_function');
for (const k of ['hourly', 'daily', 'monthly']) {
  const s = r[k];
  out.push(str(s.start_time, k + '.start_time').split('T')[0], str(s.end_time, k + '.end_time'));
  ['total_calls', 'input_tokens', 'output_tokens', 'total_tokens', 'total_cost', 'success_rate'].forEach(f => out.push(num(s[f], k + '.' + f)));
  groups(s.by_model, k + '.by_model');
  groups(s.by_function, k + '.by_function');
}
out.push(str(r.daily.date, 'daily.date'), str(r.monthly.year_month, 'monthly.year_month').split('-')[1]);
out.push(num(r.session.cost, 'session.cost'), num(r.session.tokens, 'session.tokens'), num(r.session.calls, 'session.calls'));
if (!(r.top_users.top_users.length > 0)) throw new Error('top_users.top_users is empty or missing');
out.push(num(r.top_users.period_days, 'top_users.period_days'));
r.top_users.top_users.forEach(u => out.push(str(u.user_id, 'user_id'), num(u.cost, 'user.cost'), num(u.tokens, 'user.tokens')));
if (r.cost_trend.data.length !== r.cost_trend.period_days) throw new Error('one trend point per day');
r.cost_trend.data.forEach(d => out.push(str(d.date, 'trend.date'), num(d.cost, 'trend.cost')));
const d = r.dashboard;
out.push(num(d.today.cost_change_percent, 'cost_change_percent'), num(d.this_month.avg_daily_cost, 'this_month.avg_daily_cost'), num(d.this_month.cost, 'this_month.cost'));
d.cost_trend_7days.forEach(p => out.push(str(p.date, 'cost_trend_7days.date'), num(p.cost, 'cost_trend_7days.cost')));
groups(d.model_distribution, 'model_distribution');
groups(d.function_distribution, 'function_distribution');
r.invalid.detail.forEach(e => out.push(str(e.type, 'detail.type'), str(e.msg, 'detail.msg'), e.loc.join('.'), str(e.input, 'detail.input')));
console.log('read ' + out.length + ' values');
"#;

#[tokio::test]
async fn a_js_client_of_the_original_reads_every_field() {
    let Ok(version) = Command::new("node").arg("--version").output() else {
        // Under CI node is installed: its absence is a failure.
        assert!(
            std::env::var_os("CI").is_none(),
            "node is required under CI"
        );
        println!("skipped: install Node.js (`node`) to run the JS client check");
        return;
    };
    assert!(version.status.success(), "node --version failed");
    let f = fixture();
    seed_contract(&f.monitor);
    let mut answers = serde_json::Map::new();
    for (name, request) in [
        ("current", "GET /api/ai_usage/stats/current"),
        ("hourly", "GET /api/ai_usage/stats/hourly"),
        ("daily", "GET /api/ai_usage/stats/daily"),
        ("monthly", "GET /api/ai_usage/stats/monthly"),
        ("session", "GET /api/ai_usage/session/live_1"),
        ("top_users", "GET /api/ai_usage/top_users"),
        ("cost_trend", "GET /api/ai_usage/cost_trend?days=7"),
        ("dashboard", "GET /api/ai_usage/dashboard"),
        ("invalid", "GET /api/ai_usage/cost_trend?days=999"),
    ] {
        let (_, body) = call(&f, request).await;
        answers.insert(name.into(), body);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("answers.json");
    let script = dir.path().join("client.js");
    std::fs::write(&data, Value::Object(answers).to_string()).expect("write answers");
    std::fs::write(&script, JS_CLIENT).expect("write script");
    let out = Command::new("node")
        .arg(&script)
        .arg(&data)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the JS client failed:\n{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("read "), "{stdout}");
}

#[tokio::test]
async fn the_function_table_is_data_users_extend() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("function_names.toml");
    std::fs::write(&file, "translate = \"翻译\"\n").expect("write table");
    let monitor = std::sync::Arc::new(
        UsageMonitor::builder()
            .dir(dir.path().join("records"))
            .timezone("+08:00".parse().expect("zone"))
            .function_name("summarise", "摘要")
            .function_names_file(&file)
            .build()
            .expect("monitor"),
    );
    for function in ["summarise", "translate", "qa", "unlisted"] {
        monitor.record(&UsageEvent::new("qwen-plus", function).tokens(10, 5));
    }
    let f = Fixture {
        app: ai_usage_server::ServerBuilder::new(std::sync::Arc::clone(&monitor)).router(),
        monitor,
        dir,
    };
    let (_, day) = call(&f, "GET /api/ai_usage/stats/daily").await;
    let by_function = day["by_function"].as_object().expect("by_function");
    let mut names: Vec<&str> = by_function.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["unlisted", "摘要", "翻译", "问答"], "{day}");
    // `/stats/current` keys by the recorded name; the table gives `display_name`.
    let (_, current) = call(&f, "GET /api/ai_usage/stats/current").await;
    let raw = &current["today"]["by_function"];
    assert_eq!(raw["summarise"]["display_name"], "摘要", "{current}");
    assert_eq!(raw["translate"]["display_name"], "翻译", "{current}");
    assert_eq!(raw["qa"]["display_name"], "问答", "{current}");
}
