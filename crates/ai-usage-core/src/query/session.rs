//! Sessions (a broadcast, a conversation): one session's figures.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::money::{Costs, Currency, Money};
use crate::rollups::{Rollups, SessionStats};

use super::summary::main_currency;

/// One session's figures (`get_session_stats`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionSummary {
    /// The session id.
    pub session_id: String,
    /// Calls.
    pub calls: u64,
    /// Successful calls.
    pub successful_calls: u64,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Total tokens.
    pub total_tokens: u64,
    /// Cost in `currency`.
    pub cost: Money,
    /// Currency of `cost`.
    pub currency: Currency,
    /// Cost per currency.
    pub costs: Costs,
    /// First call (epoch seconds).
    pub first_call: f64,
    /// Last call (epoch seconds).
    pub last_call: f64,
    /// Seconds between first and last call.
    pub duration_seconds: f64,
    /// Calls per model used.
    pub models: BTreeMap<String, u64>,
    /// Calls per function.
    pub functions: BTreeMap<String, u64>,
    /// Anchor (主播) of the session, if recorded.
    pub anchor_id: Option<String>,
    /// User of the session, if recorded.
    pub user_id: Option<String>,
}

impl SessionSummary {
    pub(crate) fn from_stats(s: &SessionStats, reporting: Currency) -> SessionSummary {
        let currency = main_currency(&s.stats.cost, reporting);
        SessionSummary {
            session_id: s.session_id.clone(),
            calls: s.stats.calls,
            successful_calls: s.stats.successful_calls,
            input_tokens: s.stats.input_tokens,
            output_tokens: s.stats.output_tokens,
            total_tokens: s.stats.total_tokens,
            cost: s.stats.cost.get(currency),
            currency,
            costs: s.stats.cost.clone(),
            first_call: s.first_call,
            last_call: s.last_call,
            duration_seconds: (s.last_call - s.first_call).max(0.0),
            models: s.models.to_map(),
            functions: s.functions.to_map(),
            anchor_id: s.anchor_id.clone(),
            user_id: s.user_id.clone(),
        }
    }
}

/// Sessions of `rollups`, most recent first (at most `limit`).
pub fn recent_sessions(
    rollups: &Rollups,
    limit: usize,
    reporting: Currency,
) -> Vec<SessionSummary> {
    let mut v: Vec<&SessionStats> = rollups.sessions.values().collect();
    v.sort_by(|a, b| b.last_call.total_cmp(&a.last_call));
    v.into_iter()
        .take(limit)
        .map(|s| SessionSummary::from_stats(s, reporting))
        .collect()
}
