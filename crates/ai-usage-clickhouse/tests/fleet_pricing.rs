//! The fleet's answers follow the price catalogue in force: a `serve
//! --clickhouse` monitor that takes up a catalogue installed (or rolled
//! back) by `ai-usage pricing update` reprices the fleet's answers (model
//! names, savings advice) without a restart, against a real ClickHouse.

mod common;

use std::path::Path;
use std::time::Duration;

use ai_usage_clickhouse::{schema, FleetQueries, Shipper, ShipperConfig};
use ai_usage_core::catalogue::{Catalogue, CatalogueUsage};
use ai_usage_core::installed::{CatalogueStore, Origin};
use ai_usage_core::{Currency, Money, PricingTable, UsageEvent, UsageMonitor, Zone};
use common::Server;
use serde_json::Value;

/// The built-in snapshot (the newer catalogue is made from it).
const SNAPSHOT: &str = include_str!("../../ai-usage-core/data/genai-prices/data_slim.json");
const NEW_MODEL: &str = "gpt-9-nova";
const NEW_NAME: &str = "GPT-9 Nova";
const FUNCTION: &str = "摘要";
const CALLS: u64 = 10;
const INPUT: u64 = 2000;
const OUTPUT: u64 = 1000;

/// The snapshot with a new, cheap OpenAI model: a newer release.
fn newer_catalogue() -> Vec<u8> {
    let mut v: Value = serde_json::from_str(SNAPSHOT).unwrap();
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
            "id": NEW_MODEL,
            "name": NEW_NAME,
            "match": {"equals": NEW_MODEL},
            "prices": {"input_mtok": 0.01, "output_mtok": 0.02}
        }));
    serde_json::to_vec(&v).unwrap()
}

fn origin(bytes: &[u8]) -> Origin {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    Origin {
        source: "test:newer".into(),
        fetched_at: chrono::Utc::now(),
        date: chrono::Utc::now().date_naive(),
        sha256: format!("{:016x}", h.finish()).repeat(4),
    }
}

fn zone() -> Zone {
    "Asia/Shanghai".parse().unwrap()
}

/// Ships `dir` to the `fleet` database as one host.
fn ship(server: &Server, dir: &Path) {
    let mut cfg = ShipperConfig::new(dir, server.endpoint("fleet"));
    cfg.host_id = Some("host-a".into());
    Shipper::open(cfg)
        .unwrap()
        .ship_all(Duration::from_secs(10))
        .unwrap();
}

/// The new model's display name in the fleet's summary of today.
fn new_model_name(q: &FleetQueries) -> Option<String> {
    let s = q.summary_for_date(zone().today()).unwrap();
    s.by_model[NEW_MODEL].display_name.clone()
}

/// The fleet's savings alternatives for the gpt-4o function: (id, cost).
fn alternatives(q: &FleetQueries) -> Vec<(String, Money)> {
    let report = q.savings(1).unwrap();
    let f = report
        .functions
        .iter()
        .find(|f| f.function == FUNCTION)
        .expect("the function's advice");
    assert_eq!(f.currency, Currency::USD);
    f.alternatives
        .iter()
        .map(|a| (a.model.clone(), a.cost))
        .collect()
}

#[test]
fn the_fleets_answers_follow_an_installed_and_a_rolled_back_catalogue() {
    let Some(server) = Server::start() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let monitor = UsageMonitor::builder()
        .dir(dir)
        .timezone(zone())
        .replay(false)
        .build()
        .unwrap();
    for _ in 0..CALLS {
        monitor.record(&UsageEvent::new("gpt-4o", FUNCTION).tokens(INPUT, OUTPUT));
    }
    let unknown = monitor.record(&UsageEvent::new(NEW_MODEL, "新功能").tokens(INPUT, OUTPUT));
    assert_eq!(
        unknown.priced,
        Some(false),
        "the snapshot does not know {NEW_MODEL}"
    );
    monitor.flush().unwrap();
    schema::migrate_in(&server.client("fleet"), &zone()).unwrap();
    ship(&server, dir);

    // As `serve --clickhouse` builds them: the monitor's live table; and
    // queries with a fixed table, for comparison.
    let live = FleetQueries::new(server.client("fleet"), zone(), PricingTable::builtin())
        .with_pricing_of(monitor.pricing_handle());
    let fixed = FleetQueries::new(server.client("fleet"), zone(), PricingTable::builtin());
    let before = alternatives(&live);
    assert!(before.iter().all(|(id, _)| id != NEW_MODEL));
    assert_eq!(before, alternatives(&fixed));
    assert_eq!(new_model_name(&live).as_deref(), Some(NEW_MODEL));

    let store = CatalogueStore::new(dir);
    let bytes = newer_catalogue();
    store.install(&bytes, origin(&bytes)).unwrap();
    // Installed but not yet taken up: the monitor's table is unchanged.
    assert_eq!(alternatives(&live), before);
    assert!(monitor.refresh_price_catalogue());

    // What the installed catalogue makes of the function's calls.
    let catalogue = Catalogue::from_json(std::str::from_utf8(&bytes).unwrap()).unwrap();
    let nova = catalogue.lookup(Some("openai"), NEW_MODEL).unwrap();
    let usage = CatalogueUsage {
        input_tokens: INPUT,
        output_tokens: OUTPUT,
        ..CatalogueUsage::default()
    };
    let one = nova.quote(&usage, chrono::Utc::now()).unwrap().total_nanos;
    let want = Money::from_nanos(one * CALLS as i64);
    let after = alternatives(&live);
    assert_eq!(
        after
            .iter()
            .find(|(id, _)| id == NEW_MODEL)
            .map(|(_, c)| *c),
        Some(want),
        "{after:?}"
    );
    assert_eq!(
        after[0].0, NEW_MODEL,
        "the cheapest OpenAI model saves the most"
    );
    assert_eq!(new_model_name(&live).as_deref(), Some(NEW_NAME));
    // Queries with a fixed table keep the prices they were given.
    assert_eq!(alternatives(&fixed), before);
    assert_eq!(new_model_name(&fixed).as_deref(), Some(NEW_MODEL));

    // Rolled back: the fleet's answers are the snapshot's again.
    store.rollback().unwrap();
    assert!(monitor.refresh_price_catalogue());
    assert_eq!(alternatives(&live), before);
    assert_eq!(new_model_name(&live).as_deref(), Some(NEW_MODEL));
}
