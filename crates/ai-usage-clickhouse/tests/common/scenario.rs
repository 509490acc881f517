//! The fleet scenario's shared parts: demo data on fixed dates, local
//! monitors over it, and the checks that a fleet answer is the sum of the
//! hosts' local answers. Used by the 18.16 tests (`fleet.rs`) and the
//! current-release tests (`current_release.rs`) alike.

use std::collections::BTreeMap;
use std::path::Path;

use ai_usage_clickhouse::{schema, Client, Endpoint, FleetQueries, Shipper, ShipperConfig};
use ai_usage_core::{
    Costs, GroupSummary, PricingTable, RankBy, RankKind, UsageMonitor, UsageSummary, Zone,
};
use chrono::NaiveDate;

/// A fixed "now" so the demo data is the same on every run.
pub const NOW: f64 = 1_761_500_000.0; // 2025-10-26 17:33 UTC

/// The hosts' zone, also the databases' reporting zone.
pub fn zone() -> Zone {
    "Asia/Shanghai".parse().expect("zone")
}

/// A server the tests ship to: ClickHouse 18.16 or chDB's front.
pub trait TestServer {
    /// The endpoint of `database` on it.
    fn endpoint(&self, database: &str) -> Endpoint;
}

impl TestServer for super::Server {
    fn endpoint(&self, database: &str) -> Endpoint {
        super::Server::endpoint(self, database)
    }
}

impl TestServer for super::chdb::ChdbFront {
    fn endpoint(&self, database: &str) -> Endpoint {
        super::chdb::ChdbFront::endpoint(self, database)
    }
}

/// A monitor replaying `dir` in `zone`, keeping every day.
pub fn local_monitor_in(dir: &Path, zone: Zone) -> UsageMonitor {
    UsageMonitor::builder()
        .dir(dir)
        .timezone(zone)
        .retention_days(3660)
        .replay(true)
        .build()
        .expect("monitor")
}

/// Writes `days` of demo calls (seeded) ending at [`NOW`]; returns how many.
pub fn write_demo(dir: &Path, days: u32, seed: u64) -> u64 {
    let m = UsageMonitor::builder()
        .dir(dir)
        .timezone(zone())
        .replay(false)
        .build()
        .expect("monitor");
    let stats = ai_usage_core::demo::generate_at(&m, days, seed, NOW, None);
    m.shutdown().expect("flush");
    stats.records
}

/// A shipper of `dir` as host `host` into `db` on `server`.
pub fn shipper(server: &impl TestServer, db: &str, dir: &Path, host: &str) -> Shipper {
    let mut cfg = ShipperConfig::new(dir, server.endpoint(db));
    cfg.host_id = Some(host.to_string());
    Shipper::open(cfg).expect("open shipper")
}

/// What must match between answers: counts, tokens, exact costs per group.
#[derive(Debug, Default, PartialEq)]
pub struct Digest {
    /// Calls, successful calls, input, output and total tokens, unpriced calls.
    pub totals: (u64, u64, u64, u64, u64, u64),
    costs: Costs,
    groups: BTreeMap<(String, String), (u64, u64, Costs)>,
}

impl Digest {
    fn add(&mut self, s: &UsageSummary) {
        let t = &mut self.totals;
        t.0 += s.total_calls;
        t.1 += s.successful_calls;
        t.2 += s.total_input_tokens;
        t.3 += s.total_output_tokens;
        t.4 += s.total_tokens;
        t.5 += s.unpriced_calls;
        self.costs.merge(&s.costs);
        let mut add = |kind: &str, m: &BTreeMap<String, GroupSummary>| {
            for (k, g) in m {
                let e = self
                    .groups
                    .entry((kind.to_string(), k.clone()))
                    .or_default();
                e.0 += g.calls;
                e.1 += g.total_tokens;
                e.2.merge(&g.costs);
            }
        };
        add("model", &s.by_model);
        add("function", &s.by_function);
        add("user", &s.by_user);
        add("anchor", &s.by_anchor);
    }
}

/// The summed digest of summaries (one per host, or the fleet's alone).
pub fn digest(parts: &[&UsageSummary]) -> Digest {
    let mut d = Digest::default();
    for p in parts {
        d.add(p);
    }
    d
}

/// A one-number query's answer.
pub fn count(client: &Client, sql: &str) -> u64 {
    client.query_u64(sql).expect(sql)
}

/// (rows, distinct ids, calls summed in `agg_model`).
pub fn row_counts(client: &Client) -> (u64, u64, u64) {
    let db = client.db();
    (
        count(client, &format!("SELECT count() FROM {db}.records")),
        count(client, &format!("SELECT uniqExact(id) FROM {db}.records")),
        count(
            client,
            &format!("SELECT toUInt64(sum(calls)) FROM {db}.agg_model"),
        ),
    )
}

/// Sums of an aggregate: calls, successful calls, input tokens, nano-units.
pub fn agg_sums(client: &Client, table: &str) -> Vec<Vec<String>> {
    let db = client.db();
    client
        .query_rows(&format!(
            "SELECT sum(calls), sum(successful_calls), sum(input_tokens), sum(cost_nanos) \
             FROM {db}.{table}"
        ))
        .expect("sums")
}

/// Concatenates the day files of `hosts` into `into`: one directory that
/// holds every host's records, for a local monitor that sees the fleet.
pub fn merge_dirs(hosts: &[&Path], into: &Path) {
    for h in hosts {
        for e in std::fs::read_dir(h).unwrap().flatten() {
            let name = e.file_name();
            if !name.to_string_lossy().ends_with(".jsonl") {
                continue;
            }
            let mut bytes = std::fs::read(into.join(&name)).unwrap_or_default();
            bytes.extend(std::fs::read(e.path()).unwrap());
            std::fs::write(into.join(&name), bytes).unwrap();
        }
    }
}

/// Every user's, anchor's and model's ranking over `from..=to` from the
/// fleet is the sum of the hosts' (limit 0 = all), ordered by tokens.
pub fn assert_rankings_are_sums(
    fleet: &FleetQueries,
    hosts: &[&UsageMonitor],
    from: NaiveDate,
    to: NaiveDate,
) {
    for kind in [RankKind::User, RankKind::Anchor, RankKind::Model] {
        let mut want: BTreeMap<String, (u64, u64, Costs)> = BTreeMap::new();
        for m in hosts {
            for e in m.top(kind, from, to, RankBy::Tokens, 0) {
                let w = want.entry(e.id.clone()).or_default();
                w.0 += e.calls;
                w.1 += e.tokens;
                w.2.merge(&e.costs);
            }
        }
        let got = fleet.top(kind, from, to, RankBy::Tokens, 0).unwrap();
        let got_map: BTreeMap<String, (u64, u64, Costs)> = got
            .iter()
            .map(|e| (e.id.clone(), (e.calls, e.tokens, e.costs.clone())))
            .collect();
        assert_eq!(got_map, want, "{kind:?}");
        assert!(
            got.windows(2).all(|w| w[0].tokens >= w[1].tokens),
            "ordered by tokens"
        );
    }
}

/// Every session's figures from the fleet are the sum of the hosts' (the
/// demo's session ids recur on several hosts), its span the widest, its user
/// the one of the latest call; an unknown session is `None`.
pub fn assert_sessions_are_sums(fleet: &FleetQueries, hosts: &[&UsageMonitor]) {
    let mut ids: Vec<String> = hosts
        .iter()
        .flat_map(|m| m.recent_sessions(10_000))
        .map(|s| s.session_id)
        .collect();
    ids.sort();
    ids.dedup();
    assert!(!ids.is_empty(), "demo data has sessions");
    for id in &ids {
        let parts: Vec<_> = hosts
            .iter()
            .filter_map(|m| m.get_session_stats(id))
            .collect();
        let got = fleet.session(id).unwrap().expect("session in ClickHouse");
        let mut costs = Costs::default();
        let mut models: BTreeMap<String, u64> = BTreeMap::new();
        for p in &parts {
            costs.merge(&p.costs);
            for (m, n) in &p.models {
                *models.entry(m.clone()).or_default() += n;
            }
        }
        assert_eq!(
            (got.calls, got.total_tokens, &got.costs, &got.models),
            (
                parts.iter().map(|p| p.calls).sum(),
                parts.iter().map(|p| p.total_tokens).sum(),
                &costs,
                &models
            ),
            "session {id}"
        );
        let first = parts.iter().map(|p| p.first_call).fold(f64::MAX, f64::min);
        let last = parts.iter().map(|p| p.last_call).fold(f64::MIN, f64::max);
        assert!((got.first_call - first).abs() < 1e-3 && (got.last_call - last).abs() < 1e-3);
        let latest = parts
            .iter()
            .max_by(|x, y| x.last_call.total_cmp(&y.last_call))
            .and_then(|p| p.user_id.clone());
        if parts.iter().all(|p| p.user_id.is_some()) {
            assert_eq!(got.user_id, latest, "session {id}");
        }
    }
    assert!(fleet.session("no-such-session").unwrap().is_none());
}

/// Every answer the fleet gives over two hosts' shipped demo data (`a`, `b`,
/// `records` calls in all) equals the hosts' local answers together:
/// summaries of days, hours and ranges (from the aggregates, and from raw
/// rows in a +05:30 zone), durations (p95 exactly, the average within
/// rounding), the trend, rankings and sessions; the aggregates match the raw
/// rows.
pub fn assert_answers_are_the_hosts_sum(client: &Client, a: &Path, b: &Path, records: u64) {
    let fleet = FleetQueries::new(client.clone(), zone(), PricingTable::builtin());
    let la = local_monitor_in(a, zone());
    let lb = local_monitor_in(b, zone());
    let today = zone().date_of(NOW);
    let from = today - chrono::Duration::days(6);
    let wide = (
        from - chrono::Duration::days(1),
        today + chrono::Duration::days(1),
    );
    assert!(schema::aggregates_match(client, wide.0, wide.1).unwrap());

    // Summaries: days, hours and ranges, from the aggregates and (a zone
    // whose days don't start on whole UTC hours) from raw rows.
    for back in 0..6 {
        let date = today - chrono::Duration::days(back);
        let want = digest(&[
            &la.get_summary_for_date(date),
            &lb.get_summary_for_date(date),
        ]);
        let got = digest(&[&fleet.summary_for_date(date).unwrap()]);
        assert_eq!(got, want, "daily summary of {date}");
    }
    for hour in [0u8, 9, 19, 20, 21] {
        let want = digest(&[
            &la.get_summary_for_hour(today, hour),
            &lb.get_summary_for_hour(today, hour),
        ]);
        assert_eq!(
            digest(&[&fleet.summary_for_hour(today, hour).unwrap()]),
            want,
            "hour {hour}"
        );
    }
    let want = digest(&[
        &la.get_range_summary(from, today).unwrap(),
        &lb.get_range_summary(from, today).unwrap(),
    ]);
    assert_eq!(want.totals.0, records);
    assert_eq!(digest(&[&fleet.range_summary(from, today).unwrap()]), want);
    let kolkata_zone: Zone = "+05:30".parse().expect("zone");
    let kolkata = FleetQueries::new(client.clone(), kolkata_zone, PricingTable::builtin());
    assert_eq!(
        digest(&[&kolkata.range_summary(wide.0, wide.1).unwrap()]),
        want
    );

    // Durations: p95 exactly the local one over both hosts' records (the
    // same histogram), the average within rounding.
    let both = tempfile::tempdir().unwrap();
    merge_dirs(&[a, b], both.path());
    let lboth = local_monitor_in(both.path(), zone());
    let same_durations = |got: &UsageSummary, want: &UsageSummary, what: &str| {
        assert_eq!(got.p95_duration_ms, want.p95_duration_ms, "p95 of {what}");
        assert!(
            (got.avg_duration_ms - want.avg_duration_ms).abs() <= 1e-9 * want.avg_duration_ms,
            "average of {what}: {} vs {}",
            got.avg_duration_ms,
            want.avg_duration_ms
        );
    };
    for back in 0..6 {
        let date = today - chrono::Duration::days(back);
        let want = lboth.get_summary_for_date(date);
        assert!(want.total_calls == 0 || want.p95_duration_ms > 0.0);
        same_durations(&fleet.summary_for_date(date).unwrap(), &want, "a day");
    }
    for hour in [0u8, 9, 19, 20, 21] {
        same_durations(
            &fleet.summary_for_hour(today, hour).unwrap(),
            &lboth.get_summary_for_hour(today, hour),
            "an hour",
        );
    }
    let want = lboth.get_range_summary(wide.0, wide.1).unwrap();
    assert!(want.p95_duration_ms > 0.0);
    same_durations(
        &fleet.range_summary(wide.0, wide.1).unwrap(),
        &want,
        "the range",
    );
    let kolkata_local = local_monitor_in(both.path(), kolkata_zone);
    for (from, to) in [wide, (today, today)] {
        same_durations(
            &kolkata.range_summary(from, to).unwrap(),
            &kolkata_local.get_range_summary(from, to).unwrap(),
            "days in +05:30",
        );
    }

    // Trend: day by day, the sum of the hosts.
    let (ta, tb) = (
        la.cost_trend_range(from, today).unwrap(),
        lb.cost_trend_range(from, today).unwrap(),
    );
    let tf = fleet.trend(from, today).unwrap();
    assert_eq!(tf.len(), ta.len());
    for ((f, x), y) in tf.iter().zip(&ta).zip(&tb) {
        let mut costs = x.costs.clone();
        costs.merge(&y.costs);
        assert_eq!(
            (f.calls, f.tokens, &f.costs),
            (x.calls + y.calls, x.tokens + y.tokens, &costs),
            "{}",
            f.date
        );
    }
    let trend_calls: u64 = kolkata
        .trend(wide.0, wide.1)
        .unwrap()
        .iter()
        .map(|p| p.calls)
        .sum();
    assert_eq!(trend_calls, records);

    assert_rankings_are_sums(&fleet, &[&la, &lb], from, today);
    assert_sessions_are_sums(&fleet, &[&la, &lb]);
}
