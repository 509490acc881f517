//! A flood of unique ids: rollup memory stays within the documented bound
//! (counted in groups), totals stay exact, and the daily summary stays small
//! because every group list is capped and says what it left out.

use ai_usage_core::{
    UsageEvent, UsageMonitor, MAX_IDS_PER_DAY, MAX_IDS_PER_HOUR, MAX_NAMES_PER_DAY,
    MAX_NAMES_PER_HOUR, MAX_SESSIONS, OTHER_GROUP,
};

#[test]
fn unique_ids_flood_is_bounded() {
    const N: u64 = 100_000;
    let tmp = tempfile::tempdir().unwrap();
    let zone: ai_usage_core::Zone = "+08:00".parse().unwrap();
    let m = UsageMonitor::builder()
        .dir(tmp.path())
        .timezone(zone)
        .build()
        .unwrap();
    let now = ai_usage_core::now_timestamp();
    for i in 0..N {
        let (u, a, s, md, f) = (
            format!("user-{i}"),
            format!("anchor-{i}"),
            format!("session-{i}"),
            format!("model-{i}"),
            format!("function-{i}"),
        );
        m.record(
            &UsageEvent::new(&md, &f)
                .tokens(10, 1)
                .user(&u)
                .anchor(&a)
                .session(&s)
                .at(now),
        );
    }
    m.flush().unwrap();
    // The documented bound for one day (+1 for `(other)` in each map): users
    // and anchors, models, functions and pairs per day and per hour, and the
    // sessions.
    let day = 2 * (MAX_IDS_PER_DAY + 1) + 3 * (MAX_NAMES_PER_DAY + 1);
    let hours = 24 * (2 * (MAX_IDS_PER_HOUR + 1) + 2 * (MAX_NAMES_PER_HOUR + 1));
    let bound = day + hours + MAX_SESSIONS + 1;
    let groups = m.health().rollup_groups as usize;
    assert!(groups <= bound, "{groups} groups > {bound}");
    // Without caps there would be 9 groups per record (+ the session).
    assert!(groups < 5 * N as usize, "{groups} groups for {N} records");

    let date = zone.date_of(now);
    let s = m.get_summary_for_date(date);
    assert_eq!(s.total_calls, N, "totals stay exact");
    assert_eq!(s.total_input_tokens, 10 * N);
    for list in [&s.by_model, &s.by_function, &s.by_user, &s.by_anchor] {
        assert!(list.len() <= 1000, "{}", list.len());
    }
    assert_eq!(s.model_count as usize, MAX_NAMES_PER_DAY + 1);
    assert_eq!(s.function_count as usize, MAX_NAMES_PER_DAY + 1);
    assert_eq!(s.user_count, N.min(MAX_IDS_PER_DAY as u64));
    assert!(s.groups_truncated);
    let names_left_out = (MAX_NAMES_PER_DAY + 1 - 1000) as u64;
    assert_eq!(s.truncated.get("by_model"), Some(&names_left_out));
    assert_eq!(s.truncated.get("by_function"), Some(&names_left_out));
    assert_eq!(s.truncated.get("by_user"), Some(&(s.user_count - 1000)));
    assert_eq!(s.truncated.get("by_anchor"), Some(&(s.anchor_count - 1000)));
    // The overflow group holds everything past the cap (and, being the
    // biggest, is listed).
    assert_eq!(
        s.by_model.get(OTHER_GROUP).map(|g| g.calls),
        Some(N - MAX_NAMES_PER_DAY as u64)
    );
    let json = serde_json::to_string(&s).unwrap();
    assert!(
        json.len() < 2_000_000,
        "daily summary is {} bytes",
        json.len()
    );

    // A restart replays into the same bounds and the same totals.
    drop(m);
    let again = UsageMonitor::builder()
        .dir(tmp.path())
        .timezone(zone)
        .build()
        .unwrap();
    assert!(again.wait_until_loaded(std::time::Duration::from_secs(60)));
    let groups_after = again.health().rollup_groups as usize;
    assert!(groups_after <= bound, "{groups_after} groups after replay");
    let s2 = again.get_summary_for_date(date);
    assert_eq!((s2.total_calls, s2.total_input_tokens), (N, 10 * N));
}
