//! Demo data: a live-streaming app's AI usage over the last days, recorded
//! through the monitor like real calls (with explicit timestamps).
//!
//! Six anchors (主播) broadcast on most evenings for 2–4 hours, one session
//! (`live_YYYYMMDD_HHMMSS`) per broadcast. During a broadcast 实时分析 runs
//! every minute and 话术生成 / 问答 about 30 times an hour each; a 直播复盘
//! summary follows each broadcast, and 商品文案 runs at a low rate during the
//! day. Models differ per anchor (qwen-plus, qwen-max, qwen-turbo,
//! deepseek-chat, doubao-pro-32k, glm-4-flash and a little gemini-2.0-flash in
//! USD); about 2 % of calls fail with a Chinese error message.
//!
//! Thirty days make roughly 40,000 records. The same seed, zone and `now`
//! give the same records.

use chrono::{Duration, NaiveDate};
use serde::Serialize;

use crate::money::Costs;
use crate::monitor::UsageMonitor;
use crate::pricing::PricingTable;
use crate::record::UsageEvent;
use crate::zone::{now_timestamp, Zone};

/// What [`generate`] wrote.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DemoStats {
    /// Days covered.
    pub days: u32,
    /// Records written.
    pub records: u64,
    /// Broadcast sessions.
    pub sessions: u64,
    /// Anchors that broadcast at least once.
    pub anchors: u64,
    /// Failed calls.
    pub failed: u64,
    /// Cost per currency.
    pub costs: Costs,
    /// Earliest record (epoch seconds), 0 without records.
    pub first_timestamp: f64,
    /// Latest record (epoch seconds), 0 without records.
    pub last_timestamp: f64,
}

/// One demo anchor: who pays, how often they broadcast and which models
/// their features use.
struct Anchor {
    id: &'static str,
    user: &'static str,
    /// Chance (percent) of broadcasting on a given evening.
    live_pct: u32,
    analysis: &'static str,
    scripts: &'static str,
    answers: &'static str,
}

const ANCHORS: [Anchor; 6] = [
    Anchor {
        id: "anchor_001",
        user: "10001",
        live_pct: 85,
        analysis: "qwen-plus",
        scripts: "qwen-max",
        answers: "qwen-turbo",
    },
    Anchor {
        id: "anchor_002",
        user: "10002",
        live_pct: 75,
        analysis: "qwen-max",
        scripts: "qwen-max",
        answers: "qwen-plus",
    },
    Anchor {
        id: "anchor_003",
        user: "10002",
        live_pct: 70,
        analysis: "deepseek-chat",
        scripts: "doubao-pro-32k",
        answers: "glm-4-flash",
    },
    Anchor {
        id: "anchor_004",
        user: "10003",
        live_pct: 60,
        analysis: "qwen-plus",
        scripts: "deepseek-chat",
        answers: "qwen-turbo",
    },
    Anchor {
        id: "anchor_005",
        user: "10004",
        live_pct: 50,
        analysis: "qwen-turbo",
        scripts: "qwen-plus",
        answers: "glm-4-flash",
    },
    Anchor {
        id: "小美的直播间",
        user: "10005",
        live_pct: 65,
        analysis: "qwen-plus",
        scripts: "doubao-pro-32k",
        answers: "qwen-turbo",
    },
];

const ERRORS: [&str; 6] = [
    "请求超时",
    "上游服务繁忙，请稍后重试",
    "触发内容安全审核，已拦截",
    "速率限制：请求过于频繁",
    "连接被重置",
    "模型返回格式错误",
];

/// USD model used for a small share of 话术生成 calls.
const USD_MODEL: &str = "gemini-2.0-flash";

/// One call to record.
struct Call {
    ts: f64,
    model: &'static str,
    function: &'static str,
    input: u64,
    output: u64,
    duration_ms: f64,
    user: &'static str,
    anchor: Option<&'static str>,
    session: Option<usize>,
    error: Option<&'static str>,
}

/// Writes demo data for the last `days` days (today included, nothing after
/// now) through `monitor.record`; `progress(done, total)` is called now and
/// then. Does not flush.
pub fn generate(
    monitor: &UsageMonitor,
    days: u32,
    seed: u64,
    progress: Option<&dyn Fn(u64, u64)>,
) -> DemoStats {
    generate_at(monitor, days, seed, now_timestamp(), progress)
}

/// [`generate`] as if the time were `now` (epoch seconds): deterministic for
/// a given seed, zone and `now`.
pub fn generate_at(
    monitor: &UsageMonitor,
    days: u32,
    seed: u64,
    now: f64,
    progress: Option<&dyn Fn(u64, u64)>,
) -> DemoStats {
    let zone = monitor.zone();
    let mut rng = fastrand::Rng::with_seed(seed);
    let today = zone.date_of(now);
    let days = days.max(1);
    let mut calls: Vec<Call> = Vec::new();
    let mut sessions: Vec<String> = Vec::new();
    let mut anchors_live = [false; ANCHORS.len()];
    for back in (0..days).rev() {
        let date = today - Duration::days(back as i64);
        daytime_copywriting(&mut rng, &mut calls, &zone, date, now);
        // Local 18:00 (not midnight + 18 h, which is 17:00 or 19:00 on DST days).
        let evening = zone.hour_bounds(date, 18).0;
        for (ai, a) in ANCHORS.iter().enumerate() {
            if rng.u32(0..100) >= a.live_pct {
                continue;
            }
            // Evening start between 18:00 and 21:30, 2–4 hours long.
            let start = evening + rng.u32(0..=210 * 60) as f64;
            if start >= now {
                continue;
            }
            let end = (start + rng.u32(2 * 3600..=4 * 3600) as f64).min(now);
            let session = sessions.len();
            sessions.push(session_id(&zone, start, &sessions));
            anchors_live[ai] = true;
            broadcast(&mut rng, &mut calls, a, session, start, end, now);
        }
    }
    // Chronological order, so day files read like a real day.
    calls.sort_by(|a, b| a.ts.total_cmp(&b.ts));
    let total = calls.len() as u64;
    let mut stats = DemoStats {
        days,
        records: 0,
        sessions: sessions.len() as u64,
        anchors: anchors_live.iter().filter(|l| **l).count() as u64,
        failed: 0,
        costs: Costs::default(),
        first_timestamp: calls.first().map_or(0.0, |c| c.ts),
        last_timestamp: calls.last().map_or(0.0, |c| c.ts),
    };
    let step = (total / 200).max(1);
    for (i, c) in calls.iter().enumerate() {
        let mut ev = UsageEvent::new(c.model, c.function)
            .tokens(c.input, c.output)
            .duration_ms(c.duration_ms)
            .user(c.user)
            .at(c.ts);
        if let Some(a) = c.anchor {
            ev = ev.anchor(a);
        }
        if let Some(s) = c.session {
            ev = ev.session(&sessions[s]);
        }
        if let Some(e) = c.error {
            ev = ev.failed(e);
            stats.failed += 1;
        }
        let rec = monitor.record(&ev);
        let currency = rec.currency.unwrap_or(crate::money::Currency::CNY);
        stats.costs.add(currency, rec.cost);
        stats.records += 1;
        if let Some(p) = progress {
            if (i as u64 + 1).is_multiple_of(step) || i as u64 + 1 == total {
                p(i as u64 + 1, total);
            }
        }
    }
    stats
}

/// `live_YYYYMMDD_HHMMSS` of the local start; a later second when two
/// broadcasts start in the same second (ids must be unique).
fn session_id(zone: &crate::zone::Zone, start: f64, taken: &[String]) -> String {
    let mut t = start.floor();
    loop {
        let id = format!("live_{}", zone.local(t).format("%Y%m%d_%H%M%S"));
        if !taken.contains(&id) {
            return id;
        }
        t += 1.0;
    }
}

/// Uniform in `lo..=hi`.
fn between(rng: &mut fastrand::Rng, lo: u64, hi: u64) -> u64 {
    rng.u64(lo..=hi)
}

/// A call's wall time: latency plus generation time, with jitter (ms).
fn duration_for(rng: &mut fastrand::Rng, model: &str, output: u64) -> f64 {
    let per_token = match model {
        "qwen-max" => 28.0,
        "qwen-turbo" | "glm-4-flash" | "gemini-2.0-flash" => 9.0,
        _ => 16.0,
    };
    let base = 250.0 + output as f64 * per_token;
    (base * (0.7 + rng.f64() * 0.6) * 10.0).round() / 10.0
}

/// ~2 % of calls fail; a failed call has its prompt but no answer.
fn maybe_fail(rng: &mut fastrand::Rng, output: &mut u64) -> Option<&'static str> {
    if rng.u32(0..1000) < 20 {
        *output = 0;
        Some(ERRORS[rng.usize(0..ERRORS.len())])
    } else {
        None
    }
}

#[allow(clippy::too_many_arguments)]
fn push(
    rng: &mut fastrand::Rng,
    calls: &mut Vec<Call>,
    ts: f64,
    model: &'static str,
    function: &'static str,
    (input, output): (u64, u64),
    user: &'static str,
    anchor: Option<&'static str>,
    session: Option<usize>,
) {
    let mut output = output;
    let error = maybe_fail(rng, &mut output);
    let duration_ms = duration_for(rng, model, output);
    calls.push(Call {
        ts: (ts * 1000.0).round() / 1000.0,
        model,
        function,
        input,
        output,
        duration_ms,
        user,
        anchor,
        session,
        error,
    });
}

/// One broadcast's calls between `start` and `end`.
fn broadcast(
    rng: &mut fastrand::Rng,
    calls: &mut Vec<Call>,
    a: &Anchor,
    session: usize,
    start: f64,
    end: f64,
    now: f64,
) {
    let (user, anchor, s) = (a.user, Some(a.id), Some(session));
    // 实时分析: once a minute, a few seconds of jitter.
    let mut t = start + 60.0;
    while t < end {
        let tokens = (between(rng, 1500, 4000), between(rng, 150, 400));
        let ts = t + rng.f64() * 5.0;
        push(
            rng,
            calls,
            ts,
            a.analysis,
            "实时分析",
            tokens,
            user,
            anchor,
            s,
        );
        t += 60.0;
    }
    // 话术生成 and 问答: about 30 an hour each, at random moments.
    let hours = (end - start) / 3600.0;
    for (function, model) in [("话术生成", a.scripts), ("问答", a.answers)] {
        let n = (hours * (25.0 + rng.f64() * 10.0)).round() as u64;
        for _ in 0..n {
            let ts = start + rng.f64() * (end - start);
            let (model, tokens) = if function == "话术生成" {
                // A little of the script work goes to Gemini (priced in USD).
                let m = if rng.u32(0..100) < 4 {
                    USD_MODEL
                } else {
                    model
                };
                (m, (between(rng, 800, 1500), between(rng, 300, 800)))
            } else {
                (model, (between(rng, 300, 800), between(rng, 50, 200)))
            };
            push(rng, calls, ts, model, function, tokens, user, anchor, s);
        }
    }
    // 直播复盘: one long summary right after the broadcast.
    let review = end + 60.0 + rng.f64() * 240.0;
    if review < now {
        let tokens = (between(rng, 15_000, 30_000), between(rng, 1500, 3000));
        push(
            rng,
            calls,
            review,
            "qwen-max",
            "直播复盘",
            tokens,
            user,
            anchor,
            s,
        );
    }
}

/// 商品文案 during the day (10:00–17:00), a few calls an hour, no anchor.
fn daytime_copywriting(
    rng: &mut fastrand::Rng,
    calls: &mut Vec<Call>,
    zone: &Zone,
    date: NaiveDate,
    now: f64,
) {
    const USERS: [&str; 3] = ["10001", "10003", "10006"];
    for hour in 10..17 {
        for _ in 0..rng.u32(1..=5) {
            let (start, end) = zone.hour_bounds(date, hour);
            let ts = start + rng.f64() * (end - start);
            if ts >= now {
                return;
            }
            let user = USERS[rng.usize(0..USERS.len())];
            let tokens = (between(rng, 400, 900), between(rng, 200, 600));
            push(
                rng,
                calls,
                ts,
                "doubao-pro-32k",
                "商品文案",
                tokens,
                user,
                None,
                None,
            );
        }
    }
}

/// True when every model the demo uses is priced by `table` (the demo
/// relies on the built-in prices).
pub fn models_priced(table: &PricingTable) -> bool {
    ANCHORS
        .iter()
        .flat_map(|a| [a.analysis, a.scripts, a.answers])
        .chain([USD_MODEL, "qwen-max", "doubao-pro-32k"])
        .all(|m| table.resolve(m).is_some())
}
