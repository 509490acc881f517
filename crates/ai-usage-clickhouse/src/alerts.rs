//! Budget alerts from the whole fleet's spend, each delivered by exactly one
//! host, once, across restarts.
//!
//! Every host running a [`FleetAlerter`] (inside `ai-usage serve
//! --clickhouse`, or an application through
//! [`ClickHouseExt::clickhouse_alerts`](crate::ClickHouseExt::clickhouse_alerts))
//! polls [`FleetQueries::budget_status`] for its budgets. A threshold reached
//! in the current period is a *key* (budget, period label, threshold). A key
//! is delivered by the host that wins its claim in the table `budget_alerts`
//! (schema v5, `MergeTree` ordered by the key; one row per claim:
//! claimant, `claimed_at` = the server's `now()`, the spend and currency):
//!
//! 1. *check*: read the claims of the keys reached; a key with any claim is
//!    settled (someone decided it, possibly before a restart) and skipped;
//! 2. *claim*: insert this host's claim for each key left;
//! 3. *settle*: wait [`ClickHouseAlerts::settle`] (default 5 s);
//! 4. *decide*: re-read the claims of those keys; the winner of a key is its
//!    claim with the smallest `(claimed_at, claimant)`; deliver the keys this
//!    host won.
//!
//! Why no key is delivered twice: let `a` be the moment the first claim of a
//! key is acknowledged. A host that checks after `a` sees it and does not
//! claim, so every claimant checked before `a`; as long as each host's time
//! from the start of its check to its insert's acknowledgement is shorter
//! than the settle delay, every claim is in before `a + settle`. Every
//! claimant decides at least `settle` after its own acknowledgement (which is
//! not before `a`), so all of them read the same complete set of claims and
//! pick the same winner: one delivery. Clocks do not matter (the set is the
//! same, the order is total).
//!
//! The window that remains: a host whose check-to-acknowledgement time
//! exceeds the settle delay (a stall, a very slow insert; logged as a
//! warning) can make a second host deliver; a winner that dies between its
//! claim and its delivery loses the alert (claims are durable, decisions are
//! not). Requests of the check and the claim time out after half the settle
//! delay to keep the first case rare. A host that loses ClickHouse after
//! claiming decides those keys at its next poll (the claims are all in by
//! then). Visibility assumes one server (or, with replicas, inserts and
//! reads with `insert_quorum` / `select_sequential_consistency`).
//!
//! What an alert carries: spent and percent from the fleet's status at the
//! poll; `timestamp` = the poll's time; `model` and `function` empty (no
//! single record crossed). A threshold already reached when fleet alerts
//! start, with no claim yet, is delivered (claims are durable, so nothing
//! already delivered by a fleet poller is delivered again). All pollers must
//! use the same zone (period labels) and budgets file (names, limits).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::{Duration, Instant};

use ai_usage_core::{Budget, BudgetAlert, BudgetStatus};

use crate::client::Client;
use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::queries::FleetQueries;
use crate::schema::ALERTS_TABLE;
use crate::tsv::quote;

/// How the fleet's budget alerts are polled and claimed.
#[derive(Debug, Clone)]
pub struct ClickHouseAlerts {
    /// The fleet's database.
    pub endpoint: Endpoint,
    /// This poller's id in the claims (default: hostname, process id and a
    /// start-time nonce, unique per process).
    pub claimant: Option<String>,
    /// Pause between polls (default 30 s).
    pub interval: Duration,
    /// Wait between claiming and deciding (default 5 s; see the module
    /// docs: it must exceed any host's check-to-insert time).
    pub settle: Duration,
}

impl ClickHouseAlerts {
    /// Polls `endpoint` every 30 s, settling claims for 5 s.
    pub fn new(endpoint: Endpoint) -> ClickHouseAlerts {
        ClickHouseAlerts {
            endpoint,
            claimant: None,
            interval: Duration::from_secs(30),
            settle: Duration::from_secs(5),
        }
    }
}

/// A default claimant id: unique per process (two processes of one
/// machine must not share a claim).
fn default_claimant() -> String {
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() % 1_000_000_000)
        .unwrap_or_default();
    format!(
        "{}#{}-{nonce:09}",
        crate::host_id::hostname(),
        std::process::id()
    )
}

/// A threshold reached in a period: what is claimed and delivered once.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ClaimKey {
    budget: String,
    period_label: String,
    threshold: u32,
}

/// One claim read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Claim {
    key: ClaimKey,
    claimant: String,
    /// The server's `now()` at the insert, epoch seconds.
    claimed_at: u32,
}

/// The winner of each key: its claim with the smallest `(claimed_at,
/// claimant)`, the same on every host that reads the same claims.
pub(crate) fn winners(claims: &[Claim]) -> BTreeMap<&ClaimKey, &str> {
    let mut best: BTreeMap<&ClaimKey, (u32, &str)> = BTreeMap::new();
    for c in claims {
        let this = (c.claimed_at, c.claimant.as_str());
        best.entry(&c.key)
            .and_modify(|b| *b = (*b).min(this))
            .or_insert(this);
    }
    best.into_iter().map(|(k, (_, who))| (k, who)).collect()
}

/// The keys of `mine` that `claimant` won among `claims`.
pub(crate) fn won<'k>(
    mine: impl IntoIterator<Item = &'k ClaimKey>,
    claims: &[Claim],
    claimant: &str,
) -> Vec<ClaimKey> {
    let winners = winners(claims);
    mine.into_iter()
        .filter(|k| winners.get(k) == Some(&claimant))
        .cloned()
        .collect()
}

/// The keys of `reached` nobody has claimed yet (`claimed`: keys with at
/// least one claim).
pub(crate) fn to_claim<'k>(
    reached: impl IntoIterator<Item = &'k ClaimKey>,
    claimed: &HashSet<ClaimKey>,
) -> Vec<ClaimKey> {
    reached
        .into_iter()
        .filter(|k| !claimed.contains(k))
        .cloned()
        .collect()
}

/// The fleet alert poller: one [`FleetAlerter::poll`] per interval (see
/// the module docs for the protocol).
#[derive(Debug)]
pub struct FleetAlerter {
    queries: FleetQueries,
    /// Short timeouts for the check and the claim (half the settle delay).
    claims: Client,
    claimant: String,
    settle: Duration,
    /// Keys known to be claimed (skipped without a query), current periods only.
    settled: HashSet<ClaimKey>,
    /// Keys claimed by this poller but not yet decided (ClickHouse failed
    /// in between), with the alert to deliver if won.
    undecided: BTreeMap<ClaimKey, BudgetAlert>,
}

impl FleetAlerter {
    /// A poller answering from `queries` (whose zone makes the periods).
    pub fn new(queries: FleetQueries, cfg: &ClickHouseAlerts) -> FleetAlerter {
        let timeout = (cfg.settle / 2).max(Duration::from_millis(500));
        FleetAlerter {
            claims: Client::new(cfg.endpoint.clone(), timeout),
            queries,
            claimant: cfg.claimant.clone().unwrap_or_else(default_claimant),
            settle: cfg.settle,
            settled: HashSet::new(),
            undecided: BTreeMap::new(),
        }
    }

    /// This poller's id in the claims.
    pub fn claimant(&self) -> &str {
        &self.claimant
    }

    /// The queries it polls with.
    pub fn queries(&self) -> &FleetQueries {
        &self.queries
    }

    /// One poll: the fleet's status of `budgets`, then the claim protocol
    /// for every threshold newly reached. Returns the alerts this poller
    /// won, for the caller to deliver (the thread hands them to the
    /// monitor's callbacks). Takes the settle delay when it claims.
    pub fn poll(&mut self, budgets: &[Budget]) -> Result<Vec<BudgetAlert>> {
        let mut out = self.decide_undecided()?;
        if budgets.is_empty() {
            return Ok(out);
        }
        let statuses = self.queries.budget_status(budgets)?;
        let now = ai_usage_core::now_timestamp();
        let reached: BTreeMap<ClaimKey, BudgetAlert> = statuses
            .iter()
            .flat_map(|s| s.thresholds_fired.iter().map(move |&t| (s, t)))
            .map(|(s, t)| (key_of(s, t), alert_of(s, t, now)))
            .collect();
        // Forget keys of periods no longer current.
        self.settled.retain(|k| {
            statuses
                .iter()
                .any(|s| s.name == k.budget && s.period_label == k.period_label)
        });
        let open: Vec<&ClaimKey> = reached
            .keys()
            .filter(|k| !self.settled.contains(*k) && !self.undecided.contains_key(*k))
            .collect();
        if open.is_empty() {
            return Ok(out);
        }
        let started = Instant::now();
        let claimed: HashSet<ClaimKey> = self
            .read_claims(&self.claims, open.iter().copied())?
            .into_iter()
            .map(|c| c.key)
            .collect();
        let fresh = to_claim(open.iter().copied(), &claimed);
        self.settled.extend(claimed);
        if fresh.is_empty() {
            return Ok(out);
        }
        self.insert_claims(&fresh, &reached)?;
        let gap = started.elapsed();
        if gap >= self.settle {
            tracing::warn!(
                took = ?gap,
                settle = ?self.settle,
                "claiming budget alerts took longer than the settle delay: another host may deliver them too"
            );
        }
        for k in fresh {
            if let Some(a) = reached.get(&k) {
                self.undecided.insert(k, a.clone());
            }
        }
        std::thread::sleep(self.settle);
        out.extend(self.decide_undecided()?);
        Ok(out)
    }

    /// Decides the keys this poller claimed: the ones it won are returned,
    /// all become settled. Keeps them on an error (retried next poll).
    fn decide_undecided(&mut self) -> Result<Vec<BudgetAlert>> {
        if self.undecided.is_empty() {
            return Ok(Vec::new());
        }
        let claims = self.read_claims(self.queries.client(), self.undecided.keys())?;
        let won = won(self.undecided.keys(), &claims, &self.claimant);
        let decided = std::mem::take(&mut self.undecided);
        let mut out = Vec::new();
        for (k, alert) in decided {
            if won.contains(&k) {
                out.push(alert);
            }
            self.settled.insert(k);
        }
        Ok(out)
    }

    /// The claims of `keys` (every claimant's).
    fn read_claims<'k>(
        &self,
        client: &Client,
        keys: impl IntoIterator<Item = &'k ClaimKey>,
    ) -> Result<Vec<Claim>> {
        read_claims(client, keys)
    }

    fn insert_claims(
        &self,
        keys: &[ClaimKey],
        reached: &BTreeMap<ClaimKey, BudgetAlert>,
    ) -> Result<()> {
        let values: Vec<String> = keys
            .iter()
            .filter_map(|k| reached.get(k).map(|a| (k, a)))
            .map(|(k, a)| {
                format!(
                    "({}, {}, {}, {}, {}, {})",
                    quote(&k.budget),
                    quote(&k.period_label),
                    k.threshold,
                    quote(&self.claimant),
                    crate::schema::money_to_column(a.spent),
                    quote(a.currency.code())
                )
            })
            .collect();
        // `claimed_at` is left to the server's DEFAULT now().
        self.claims.execute(&format!(
            "INSERT INTO {}.{ALERTS_TABLE} (budget, period_label, threshold, host, spent_nanos, \
currency) VALUES {}",
            self.claims.db(),
            values.join(", ")
        ))
    }
}

/// The claims of `keys` (every claimant's).
fn read_claims<'k>(
    client: &Client,
    keys: impl IntoIterator<Item = &'k ClaimKey>,
) -> Result<Vec<Claim>> {
    let keys: BTreeSet<&ClaimKey> = keys.into_iter().collect();
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let list = |f: fn(&ClaimKey) -> &str| {
        let set: BTreeSet<String> = keys.iter().map(|k| quote(f(k))).collect();
        set.into_iter().collect::<Vec<_>>().join(", ")
    };
    let rows = client.query_rows(&format!(
        "SELECT budget, period_label, threshold, host, toUInt32(claimed_at) \
FROM {db}.{ALERTS_TABLE} WHERE budget IN ({}) AND period_label IN ({})",
        list(|k| &k.budget),
        list(|k| &k.period_label),
        db = client.db(),
    ))?;
    let mut out = Vec::new();
    for row in rows {
        let [budget, period_label, threshold, host, at] = row.as_slice() else {
            return Err(Error::Protocol(format!("claim row {row:?}")));
        };
        let number = |s: &str| {
            s.parse::<u32>()
                .map_err(|_| Error::Protocol(format!("not a number: {s:?}")))
        };
        let key = ClaimKey {
            budget: budget.clone(),
            period_label: period_label.clone(),
            threshold: number(threshold)?,
        };
        if keys.contains(&key) {
            out.push(Claim {
                key,
                claimant: host.clone(),
                claimed_at: number(at)?,
            });
        }
    }
    Ok(out)
}

/// One event a fleet posts once per period, e.g. the scheduled digest:
/// the same claims table and protocol as the budget alerts (check, claim,
/// settle, decide), for a single key `(subject, period_label, 0)`.
#[derive(Debug)]
pub struct OnceClaims {
    /// Short timeouts for the check and the claim (half the settle delay).
    claims: Client,
    /// The decision's read.
    reader: Client,
    claimant: String,
    settle: Duration,
}

impl OnceClaims {
    /// Claims in `cfg`'s database with its claimant and settle delay.
    pub fn new(cfg: &ClickHouseAlerts) -> OnceClaims {
        let timeout = (cfg.settle / 2).max(Duration::from_millis(500));
        OnceClaims {
            claims: Client::new(cfg.endpoint.clone(), timeout),
            reader: Client::new(cfg.endpoint.clone(), Duration::from_secs(30)),
            claimant: cfg.claimant.clone().unwrap_or_else(default_claimant),
            settle: cfg.settle,
        }
    }

    /// This host's id in the claims.
    pub fn claimant(&self) -> &str {
        &self.claimant
    }

    /// True when this host is to post `subject` for `period_label`: nobody
    /// had claimed it, this host claimed it, and after the settle delay its
    /// claim is the winner. False when any claim existed before (another
    /// host, or this one before a restart) or another host won. Takes the
    /// settle delay when it claims.
    pub fn claim(&self, subject: &str, period_label: &str) -> Result<bool> {
        let key = ClaimKey {
            budget: subject.to_string(),
            period_label: period_label.to_string(),
            threshold: 0,
        };
        let started = Instant::now();
        if !read_claims(&self.claims, [&key])?.is_empty() {
            return Ok(false);
        }
        self.claims.execute(&format!(
            "INSERT INTO {}.{ALERTS_TABLE} (budget, period_label, threshold, host, spent_nanos, \
currency) VALUES ({}, {}, 0, {}, 0, '')",
            self.claims.db(),
            quote(&key.budget),
            quote(&key.period_label),
            quote(&self.claimant),
        ))?;
        let gap = started.elapsed();
        if gap >= self.settle {
            tracing::warn!(took = ?gap, settle = ?self.settle, subject, "claiming took longer than the settle delay: another host may post it too");
        }
        std::thread::sleep(self.settle);
        let claims = read_claims(&self.reader, [&key])?;
        Ok(!won([&key], &claims, &self.claimant).is_empty())
    }
}

fn key_of(s: &BudgetStatus, threshold: u32) -> ClaimKey {
    ClaimKey {
        budget: s.name.clone(),
        period_label: s.period_label.clone(),
        threshold,
    }
}

/// The alert of `threshold` from the fleet's status at the poll `now`.
fn alert_of(s: &BudgetStatus, threshold: u32, now: f64) -> BudgetAlert {
    BudgetAlert {
        budget: s.name.clone(),
        scope: s.scope.clone(),
        period: s.period,
        period_label: s.period_label.clone(),
        threshold,
        spent: s.spent,
        limit: s.limit,
        percent: s.percent,
        currency: s.currency,
        timestamp: now,
        // No single record crossed: the fleet's sum did.
        model: String::new(),
        function: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(budget: &str, label: &str, t: u32) -> ClaimKey {
        ClaimKey {
            budget: budget.into(),
            period_label: label.into(),
            threshold: t,
        }
    }

    fn claim(k: &ClaimKey, who: &str, at: u32) -> Claim {
        Claim {
            key: k.clone(),
            claimant: who.into(),
            claimed_at: at,
        }
    }

    #[test]
    fn the_earliest_claim_wins_and_ties_go_to_the_smaller_claimant() {
        let k80 = key("total", "2026-11-28", 80);
        let k100 = key("total", "2026-11-28", 100);
        let claims = vec![
            claim(&k80, "b", 10),
            claim(&k80, "a", 11),
            claim(&k100, "c", 20),
            claim(&k100, "b", 20),
        ];
        let w = winners(&claims);
        assert_eq!(w[&k80], "b", "earlier second wins over a smaller name");
        assert_eq!(w[&k100], "b", "same second: the smaller name");
        // Every host reading the same claims (in any order) agrees.
        let mut reversed = claims.clone();
        reversed.reverse();
        assert_eq!(winners(&reversed), w);
        let mine = [k80.clone(), k100.clone()];
        assert_eq!(won(&mine, &claims, "b"), mine.to_vec());
        assert!(won(&mine, &claims, "a").is_empty());
        assert!(won(&mine, &claims, "c").is_empty());
    }

    #[test]
    fn a_key_without_this_hosts_claim_is_never_won_by_it() {
        let k = key("total", "2026-11", 100);
        let other = key("total", "2026-11", 80);
        // Only another key holds our claim: k is not ours to deliver.
        let claims = vec![claim(&k, "b", 5), claim(&other, "a", 1)];
        assert!(won([&k], &claims, "a").is_empty());
        // No claims read back at all (e.g. our insert was lost): nothing won.
        assert!(won([&k], &[], "a").is_empty());
    }

    #[test]
    fn keys_with_any_claim_are_not_claimed_again() {
        let a = key("total", "2026-11-28", 80);
        let b = key("total", "2026-11-28", 100);
        let c = key("anchor", "2026-11", 80);
        let claimed: HashSet<ClaimKey> = [b.clone()].into_iter().collect();
        assert_eq!(to_claim([&a, &b, &c], &claimed), vec![a.clone(), c.clone()]);
        assert!(to_claim([&b], &claimed).is_empty());
    }
}
