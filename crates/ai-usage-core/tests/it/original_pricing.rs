//! `pricing/original-service.toml` (repository root) reproduces the original
//! service's numbers: the figures its users reported and the costs in its records.

use std::path::PathBuf;

use ai_usage_core::{Currency, PricingTable, TokenUsage, UsageRecord};

fn repo_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

/// The built-in table with the original's table merged over it, as
/// `ai-usage --pricing pricing/original-service.toml` builds it.
fn original() -> PricingTable {
    let mut t = PricingTable::builtin();
    let n = t
        .load_file(&repo_file("pricing/original-service.toml"))
        .expect("the shipped file loads");
    assert!(n >= 20, "only {n} models");
    t
}

fn cny(t: &PricingTable, model: &str, input: u64, output: u64) -> String {
    let q = t.price(model, &TokenUsage::new(input, output));
    assert!(q.priced, "{model} unknown");
    assert_eq!(q.currency, Currency::CNY, "{model}");
    q.cost.to_string()
}

#[test]
fn the_originals_figures() {
    let t = original();
    assert_eq!(cny(&t, "qwen-plus", 1000, 500), "0.010000");
    assert_eq!(cny(&t, "gpt-4", 1000, 500), "0.420000");
    assert_eq!(cny(&t, "doubao-lite-32k", 1000, 500), "0.004500");
    // Its qwen3-max: the first 32,000 input tokens free, then ¥0.006 / ¥0.06.
    assert_eq!(cny(&t, "qwen3-max", 12_416, 1118), "0.067080");
    assert_eq!(cny(&t, "qwen3-max", 51_056, 409), "0.138876");
    // Its Gemini preview and GPT-3.5 in CNY, not our USD defaults.
    assert_eq!(
        cny(&t, "gemini-2.5-flash-preview-09-2025", 1000, 1000),
        "0.005250"
    );
    assert_eq!(cny(&t, "gpt-3.5-turbo", 1000, 1000), "0.024500");
}

#[test]
fn every_model_and_alias_of_the_file_is_priced_in_cny() {
    let text = std::fs::read_to_string(repo_file("pricing/original-service.toml")).unwrap();
    let file: toml::Table = toml::from_str(&text).unwrap();
    let models = file["models"].as_table().unwrap();
    let aliases = file["aliases"].as_table().unwrap();
    let t = original();
    for name in models.keys().chain(aliases.keys()) {
        let (_, p) = t.resolve(name).unwrap_or_else(|| panic!("{name} unknown"));
        assert_eq!(p.currency, Currency::CNY, "{name}");
        let source = p.source.as_deref().unwrap_or_default();
        assert!(source.starts_with("the original ("), "{name}: {source}");
        assert!(
            source.contains("verified") || source.contains("reconstructed"),
            "{name}: {source}"
        );
        assert_ne!(t.display_name(name), *name, "{name} has no display name");
    }
    // The models the built-in table once called unknown are in the file.
    for name in [
        "gpt-4",
        "deepseek-coder",
        "glm-3-turbo",
        "lite",
        "generalv3",
        "generalv3.5",
        "4.0Ultra",
        "gpt-4-1106-preview",
        "gpt-4-turbo-preview",
        "gpt-4.1-mini",
        "gemini-2.5-flash-preview-09-2025",
    ] {
        let in_file = models.keys().chain(aliases.keys()).any(|k| k == name);
        assert!(in_file, "{name} missing from the file");
    }
}

/// Every record of the seed fixture whose model the file prices gets the cost
/// the original stored, except the fixture's hand-edited records (costs no
/// price table gives, kept to test that stored costs are never re-priced).
#[test]
fn the_file_reproduces_the_costs_the_original_recorded() {
    let t = original();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/seed-records/records");
    let (mut checked, mut differ) = (0, Vec::new());
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in text.lines() {
            let Ok(r) = serde_json::from_str::<UsageRecord>(line) else {
                continue;
            };
            if t.resolve(&r.model).is_none() {
                continue;
            }
            let q = t.price(&r.model, &TokenUsage::new(r.input_tokens, r.output_tokens));
            checked += 1;
            if q.cost != r.cost {
                differ.push((r.model.clone(), r.input_tokens, r.output_tokens, r.cost));
            }
        }
    }
    assert!(checked > 700, "{checked} records checked");
    // The hand-edited ones: costs far off any rate (e.g. ¥0.4315 for 3589/486 of qwen-plus).
    assert_eq!(differ.len(), 24, "{differ:?}");
}
