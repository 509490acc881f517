//! End-to-end test of the dashboard page in Debian's headless Chromium,
//! driven through chromedriver over plain HTTP (fantoccini without TLS).
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver`
//! (`.ci/install-browser.sh`). Without them it prints `skipped: …` and
//! passes, unless `CI` is set: there a missing browser fails the test.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ai_usage_core::UsageMonitor;
use ai_usage_core::{Budget, BudgetPeriod, BudgetScope};
use ai_usage_core::{Currency, Money, UsageEvent};
use ai_usage_server::ServerBuilder;
use fantoccini::{Client, ClientBuilder, Locator};
use http_body_util::BodyExt;
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const XSS_USER: &str = "<img src=x onerror=alert(1)>";

/// Kills chromedriver when the test ends, pass or fail.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
    }
}

async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

async fn http_get_json(addr: SocketAddr, path: &str) -> Value {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<axum::body::Bytes>>();
    let uri: hyper::Uri = format!("http://{addr}{path}").parse().expect("uri");
    let resp = client.get(uri).await.expect("GET from test client");
    assert!(resp.status().is_success(), "{path}: {}", resp.status());
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    serde_json::from_slice(&body).expect("JSON")
}

async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, vec![])
        .await
        .unwrap_or_else(|e| panic!("script {script:?} failed: {e}"))
}

async fn count(c: &Client, css: &str) -> usize {
    js(
        c,
        &format!("return document.querySelectorAll({css:?}).length;"),
    )
    .await
    .as_u64()
    .unwrap_or(0) as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_headless_chromium() {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|bin| !Path::new(bin).exists())
        .collect();
    if !missing.is_empty() {
        let what = format!(
            "{} missing: install Chromium and chromedriver \
             (apt-get install chromium chromium-driver, or .ci/install-browser.sh)",
            missing.join(" and ")
        );
        // Under CI the browser is installed by .ci/run: its absence is a failure.
        assert!(std::env::var_os("CI").is_none(), "{what}");
        println!("skipped: {what}");
        return;
    }

    // --- server with demo data and one hostile user id -------------------
    let data = tempfile::tempdir().expect("tempdir");
    // A zone where it is about 21:00 now: the demo's broadcasts run in the
    // evening, so "today" then holds a full day (and the screenshot shows it).
    let utc_hour = (ai_usage_core::now_timestamp() as i64 / 3600) % 24;
    let mut offset = 21 - utc_hour;
    if offset > 14 {
        offset -= 24;
    }
    if offset < -12 {
        offset += 24;
    }
    let zone = format!(
        "{}{:02}:00",
        if offset < 0 { '-' } else { '+' },
        offset.abs()
    );
    let monitor = Arc::new(
        UsageMonitor::builder()
            .dir(data.path())
            .timezone(zone.parse().expect("zone"))
            .build()
            .expect("monitor"),
    );
    monitor
        .add_budget(Budget::new(
            "每日总预算",
            BudgetScope::Global,
            BudgetPeriod::Daily,
            "400".parse::<Money>().expect("money"),
            Currency::CNY,
        ))
        .expect("budget");
    // A hard limit the demo's day is far over: its bar says calls are refused.
    monitor
        .add_budget(
            Budget::new(
                "日硬上限",
                BudgetScope::Global,
                BudgetPeriod::Daily,
                "0.01".parse::<Money>().expect("money"),
                Currency::CNY,
            )
            .with_thresholds([50, 80, 100])
            .with_block_at(120),
        )
        .expect("budget");
    let stats = ai_usage_core::demo::generate(&monitor, 30, 7, None);
    assert!(stats.records > 0);
    // Enough tokens to rank among the top 5 users of the week, on the
    // free model so it does not distort today's cost.
    monitor.record(
        &UsageEvent::new("glm-4-flash", "实时分析")
            .tokens(8_000_000, 1_000)
            .user(XSS_USER)
            .anchor(XSS_USER)
            .session("xss_session"),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(ServerBuilder::new(Arc::clone(&monitor)).serve_listener(
        listener,
        async {
            let _ = stop_rx.await;
        },
    ));

    // --- chromedriver + chromium -------------------------------------------
    let port = free_port();
    let driver = Driver(
        Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start chromedriver"),
    );
    wait_for(
        "chromedriver to listen",
        Duration::from_secs(15),
        || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        },
    )
    .await;
    let profile = tempfile::tempdir().expect("profile dir");
    let downloads = tempfile::tempdir().expect("download dir");
    let mut caps = serde_json::Map::new();
    caps.insert("browserName".into(), json!("chrome"));
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                format!("--user-data-dir={}", profile.path().display()),
                "--window-size=1400,2500",
            ],
            "prefs": {
                "download.default_directory": downloads.path().display().to_string(),
                "download.prompt_for_download": false,
                "download.directory_upgrade": true,
                "safebrowsing.enabled": false,
            },
        }),
    );
    let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("cannot open a Chromium session through chromedriver");

    let result = run_checks(&c, addr, downloads.path()).await;
    let _ = c.close().await;
    drop(driver);
    let _ = stop_tx.send(());
    let _ = server.await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// The checks, run in a task so a failure still closes the browser.
async fn run_checks(
    c: &Client,
    addr: SocketAddr,
    downloads: &Path,
) -> Result<(), Box<dyn std::any::Any + Send + 'static>> {
    let c = c.clone();
    let downloads = downloads.to_path_buf();
    tokio::spawn(async move { checks(&c, addr, &downloads).await })
        .await
        .map_err(|e| e.into_panic())
}

async fn checks(c: &Client, addr: SocketAddr, downloads: &Path) {
    let base = format!("http://{addr}");
    c.goto(&format!("{base}/static/ai_usage_monitor.html"))
        .await
        .expect("open page");
    let loaded = || async {
        js(
            c,
            "return document.getElementById('last-updated').textContent;",
        )
        .await
            != json!("—")
    };
    wait_for("the first refresh", Duration::from_secs(15), loaded).await;

    // Chinese by default.
    assert_eq!(
        js(c, "return document.documentElement.lang;").await,
        json!("zh-CN")
    );
    assert_eq!(
        js(c, "return document.querySelector('h1').textContent;").await,
        json!("AI 使用监控")
    );

    // Today's cost equals the API's.
    let dash = http_get_json(addr, "/api/ai_usage/dashboard").await;
    let api_cost = dash["today"]["cost"].as_f64().expect("today.cost");
    let el = c
        .find(Locator::Css("#today-cost"))
        .await
        .expect("#today-cost");
    let shown_value: f64 = el
        .attr("data-value")
        .await
        .expect("attr")
        .and_then(|v| v.parse().ok())
        .expect("data-value");
    assert_eq!(
        shown_value, api_cost,
        "#today-cost data-value vs /dashboard"
    );
    let text = el.text().await.expect("text");
    let shown: f64 = text
        .trim_start_matches(['¥', '$'])
        .replace(',', "")
        .parse()
        .unwrap_or_else(|_| panic!("cannot read cost {text:?}"));
    assert!(
        (shown - api_cost).abs() <= 0.0051,
        "shown {text} vs API {api_cost}"
    );
    assert!(api_cost > 0.0, "demo data should cost something today");

    // The price catalogue notice shows exactly when /healthz says the
    // catalogue is stale, with its age and date.
    let health = http_get_json(addr, "/healthz").await;
    let cat = &health["pricing_catalogue"];
    let stale = cat["stale"].as_bool().expect("pricing_catalogue.stale");
    let notice_shown = || async {
        js(
            c,
            "return document.getElementById('pricing-notice').className;",
        )
        .await
            == json!(if stale { "show" } else { "" })
    };
    wait_for(
        "the price catalogue notice",
        Duration::from_secs(15),
        notice_shown,
    )
    .await;
    if stale {
        let text = js(
            c,
            "return document.getElementById('pricing-notice').textContent;",
        )
        .await;
        let text = text.as_str().unwrap_or_default();
        assert!(
            text.contains(&format!("{} 天", cat["age_days"]))
                && text.contains(cat["date"].as_str().unwrap_or("?")),
            "{text}"
        );
    }

    // Trend: one point per day, 7 then 30.
    let days = dash["cost_trend"]
        .as_array()
        .map(Vec::len)
        .expect("cost_trend");
    assert_eq!(days, 7);
    assert_eq!(dash["cost_trend_7days"], dash["cost_trend"]);
    assert_eq!(count(c, "#trend-chart circle[data-point]").await, days);
    c.find(Locator::Css("#trend-range button[data-days='30']"))
        .await
        .expect("30-day button")
        .click()
        .await
        .expect("click");
    wait_for("30 trend points", Duration::from_secs(10), || async {
        count(c, "#trend-chart circle[data-point]").await == 30
    })
    .await;
    assert!(
        count(c, "#model-chart [data-slice]").await > 0,
        "model chart drawn"
    );
    assert!(
        count(c, "#function-chart [data-bar]").await > 0,
        "function chart drawn"
    );

    // The hostile user id is text, never markup.
    let users = js(
        c,
        "return document.getElementById('top-users').textContent;",
    )
    .await;
    assert!(
        users.as_str().unwrap_or_default().contains(XSS_USER),
        "XSS id not listed: {users}"
    );
    assert_eq!(
        count(c, "img").await,
        0,
        "an <img> element was created from data"
    );
    assert!(c.get_alert_text().await.is_err(), "an alert() ran");

    // Budgets and savings are listed.
    let budgets = js(
        c,
        "return document.getElementById('budgets-table').textContent;",
    )
    .await;
    assert!(
        budgets.as_str().unwrap_or_default().contains("每日总预算"),
        "{budgets}"
    );
    assert!(
        count(c, "#savings-list .savings-item").await > 0,
        "savings suggestions shown"
    );
    assert_budget_bars(c, addr).await;

    // Session lookup.
    c.find(Locator::Css("#session-input"))
        .await
        .expect("input")
        .send_keys("xss_session")
        .await
        .expect("type");
    c.find(Locator::Css("#session-btn"))
        .await
        .expect("btn")
        .click()
        .await
        .expect("click");
    wait_for("session result", Duration::from_secs(10), || async {
        js(
            c,
            "return document.getElementById('session-result').textContent;",
        )
        .await
        .as_str()
        .unwrap_or_default()
        .contains("xss_session")
    })
    .await;

    // Export downloads a report file.
    c.find(Locator::Css("#export-btn"))
        .await
        .expect("export")
        .click()
        .await
        .expect("click");
    let dl = downloads.to_path_buf();
    wait_for("the report download", Duration::from_secs(20), || {
        let dl = dl.clone();
        async move {
            std::fs::read_dir(&dl)
                .into_iter()
                .flatten()
                .flatten()
                .any(|e| {
                    let n = e.file_name().to_string_lossy().to_string();
                    n.starts_with("usage_report_") && n.ends_with(".json")
                })
        }
    })
    .await;
    let file = std::fs::read_dir(downloads)
        .expect("downloads")
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .expect("report file");
    let report: Value =
        serde_json::from_slice(&std::fs::read(file.path()).expect("read")).expect("report JSON");
    assert_eq!(report["period_days"], 7);

    // Language switch, remembered across a reload.
    c.find(Locator::Css("#lang-toggle"))
        .await
        .expect("toggle")
        .click()
        .await
        .expect("click");
    assert_eq!(
        js(c, "return document.documentElement.lang;").await,
        json!("en")
    );
    assert_eq!(
        js(c, "return document.querySelector('h1').textContent;").await,
        json!("AI Usage Monitor")
    );
    c.refresh().await.expect("reload");
    wait_for("refresh after reload", Duration::from_secs(15), loaded).await;
    assert_eq!(
        js(c, "return document.documentElement.lang;").await,
        json!("en"),
        "language not remembered"
    );
    assert_eq!(
        js(
            c,
            "return document.getElementById('lang-toggle').textContent;"
        )
        .await,
        json!("中文")
    );
    c.find(Locator::Css("#lang-toggle"))
        .await
        .expect("toggle")
        .click()
        .await
        .expect("click");
    assert_eq!(
        js(c, "return document.documentElement.lang;").await,
        json!("zh-CN")
    );

    // No script errors at any point.
    let errors = js(c, "return window.__errors;").await;
    assert_eq!(errors, json!([]), "console/script errors: {errors}");
    assert!(!js(
        c,
        "return document.getElementById('error-banner').className;"
    )
    .await
    .as_str()
    .unwrap_or_default()
    .contains("show"));

    // Screenshot for people (and the README).
    let png = c.screenshot().await.expect("screenshot");
    let out = target_dir().join("e2e");
    std::fs::create_dir_all(&out).expect("target/e2e");
    std::fs::write(out.join("dashboard.png"), png).expect("write screenshot");
}

/// Each budget's bar against the status route: the fill at its percent, a
/// tick per threshold (solid once fired), and for a hard limit its tick and
/// whether calls are being refused.
async fn assert_budget_bars(c: &Client, addr: SocketAddr) {
    let status = http_get_json(addr, "/api/ai_usage/budgets").await;
    let status = status.as_array().expect("budget list");
    assert_eq!(count(c, "[data-testid=budget-row]").await, status.len());
    let bars = js(
        c,
        r#"return Array.from(document.querySelectorAll('[data-testid=budget-row]')).map(function (r) {
             return {
               name: r.getAttribute('data-budget'),
               fill: parseFloat(r.querySelector('[data-testid=budget-fill]').style.width),
               marks: Array.from(r.querySelectorAll('[data-testid=budget-mark]')).map(function (m) {
                 return { at: Number(m.getAttribute('data-threshold')), left: parseFloat(m.style.left),
                          fired: m.classList.contains('fired') };
               }),
               block: (function (b) { return b ? { at: Number(b.getAttribute('data-threshold')), left: parseFloat(b.style.left) } : null; })(
                 r.querySelector('[data-testid=budget-block-mark]')),
               refusing: r.querySelector('[data-testid=budget-refusing]') !== null,
               text: r.textContent
             };
           });"#,
    )
    .await;
    let bars = bars.as_array().expect("rows");
    let mut saw_refusing = false;
    for s in status {
        let name = s["name"].as_str().unwrap();
        let bar = bars
            .iter()
            .find(|b| b["name"] == name)
            .unwrap_or_else(|| panic!("no bar for {name}: {bars:?}"));
        let thresholds: Vec<u64> = s["thresholds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_u64().unwrap())
            .collect();
        let fired: Vec<u64> = s["thresholds_fired"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_u64().unwrap())
            .collect();
        let block = s["block_at"].as_u64();
        let scale = thresholds
            .iter()
            .copied()
            .chain(block)
            .chain([100])
            .max()
            .unwrap() as f64;
        let pos = |p: f64| p.clamp(0.0, scale) / scale * 100.0;
        let percent = s["percent"].as_f64().unwrap();
        let fill = bar["fill"].as_f64().unwrap();
        assert!(
            (fill - pos(percent)).abs() < 0.02,
            "{name}: fill {fill} for {percent}%"
        );
        let marks = bar["marks"].as_array().unwrap();
        assert_eq!(marks.len(), thresholds.len(), "{name}: {marks:?}");
        for (m, t) in marks.iter().zip(&thresholds) {
            assert_eq!(m["at"].as_u64(), Some(*t), "{name}");
            let left = m["left"].as_f64().unwrap();
            assert!(
                (left - pos(*t as f64)).abs() < 0.02,
                "{name}: mark {t} at {left}"
            );
            assert_eq!(
                m["fired"].as_bool(),
                Some(fired.contains(t)),
                "{name}: mark {t}"
            );
        }
        match block {
            Some(b) => {
                assert_eq!(bar["block"]["at"].as_u64(), Some(b), "{name}");
                let left = bar["block"]["left"].as_f64().unwrap();
                assert!(
                    (left - pos(b as f64)).abs() < 0.02,
                    "{name}: hard limit at {left}"
                );
                assert!(
                    bar["text"]
                        .as_str()
                        .unwrap()
                        .contains(&format!("硬上限 {b}%")),
                    "{name}: {bar}"
                );
            }
            None => assert!(bar["block"].is_null(), "{name}: {bar}"),
        }
        let refusing = s["refusing"].as_bool().unwrap_or(false);
        assert_eq!(bar["refusing"].as_bool(), Some(refusing), "{name}: {bar}");
        if refusing {
            assert!(
                bar["text"].as_str().unwrap().contains("正在拒绝调用"),
                "{name}: {bar}"
            );
        }
        saw_refusing |= refusing;
    }
    assert!(
        saw_refusing,
        "the hard limit over its spend is refusing: {status:?}"
    );
}
