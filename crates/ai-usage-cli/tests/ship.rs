//! `ai-usage ship` and `--clickhouse` queries against a real ClickHouse
//! server (skipped without `clickhouse-server` unless `CI` is set).

#[path = "../../ai-usage-clickhouse/tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};

fn ai_usage(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ai-usage"))
        .arg("--dir")
        .arg(dir)
        .args(["--tz", "Asia/Shanghai"])
        .args(args)
        .env_remove("AI_USAGE_CLICKHOUSE")
        .output()
        .expect("run ai-usage")
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn json(out: Output) -> serde_json::Value {
    serde_json::from_str(&ok(out)).expect("json")
}

/// Records one call made now with an explicit cost: whatever the hour, the
/// day's and the month's budgets have that much to count.
fn record_now(dir: &Path, cost: &str) {
    ok(ai_usage(
        dir,
        &[
            "record",
            "--model",
            "qwen-plus",
            "--function",
            "实时分析",
            "--input-tokens",
            "10",
            "--output-tokens",
            "10",
            "--cost",
            cost,
        ],
    ));
}

#[test]
fn ship_then_stats_from_clickhouse_equal_the_hosts_sum() {
    let Some(server) = common::Server::start() else {
        return;
    };
    let url = server.url();
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    ok(ai_usage(a.path(), &["demo", "--days", "3", "--seed", "1"]));
    ok(ai_usage(b.path(), &["demo", "--days", "3", "--seed", "2"]));
    let ch = ["--clickhouse", url.as_str()];
    let shipped = ok(ai_usage(
        a.path(),
        &[&ch[..], &["ship", "--host-id", "a"]].concat(),
    ));
    assert!(
        shipped.starts_with("shipped ") && shipped.contains("0 bad lines"),
        "{shipped}"
    );
    ok(ai_usage(
        b.path(),
        &[&ch[..], &["ship", "--host-id", "b"]].concat(),
    ));

    for days_ago in ["0", "1", "2"] {
        let q = ["stats", "daily", "--days-ago", days_ago, "--json"];
        let la = json(ai_usage(a.path(), &q));
        let lb = json(ai_usage(b.path(), &q));
        let f = json(ai_usage(a.path(), &[&ch[..], &q[..]].concat()));
        for key in [
            "total_calls",
            "successful_calls",
            "total_tokens",
            "unpriced_calls",
        ] {
            let sum = la[key].as_u64().unwrap() + lb[key].as_u64().unwrap();
            assert_eq!(f[key].as_u64().unwrap(), sum, "{key} {days_ago} days ago");
        }
        let cny = |v: &serde_json::Value| {
            v["costs"]["CNY"]
                .as_str()
                .unwrap_or("0")
                .parse::<f64>()
                .unwrap()
        };
        assert!(
            (cny(&f) - cny(&la) - cny(&lb)).abs() < 1e-9,
            "CNY cost {days_ago} days ago"
        );
    }

    // The JSON report from ClickHouse: the period's figures are the hosts' sum.
    let out = tempfile::tempdir().unwrap();
    let report = |d: &Path, args: &[&str], name: &str| -> serde_json::Value {
        let file = out.path().join(name);
        let file = file.to_str().unwrap();
        let q = [
            "report", "--days", "3", "--format", "json", "--output", file,
        ];
        ok(ai_usage(d, &[args, &q[..]].concat()));
        serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap()
    };
    let (ra, rb) = (
        report(a.path(), &[], "a.json"),
        report(b.path(), &[], "b.json"),
    );
    let rf = report(a.path(), &ch, "fleet.json");
    for key in ["total_calls", "total_tokens", "unpriced_calls"] {
        let sum = |r: &serde_json::Value| r["period_summary"][key].as_u64().unwrap();
        assert_eq!(sum(&rf), sum(&ra) + sum(&rb), "report {key}");
    }
    let trend_calls = |r: &serde_json::Value| -> u64 {
        r["cost_trend"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["calls"].as_u64().unwrap())
            .sum()
    };
    assert_eq!(trend_calls(&rf), trend_calls(&ra) + trend_calls(&rb));
    // The CSV exports from ClickHouse: byte for byte the local exports over
    // both hosts' day files merged (host a's lines first, as its id sorts).
    let both = tempfile::tempdir().unwrap();
    for host in [a.path(), b.path()] {
        for e in std::fs::read_dir(host).unwrap().flatten() {
            if e.path().extension().is_some_and(|x| x == "jsonl") {
                let into = both.path().join(e.file_name());
                let mut bytes = std::fs::read(&into).unwrap_or_default();
                bytes.extend(std::fs::read(e.path()).unwrap());
                std::fs::write(into, bytes).unwrap();
            }
        }
    }
    for format in ["csv", "records"] {
        let export = |d: &Path, args: &[&str], name: &str| -> String {
            let file = out.path().join(name);
            let file = file.to_str().unwrap();
            let q = [
                "report", "--days", "3", "--format", format, "--output", file,
            ];
            ok(ai_usage(d, &[args, &q[..]].concat()));
            std::fs::read_to_string(file).unwrap()
        };
        let local = export(both.path(), &[], &format!("local-{format}.csv"));
        let fleet = export(a.path(), &ch, &format!("fleet-{format}.csv"));
        assert!(local.lines().count() > 10, "{format}: {local}");
        assert_eq!(fleet, local, "{format}");
    }

    // Human answers from the fleet say so in their title, as `stats` does;
    // the same commands on the local day files do not.
    std::fs::write(
        a.path().join("budgets.json"),
        r#"[{"name": "d", "period": "daily", "limit": 50}]"#,
    )
    .unwrap();
    for (cmd, title) in [
        (&["trend", "--days", "3"][..], "成本趋势"),
        (&["forecast"][..], "本月费用预测"),
        (&["budgets"][..], "预算 budgets"),
        (&["top-anchors"][..], "Top 主播"),
    ] {
        let fleet = ok(ai_usage(a.path(), &[&ch[..], cmd].concat()));
        let first = fleet.lines().next().unwrap_or_default();
        assert!(
            first.starts_with(title) && first.ends_with(" (fleet)"),
            "{cmd:?}: {first}"
        );
        let local = ok(ai_usage(a.path(), cmd));
        let first = local.lines().next().unwrap_or_default();
        assert!(
            first.starts_with(title) && !first.contains("(fleet)"),
            "{cmd:?}: {first}"
        );
    }

    // Re-ship: nothing new. A corrupt line is skipped and counted.
    let again = ok(ai_usage(a.path(), &[&ch[..], &["ship"]].concat()));
    assert!(again.starts_with("shipped 0 records"), "{again}");
    let day = std::fs::read_dir(a.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .max()
        .unwrap();
    let mut f = std::fs::OpenOptions::new().append(true).open(&day).unwrap();
    std::io::Write::write_all(&mut f, b"{not a record\n").unwrap();
    let after = ok(ai_usage(a.path(), &[&ch[..], &["ship"]].concat()));
    assert!(
        after.starts_with("shipped 0 records") && after.contains("1 bad lines"),
        "{after}"
    );
}

#[test]
fn ship_fails_with_one_line_when_clickhouse_is_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let out = ai_usage(
        dir.path(),
        &[
            "--clickhouse",
            "http://127.0.0.1:9/",
            "ship",
            "--retry-for",
            "0",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: ") && err.contains("unreachable"),
        "{err}"
    );
    let no_url = ai_usage(dir.path(), &["ship"]);
    assert_eq!(no_url.status.code(), Some(2));
}

/// A plain HTTP/1.0 GET on loopback; the body parsed as JSON.
fn get_json(port: u16, path: &str) -> Option<serde_json::Value> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (_, body) = text.split_once("\r\n\r\n")?;
    serde_json::from_str(body).ok()
}

/// Kills the server child however the test ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn serve_with_clickhouse_ships_in_the_background_and_answers_for_the_fleet() {
    let Some(server) = common::Server::start() else {
        return;
    };
    let url = server.url();
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    ok(ai_usage(a.path(), &["demo", "--days", "3", "--seed", "3"]));
    ok(ai_usage(b.path(), &["demo", "--days", "3", "--seed", "4"]));
    // The same budgets on both hosts (a's server evaluates them on the fleet).
    let budgets = r#"[{"name": "daily", "period": "daily", "limit": 50},
        {"name": "monthly", "period": "monthly", "limit": 1000},
        {"name": "small", "period": "monthly", "limit": 1}]"#;
    for d in [a.path(), b.path()] {
        std::fs::write(d.join("budgets.json"), budgets).unwrap();
    }
    // The demo's data for today depends on the hour (none before the
    // day's first broadcast). A call made now, on host a, reaches "small"
    // and "daily" whatever the hour: the budgets below have something to
    // cross, and which thresholds are reached is known only once host a's
    // files are in the fleet (see the wait for claims below).
    record_now(a.path(), "60");
    // Host b ships with the sidecar; host a's server ships its own files.
    ok(ai_usage(
        b.path(),
        &["--clickhouse", url.as_str(), "ship", "--host-id", "b"],
    ));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let _serve = Child(
        Command::new(env!("CARGO_BIN_EXE_ai-usage"))
            .arg("--dir")
            .arg(a.path())
            .args(["--tz", "Asia/Shanghai", "--clickhouse", url.as_str()])
            .args(["serve", "--addr", addr.as_str()])
            .env_remove("AI_USAGE_CLICKHOUSE")
            .env_remove("AI_USAGE_TOKEN")
            .spawn()
            .expect("start serve"),
    );
    // Wait until /healthz shows host a's files all shipped.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let shipping = get_json(port, "/healthz").map(|h| h["fleet"]["shipping"].clone());
        if let Some(s) = shipping {
            if s["lag_bytes"] == 0 && s["shipped_records"].as_u64().unwrap_or(0) > 0 {
                assert!(s["last_error"].is_null(), "{s}");
                break;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the background shipper did not catch up"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    for days_ago in ["0", "1", "2"] {
        let q = ["stats", "daily", "--days-ago", days_ago, "--json"];
        let la = json(ai_usage(a.path(), &q));
        let lb = json(ai_usage(b.path(), &q));
        let f = get_json(
            port,
            &format!("/api/ai_usage/stats/daily?days_ago={days_ago}"),
        )
        .expect("daily");
        for key in ["total_calls", "successful_calls", "total_tokens"] {
            let sum = la[key].as_u64().unwrap() + lb[key].as_u64().unwrap();
            assert_eq!(f[key].as_u64(), Some(sum), "{key} {days_ago} days ago");
        }
    }
    let trend = get_json(port, "/api/ai_usage/cost_trend?days=3").expect("trend");
    let calls: u64 = trend["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|p| p["calls"].as_u64().unwrap())
        .sum();
    let local = |d: &Path| -> u64 {
        json(ai_usage(d, &["trend", "--days", "3", "--json"]))
            .as_array()
            .map(|a| a.iter().map(|p| p["calls"].as_u64().unwrap()).sum())
            .unwrap_or(0)
    };
    assert_eq!(calls, local(a.path()) + local(b.path()));
    let top = get_json(port, "/api/ai_usage/top_users?limit=3&days=3").expect("top");
    assert_eq!(top["top_users"].as_array().map(Vec::len), Some(3));

    // The dashboard, the forecast and savings answer for the fleet too.
    let q = ["stats", "daily", "--json"];
    let today_calls = |d: &Path| json(ai_usage(d, &q))["total_calls"].as_u64().unwrap();
    let dash = get_json(port, "/api/ai_usage/dashboard").expect("dashboard");
    assert_eq!(
        dash["today"]["calls"].as_u64(),
        Some(today_calls(a.path()) + today_calls(b.path())),
        "{dash}"
    );
    // Money is a JSON number (a string only if it could lose digits).
    let money = |v: &serde_json::Value| {
        v.as_f64()
            .or_else(|| v.as_str().map(|s| s.parse::<f64>().unwrap()))
            .expect("an amount")
    };
    let mtd = |d: &Path| money(&json(ai_usage(d, &["forecast", "--json"]))["month_to_date"]);
    let fleet_forecast = get_json(port, "/api/ai_usage/forecast").expect("forecast");
    assert!(
        money(&fleet_forecast["month_to_date"]) > 0.0,
        "{fleet_forecast}"
    );
    assert!(
        (money(&fleet_forecast["month_to_date"]) - mtd(a.path()) - mtd(b.path())).abs() < 1e-6,
        "{fleet_forecast}"
    );
    // The CLI's --clickhouse forecast is the server's.
    let cli_forecast = json(ai_usage(
        a.path(),
        &["--clickhouse", url.as_str(), "forecast", "--json"],
    ));
    assert_eq!(cli_forecast, fleet_forecast);
    assert!(get_json(port, "/api/ai_usage/savings?days=3").is_some());
    // Budgets: each one's spend is the hosts' spend together.
    let spent = |v: &serde_json::Value| -> Vec<f64> {
        v.as_array()
            .expect("budget list")
            .iter()
            .map(|s| money(&s["spent"]))
            .collect()
    };
    let (sa, sb) = (
        spent(&json(ai_usage(a.path(), &["budgets", "--json"]))),
        spent(&json(ai_usage(b.path(), &["budgets", "--json"]))),
    );
    let fleet_budgets = get_json(port, "/api/ai_usage/budgets").expect("budgets");
    let sf = spent(&fleet_budgets);
    assert_eq!(sf.len(), 3, "{fleet_budgets}");
    for i in 0..3 {
        assert!((sf[i] - sa[i] - sb[i]).abs() < 1e-6, "{fleet_budgets}");
    }
    assert!(sf[1] > 0.0);

    // Budget alerts come from the fleet's spend: once the server has polled
    // after host a's files were all shipped, every threshold the fleet
    // reached in the current periods has exactly one claim, by it. A poll
    // that ran before then saw part of the spend, so this waits for a later
    // one (polls are 30 s apart) instead of assuming what the first poll
    // saw; both sides are read again each round, so a day that turns over
    // meanwhile is compared with itself.
    assert!(
        fleet_budgets
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["name"] == "small" && !b["thresholds_fired"].as_array().unwrap().is_empty()),
        "{fleet_budgets}"
    );
    let client = server.client("ai_usage");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    loop {
        let alerts = get_json(port, "/healthz")
            .map(|h| h["fleet"]["budget_alerts"].clone())
            .expect("healthz");
        assert!(alerts["last_error"].is_null(), "{alerts}");
        let statuses = get_json(port, "/api/ai_usage/budgets").expect("budgets");
        let mut reached: Vec<(String, String, u64)> = Vec::new();
        for b in statuses.as_array().unwrap() {
            for t in b["thresholds_fired"].as_array().unwrap() {
                reached.push((
                    b["name"].as_str().unwrap().into(),
                    b["period_label"].as_str().unwrap().into(),
                    t.as_u64().unwrap(),
                ));
            }
        }
        reached.sort();
        let claims: Vec<(String, String, u64, String)> = client
            .query_rows(&format!(
                "SELECT budget, period_label, threshold, host FROM {}.budget_alerts \
                 ORDER BY budget, period_label, threshold",
                client.db()
            ))
            .unwrap()
            .into_iter()
            .map(|r| {
                (
                    r[0].clone(),
                    r[1].clone(),
                    r[2].parse().unwrap(),
                    r[3].clone(),
                )
            })
            .collect();
        for (_, _, _, host) in &claims {
            assert_eq!(host, alerts["claimant"].as_str().unwrap(), "one claimant");
        }
        let claimed: Vec<(String, String, u64)> = claims
            .into_iter()
            .map(|(b, p, t, _)| (b, p, t))
            .filter(|c| reached.iter().any(|r| r.0 == c.0 && r.1 == c.1))
            .collect();
        if claimed == reached && !reached.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "claims {claimed:?} never became the reached thresholds {reached:?}: {alerts}"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

#[test]
fn serve_with_no_fleet_alerts_leaves_alerts_to_each_host() {
    let Some(server) = common::Server::start() else {
        return;
    };
    let url = server.url();
    let a = tempfile::tempdir().unwrap();
    ok(ai_usage(a.path(), &["demo", "--days", "2", "--seed", "5"]));
    // A call made now reaches the limit of 1 whatever the hour (the demo's
    // month-to-date is nothing early on a month's first day).
    record_now(a.path(), "5");
    // A limit of 1 is reached at once: a fleet poller would claim it.
    std::fs::write(
        a.path().join("budgets.json"),
        r#"[{"name": "small", "period": "monthly", "limit": 1}]"#,
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let _serve = Child(
        Command::new(env!("CARGO_BIN_EXE_ai-usage"))
            .arg("--dir")
            .arg(a.path())
            .args(["--clickhouse", url.as_str()])
            .args(["serve", "--addr", addr.as_str(), "--no-fleet-alerts"])
            .env_remove("AI_USAGE_CLICKHOUSE")
            .env_remove("AI_USAGE_TOKEN")
            .spawn()
            .expect("start serve"),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let health = loop {
        let h = get_json(port, "/healthz");
        if let Some(h) = h.filter(|h| h["fleet"]["shipping"]["lag_bytes"] == 0) {
            break h;
        }
        assert!(std::time::Instant::now() < deadline, "serve did not ship");
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert!(health["fleet"]["budget_alerts"].is_null(), "{health}");
    // Longer than a poll and its 5 s settle delay: still no claim.
    std::thread::sleep(std::time::Duration::from_secs(7));
    let client = server.client("ai_usage");
    let claims = client
        .query_u64(&format!(
            "SELECT count() FROM {}.budget_alerts",
            client.db()
        ))
        .unwrap();
    assert_eq!(claims, 0);
    let fleet_budgets = get_json(port, "/api/ai_usage/budgets").expect("budgets");
    assert_eq!(
        fleet_budgets[0]["thresholds_fired"]
            .as_array()
            .map(Vec::len),
        Some(2),
        "{fleet_budgets}"
    );
}

/// Two records directories of one machine, each shipped with the default
/// settings, are two hosts: each directory generates and keeps its own id,
/// and the fleet answers their sum.
#[test]
fn two_directories_of_one_machine_ship_as_two_hosts_by_default() {
    let Some(server) = common::Server::start() else {
        return;
    };
    let url = server.url();
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    ok(ai_usage(a.path(), &["demo", "--days", "2", "--seed", "7"]));
    ok(ai_usage(b.path(), &["demo", "--days", "2", "--seed", "8"]));
    for d in [a.path(), b.path()] {
        let shipped = ok(ai_usage(d, &["--clickhouse", url.as_str(), "ship"]));
        assert!(shipped.contains("0 bad lines"), "{shipped}");
    }
    let id = |d: &Path| std::fs::read_to_string(d.join(".ai-usage-host-id")).unwrap();
    assert_ne!(id(a.path()), id(b.path()));
    // A second ship keeps the directory's id and finds nothing new.
    let again = ok(ai_usage(a.path(), &["--clickhouse", url.as_str(), "ship"]));
    assert!(again.starts_with("shipped 0 "), "{again}");
    for days_ago in ["0", "1"] {
        let q = ["stats", "daily", "--days-ago", days_ago, "--json"];
        let la = json(ai_usage(a.path(), &q));
        let lb = json(ai_usage(b.path(), &q));
        let fleet = json(ai_usage(
            a.path(),
            &[&["--clickhouse", url.as_str()][..], &q[..]].concat(),
        ));
        for key in ["total_calls", "total_tokens"] {
            let sum = la[key].as_u64().unwrap() + lb[key].as_u64().unwrap();
            assert_eq!(fleet[key].as_u64(), Some(sum), "{key} {days_ago} days ago");
        }
    }
    // The month, the trend and the ranking too: every fleet answer is the sum.
    let fleet_q = |q: &[&str]| {
        json(ai_usage(
            a.path(),
            &[&["--clickhouse", url.as_str()][..], q].concat(),
        ))
    };
    let q = ["stats", "monthly", "--json"];
    let (la, lb, f) = (
        json(ai_usage(a.path(), &q)),
        json(ai_usage(b.path(), &q)),
        fleet_q(&q),
    );
    for key in ["total_calls", "successful_calls", "total_tokens"] {
        let sum = la[key].as_u64().unwrap() + lb[key].as_u64().unwrap();
        assert_eq!(f[key].as_u64(), Some(sum), "month {key}");
    }
    let per = |v: serde_json::Value, id: &str| -> std::collections::BTreeMap<String, (u64, u64)> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r[id].as_str().unwrap().to_string(),
                    (r["calls"].as_u64().unwrap(), r["tokens"].as_u64().unwrap()),
                )
            })
            .collect()
    };
    for (q, id) in [
        (&["trend", "--days", "3", "--json"][..], "date"),
        (
            &["top-users", "--days", "3", "--limit", "100", "--json"][..],
            "user_id",
        ),
    ] {
        let (la, lb) = (
            per(json(ai_usage(a.path(), q)), id),
            per(json(ai_usage(b.path(), q)), id),
        );
        let f = per(fleet_q(q), id);
        let mut sum = la.clone();
        for (k, (c, t)) in lb {
            let e = sum.entry(k).or_default();
            e.0 += c;
            e.1 += t;
        }
        sum.retain(|_, v| v.0 > 0);
        let mut f = f;
        f.retain(|_, v| v.0 > 0);
        assert_eq!(f, sum, "{}", q.join(" "));
    }
}

/// Total calls of the fleet over `days` days, as `stats` answers it.
fn fleet_calls(dir: &Path, url: &str, days_ago: &str) -> u64 {
    let q = ["stats", "daily", "--days-ago", days_ago, "--json"];
    json(ai_usage(
        dir,
        &[&["--clickhouse", url][..], &q[..]].concat(),
    ))["total_calls"]
        .as_u64()
        .unwrap()
}

fn local_calls(dir: &Path, days_ago: &str) -> u64 {
    let q = ["stats", "daily", "--days-ago", days_ago, "--json"];
    json(ai_usage(dir, &q))["total_calls"].as_u64().unwrap()
}

#[test]
fn a_directory_shipping_under_another_ones_host_id_is_stopped_before_sending() {
    let Some(server) = common::Server::start() else {
        return;
    };
    let url = server.url();
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    ok(ai_usage(a.path(), &["demo", "--days", "2", "--seed", "11"]));
    ok(ai_usage(b.path(), &["demo", "--days", "2", "--seed", "12"]));
    let ship = |d: &Path| {
        ai_usage(
            d,
            &["--clickhouse", url.as_str(), "ship", "--host-id", "shared"],
        )
    };
    ok(ship(a.path()));
    let fleet_before = fleet_calls(a.path(), &url, "0");
    assert_eq!(fleet_before, local_calls(a.path(), "0"));
    let refused = ship(b.path());
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("\"shared\"")
            && err.contains("usage_")
            && err.contains("fingerprint")
            && err.contains(&b.path().display().to_string())
            && err.contains("Nothing was shipped"),
        "{err}"
    );
    // Nothing of B reached the server.
    assert_eq!(fleet_calls(a.path(), &url, "0"), fleet_before);
    assert_eq!(fleet_calls(a.path(), &url, "1"), local_calls(a.path(), "1"));
}

#[test]
fn a_file_compressed_after_a_partial_ship_ships_the_rest_and_delete_after_waits_for_it() {
    let Some(server) = common::Server::start() else {
        return;
    };
    let url = server.url();
    let a = tempfile::tempdir().unwrap();
    ok(ai_usage(a.path(), &["demo", "--days", "4", "--seed", "21"]));
    let ch = ["--clickhouse", url.as_str()];
    ok(ai_usage(a.path(), &[&ch[..], &["ship"]].concat()));
    // Late lines for the oldest day arrive after it was shipped…
    let mut files: Vec<_> = std::fs::read_dir(a.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("usage_")
        })
        .collect();
    files.sort();
    let oldest = files[0].clone();
    let text = std::fs::read_to_string(&oldest).unwrap();
    let late: String = text.lines().take(5).map(|l| format!("{l}\n")).collect();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&oldest)
        .unwrap()
        .write_all(late.as_bytes())
        .unwrap();
    // …then the day is compressed before the shipper saw them.
    let done = ok(ai_usage(
        a.path(),
        &["compact", "--older-than", "1", "--json"],
    ));
    assert!(done.contains("\"compressed\":"), "{done}");
    assert!(!oldest.exists());
    // Not fully shipped: --delete-after keeps it, while the older days the
    // server holds whole may go.
    let oldest_name = oldest.file_name().unwrap().to_str().unwrap().to_string();
    let kept = ok(ai_usage(
        a.path(),
        &["compact", "--delete-after", "1", "--json"],
    ));
    let r: serde_json::Value = serde_json::from_str(&kept).unwrap();
    assert_eq!(
        r["kept_unshipped"],
        serde_json::json!([oldest_name]),
        "{kept}"
    );
    let removed_shipped = r["deleted"].as_u64().unwrap();
    assert!(files
        .iter()
        .skip(1)
        .take(removed_shipped as usize)
        .all(|p| !p.exists() && !ai_usage_core::dayfile::compressed_path(p).exists()));
    // The shipper continues in the compressed file: exactly the late lines.
    let shipped = ok(ai_usage(a.path(), &[&ch[..], &["ship"]].concat()));
    assert!(shipped.starts_with("shipped 5 records"), "{shipped}");
    // Every day still on disk (the removed ones were shipped whole) answers
    // the same locally and from the fleet, the compressed one included.
    let mut compared = 0;
    for days_ago in ["0", "1", "2", "3", "4", "5"] {
        let local = local_calls(a.path(), days_ago);
        if local > 0 {
            compared += 1;
            assert_eq!(
                fleet_calls(a.path(), &url, days_ago),
                local,
                "{days_ago} days ago"
            );
        }
    }
    assert!(
        compared + removed_shipped as usize >= files.len(),
        "{compared} days compared"
    );
    // Now shipped: it may go.
    let removed = ok(ai_usage(
        a.path(),
        &["compact", "--delete-after", "1", "--json"],
    ));
    let r: serde_json::Value = serde_json::from_str(&removed).unwrap();
    assert!(r["deleted"].as_u64().unwrap() >= 1, "{removed}");
    assert_eq!(r["kept_unshipped"], serde_json::json!([]), "{removed}");
}

/// The snapshot with a new, cheap OpenAI model (`gpt-9-nova`): a newer
/// catalogue for `pricing update --from`.
fn catalogue_with_a_cheap_openai_model() -> String {
    let snapshot = include_str!("../../ai-usage-core/data/genai-prices/data_slim.json");
    let mut v: serde_json::Value = serde_json::from_str(snapshot).unwrap();
    let openai = v
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|p| p["id"] == "openai")
        .unwrap();
    openai["models"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "id": "gpt-9-nova",
            "match": {"equals": "gpt-9-nova"},
            "prices": {"input_mtok": 0.01, "output_mtok": 0.02}
        }));
    serde_json::to_string(&v).unwrap()
}

/// The fleet's savings alternatives of `function` (ids), once answered.
fn fleet_alternatives(port: u16, function: &str) -> Option<Vec<String>> {
    let report = get_json(port, "/api/ai_usage/savings?days=1")?;
    let f = report["functions"]
        .as_array()?
        .iter()
        .find(|f| f["function"] == function)?
        .clone();
    Some(
        f["alternatives"]
            .as_array()?
            .iter()
            .filter_map(|a| a["model"].as_str().map(str::to_string))
            .collect(),
    )
}

/// `serve --clickhouse` answers the fleet's savings with the catalogue in
/// force: one installed with `pricing update` while it runs is used
/// without a restart.
#[test]
fn serve_with_clickhouse_advises_from_a_catalogue_installed_while_it_runs() {
    let Some(server) = common::Server::start() else {
        return;
    };
    let url = server.url();
    let a = tempfile::tempdir().unwrap();
    for _ in 0..3 {
        ok(ai_usage(
            a.path(),
            &[
                "record",
                "--model",
                "gpt-4o",
                "--function",
                "摘要",
                "--input-tokens",
                "2000",
                "--output-tokens",
                "1000",
            ],
        ));
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let serve = Child(
        Command::new(env!("CARGO_BIN_EXE_ai-usage"))
            .arg("--dir")
            .arg(a.path())
            .args(["--tz", "Asia/Shanghai", "--clickhouse", url.as_str()])
            .args(["serve", "--addr", addr.as_str(), "--no-fleet-alerts"])
            .env_remove("AI_USAGE_CLICKHOUSE")
            .env_remove("AI_USAGE_TOKEN")
            .spawn()
            .expect("start serve"),
    );
    let pid = serve.0.id();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let before = loop {
        let shipped =
            get_json(port, "/healthz").is_some_and(|h| h["fleet"]["shipping"]["lag_bytes"] == 0);
        if let Some(alts) = fleet_alternatives(port, "摘要").filter(|_| shipped) {
            break alts;
        }
        assert!(std::time::Instant::now() < deadline, "serve did not ship");
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert!(
        before.iter().any(|m| m == "gpt-4o-mini"),
        "OpenAI's cheaper models from the snapshot: {before:?}"
    );
    assert!(!before.iter().any(|m| m == "gpt-9-nova"));

    let file = a.path().join("newer_data_slim.json");
    std::fs::write(&file, catalogue_with_a_cheap_openai_model()).unwrap();
    ok(ai_usage(
        a.path(),
        &["pricing", "update", "--from", file.to_str().unwrap()],
    ));
    // The server looks every 2 s.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let after = loop {
        let alts = fleet_alternatives(port, "摘要").unwrap_or_default();
        if alts.iter().any(|m| m == "gpt-9-nova") || std::time::Instant::now() > deadline {
            break alts;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(
        after.first().map(String::as_str),
        Some("gpt-9-nova"),
        "the new cheapest OpenAI model saves the most: {after:?}"
    );
    assert_eq!(serve.0.id(), pid, "the same server process");
}

/// Yesterday's unpriced calls, `reprice --only-unpriced` and `ship`: the
/// fleet answers what the host answers; a second ship sends no correction.
#[test]
fn reprice_then_ship_corrects_the_fleet_once() {
    let Some(server) = common::Server::start() else {
        return;
    };
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    let zone: ai_usage_core::Zone = "Asia/Shanghai".parse().unwrap();
    let today = zone.today();
    let yesterday = today - chrono::Duration::days(1);
    let m = ai_usage_core::UsageMonitor::builder()
        .dir(dir.path())
        .timezone(zone)
        .replay(false)
        .build()
        .unwrap();
    let start = zone.day_bounds(yesterday).0 + 3600.0;
    for i in 0..12u32 {
        m.record(
            &ai_usage_core::UsageEvent::new("acme-nova-1", "实时分析")
                .tokens(1000 + u64::from(i), 100)
                .user(if i % 2 == 0 { "u1" } else { "u2" })
                .at(start + f64::from(i) * 600.0),
        );
    }
    m.shutdown().unwrap();
    let prices = dir.path().join("nova.toml");
    std::fs::write(
        &prices,
        "[models.acme-nova-1]\ndisplay_name = \"Acme Nova\"\ninput = 0.002\noutput = 0.006\n",
    )
    .unwrap();
    let prices = prices.to_str().unwrap();
    let ch = ["--clickhouse", url.as_str()];
    let ship = |want: &str| {
        let out = ok(ai_usage(
            dir.path(),
            &[&ch[..], &["ship", "--host-id", "a"]].concat(),
        ));
        assert!(out.contains(want), "{out}");
    };
    ship("shipped 12 records and 0 cost corrections");
    let q = [
        "--pricing",
        prices,
        "stats",
        "daily",
        "--days-ago",
        "1",
        "--json",
    ];
    let fleet = || json(ai_usage(dir.path(), &[&ch[..], &q[..]].concat()));
    assert_eq!(fleet()["unpriced_calls"], 12);

    let day = yesterday.format("%Y-%m-%d").to_string();
    let reprice = [
        "--pricing",
        prices,
        "reprice",
        "--from",
        day.as_str(),
        "--to",
        day.as_str(),
        "--only-unpriced",
    ];
    ok(ai_usage(dir.path(), &reprice));
    ship("shipped 0 records and 12 cost corrections");
    let local = json(ai_usage(dir.path(), &q));
    assert_eq!(local["unpriced_calls"], 0);
    assert!(
        local["costs"]["CNY"].as_f64().is_some_and(|c| c > 0.0),
        "{local}"
    );
    assert_eq!(fleet(), local);
    let top = ["--pricing", prices, "top-users", "--by", "cost", "--json"];
    assert_eq!(
        json(ai_usage(dir.path(), &[&ch[..], &top[..]].concat())),
        json(ai_usage(dir.path(), &top))
    );

    // Shipping again, even without the checkpoint, sends nothing.
    ship("shipped 0 records and 0 cost corrections");
    std::fs::remove_file(dir.path().join(ai_usage_clickhouse::CHECKPOINT_FILE)).unwrap();
    ship("shipped 0 records and 0 cost corrections");
    assert_eq!(fleet(), local);
}

#[test]
fn the_fleets_converted_month_uses_each_days_rate_as_local_does() {
    use chrono::Datelike;
    let Some(server) = common::Server::start() else {
        return;
    };
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    let zone: ai_usage_core::Zone = "Asia/Shanghai".parse().unwrap();
    let first = (zone.today().with_day(1).unwrap() - chrono::Duration::days(1))
        .with_day(1)
        .unwrap();
    let day = |n: i64| first + chrono::Duration::days(n);
    let m = ai_usage_core::UsageMonitor::builder()
        .dir(dir.path())
        .timezone(zone)
        .replay(false)
        .build()
        .unwrap();
    // $0.50 on the 1st, $0.25 on the 2nd (no rate of its own), $1 on the
    // 3rd, and ¥2 on the 2nd (never converted).
    let usd = ai_usage_core::Currency::USD;
    for (n, cost) in [(0, "0.5"), (1, "0.25"), (2, "1.0")] {
        m.record(
            &ai_usage_core::UsageEvent::new("gpt-4o", "摘要")
                .tokens(10, 5)
                .cost_in(cost.parse().unwrap(), usd)
                .at(zone.day_bounds(day(n)).0 + 12.0 * 3600.0),
        );
    }
    m.record(
        &ai_usage_core::UsageEvent::new("qwen-plus", "问答")
            .tokens(10, 5)
            .cost("2".parse().unwrap())
            .at(zone.day_bounds(day(1)).0 + 13.0 * 3600.0),
    );
    m.shutdown().unwrap();
    let rates = dir.path().join("rates.csv");
    std::fs::write(
        &rates,
        format!(
            "date,currency,rate\n{},USD,7.0\n{},USD,7.2\n",
            day(0),
            day(2)
        ),
    )
    .unwrap();
    let ch = ["--clickhouse", url.as_str()];
    ok(ai_usage(
        dir.path(),
        &[&ch[..], &["ship", "--host-id", "a"]].concat(),
    ));
    let month = first.format("%Y-%m").to_string();
    let q = [
        "--rates",
        rates.to_str().unwrap(),
        "stats",
        "monthly",
        "--month",
        month.as_str(),
        "--json",
    ];
    let local = json(ai_usage(dir.path(), &q));
    let fleet = json(ai_usage(dir.path(), &[&ch[..], &q[..]].concat()));
    // 2 + 0.5 × 7.0 + 0.25 × 7.0 + 1.0 × 7.2
    assert_eq!(local["converted_total"]["total"], 14.45, "{local}");
    assert_eq!(
        fleet["converted_total"], local["converted_total"],
        "{fleet}"
    );
    // One day alone converts at its own (inherited) rate, in the fleet too.
    let d = [
        "--rates",
        rates.to_str().unwrap(),
        "stats",
        "daily",
        "--date",
        &day(1).to_string(),
        "--json",
    ];
    let local = json(ai_usage(dir.path(), &d));
    let fleet = json(ai_usage(dir.path(), &[&ch[..], &d[..]].concat()));
    assert_eq!(local["converted_total"]["total"], 3.75, "{local}");
    assert_eq!(
        fleet["converted_total"], local["converted_total"],
        "{fleet}"
    );
}
