//! Resolution over the embedded snapshot (needs the private matchers to build
//! names each model advertises).

use super::*;
use crate::record::usage::TokenUsage;

fn builtin() -> &'static Catalogue {
    Catalogue::builtin().expect("the embedded catalogue loads")
}

/// Candidate names from a rule's literals (regex-only rules give none); the
/// caller keeps those the rule accepts.
fn names_accepted_by(m: &Matcher, out: &mut Vec<String>) {
    match m {
        Matcher::Equals(s)
        | Matcher::StartsWith(s)
        | Matcher::EndsWith(s)
        | Matcher::Contains(s) => out.push(s.to_string()),
        Matcher::Regex(_) => {}
        Matcher::Or(items) => items.iter().for_each(|i| names_accepted_by(i, out)),
        Matcher::And(items) => {
            // A name satisfying one branch may satisfy all (e.g. two `contains`
            // of which one includes the other); else join the literals.
            let mut parts = Vec::new();
            items.iter().for_each(|i| names_accepted_by(i, &mut parts));
            out.extend(parts.iter().cloned());
            out.push(parts.join("-"));
        }
    }
}

#[test]
fn every_model_resolves_by_a_name_it_accepts() {
    let c = builtin();
    let mut unreachable = Vec::new();
    let mut checked = 0;
    for provider in c.providers.iter() {
        for model in provider.models.iter() {
            let mut names = vec![model.id.to_lowercase()];
            names_accepted_by(&model.matcher, &mut names);
            let resolves_here = names.iter().filter(|n| model.matcher.is_match(n)).any(|n| {
                c.lookup(Some(&provider.id), n).is_some_and(|m| {
                    std::ptr::eq(m.model, model) && std::ptr::eq(m.provider, provider)
                })
            });
            if resolves_here {
                checked += 1;
            } else {
                unreachable.push(format!("{}/{} (tried {names:?})", provider.id, model.id));
            }
        }
    }
    assert!(
        unreachable.is_empty(),
        "models no accepted name reaches: {unreachable:#?}"
    );
    assert_eq!(checked, c.models().count());
    assert!(
        checked > 1_000,
        "the snapshot has ~1,300 models, saw {checked}"
    );
}

#[test]
fn regex_only_models_resolve_by_example_names() {
    let c = builtin();
    let m = c
        .lookup(Some("x-ai"), "grok-4.3-20260401")
        .expect("regex rule");
    assert_eq!((m.provider_id(), m.model_id()), ("x-ai", "grok-4.3"));
    let m = c
        .lookup(None, "gemini-3.5-flash-001")
        .expect("regex rule, provider by model_match");
    assert_eq!(
        (m.provider_id(), m.model_id()),
        ("google", "gemini-3.5-flash")
    );
}

#[test]
fn provider_hint_by_id_url_or_rule() {
    let c = builtin();
    let expect = |hint: &str, model: &str, provider: &str, id: &str| {
        let m = c
            .lookup(Some(hint), model)
            .unwrap_or_else(|| panic!("{hint} / {model}"));
        assert_eq!(
            (m.provider_id(), m.model_id()),
            (provider, id),
            "{hint} / {model}"
        );
    };
    expect(
        "anthropic",
        "claude-sonnet-4-5-20250929",
        "anthropic",
        "claude-sonnet-4-5",
    );
    expect(
        "Anthropic",
        "claude-sonnet-4-5",
        "anthropic",
        "claude-sonnet-4-5",
    );
    expect(
        "https://api.anthropic.com/v1/messages",
        "claude-haiku-4-5",
        "anthropic",
        "claude-haiku-4-5",
    );
    expect("https://api.openai.com/v1", "gpt-4o", "openai", "gpt-4o");
    // provider_match rules: {"or": [contains bedrock, contains amazon]}.
    expect(
        "amazon-bedrock",
        "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "aws",
        "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
    );
    expect(
        "https://bedrock-runtime.us-east-1.amazonaws.com",
        "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "aws",
        "regional.anthropic.claude-sonnet-4-5-20250929-v1:0",
    );
    // Azure lists o3 itself and falls back to OpenAI for gpt-4o.
    expect(
        "https://my-res.openai.azure.com/openai/deployments/x",
        "o3",
        "azure",
        "o3-2025-04-16",
    );
    expect("azure", "gpt-4o-mini", "openai", "gpt-4o-mini");
}

#[test]
fn and_rule_needs_every_branch() {
    let c = builtin();
    // huggingface_groq: {"and": [contains huggingface, contains groq]}.
    let m = c.lookup(
        Some("huggingface-groq"),
        "meta-llama/Llama-3.3-70B-Instruct",
    );
    assert_eq!(m.map(|m| m.provider_id()), Some("huggingface_groq"));
    // "my-groq" satisfies one branch only, and groq has no provider_match.
    assert!(c
        .lookup(Some("my-groq"), "meta-llama/llama-3.3-70b-instruct")
        .is_none());
    let m = c
        .lookup(Some("groq"), "llama-3.3-70b-versatile")
        .expect("groq by id");
    assert_eq!(m.provider_id(), "groq");
}

#[test]
fn without_a_hint_model_match_picks_the_provider() {
    let c = builtin();
    let id = |model: &str| {
        c.lookup(None, model)
            .map(|m| (m.provider_id(), m.model_id()))
    };
    assert_eq!(id("gpt-4o-2024-08-06"), Some(("openai", "gpt-4o")));
    assert_eq!(id("GPT-4o"), Some(("openai", "gpt-4o")), "case-insensitive");
    assert_eq!(
        id("claude-opus-4-6"),
        Some(("anthropic", "claude-opus-4-6"))
    );
    assert_eq!(id("deepseek-chat"), Some(("deepseek", "deepseek-chat")));
    assert_eq!(id("o3"), Some(("openai", "o3")));
    // No provider's model_match accepts these: not guessed from resellers.
    assert_eq!(id("qwen-plus"), None);
    assert_eq!(id("llama-3.3-70b-versatile"), None);
    // A hint naming no catalogue provider resolves nothing: DashScope hosts
    // DeepSeek models at its own CNY prices, not DeepSeek's USD ones.
    assert!(c.lookup(Some("dashscope"), "deepseek-r1").is_none());
    assert!(c.lookup(None, "deepseek-r1").is_some());
    assert!(
        c.lookup(Some(" "), "gpt-4o").is_some(),
        "a blank hint is no hint"
    );
    // A known provider without the model does not borrow another's price.
    assert!(c.lookup(Some("openai"), "claude-sonnet-4-5").is_none());
}

#[test]
fn resolutions_are_cached_misses_included_and_bounded() {
    let c = Catalogue::from_json(
        r#"[{"id": "p", "name": "P", "api_pattern": "https://p\\.example", "model_match": {"starts_with": "m-"},
             "models": [{"id": "m-1", "match": {"equals": "m-1"}, "prices": {"input_mtok": 1}}]}]"#,
    )
    .expect("valid catalogue");
    assert!(c.lookup(None, "m-1").is_some());
    assert!(c.lookup(None, "nope").is_none());
    assert!(c.lookup(Some("p"), "m-1").is_some());
    {
        let cache = c.cache.read();
        assert_eq!(cache.len, 3);
        assert_eq!(cache.by_hint[""]["m-1"], Some((0, 0)));
        assert_eq!(cache.by_hint[""]["nope"], None);
    }
    for i in 0..MAX_CACHED_NAMES + 10 {
        let _ = c.lookup(None, &format!("m-{i}"));
    }
    assert_eq!(c.cache.read().len, MAX_CACHED_NAMES);
    // Past the bound, names still resolve.
    assert!(c.lookup(Some("https://p.example/v1"), "M-1").is_some());
}

#[test]
fn deepseek_prices_have_a_daily_window() {
    let c = builtin();
    let m = c.lookup(None, "deepseek-chat").expect("in catalogue");
    let sets = m.model.prices.sets();
    assert_eq!(sets.len(), 2);
    assert!(matches!(sets[1].0, price::Constraint::Daily { .. }));
}

#[test]
fn fallback_ids_and_currencies_are_checked_at_load() {
    let bad_fallback = r#"[{"id": "p", "name": "P", "api_pattern": "x", "fallback_model_providers": ["q"], "models": []}]"#;
    let err = Catalogue::from_json(bad_fallback).expect_err("unknown fallback");
    assert!(
        err.to_string().contains("unknown fallback provider"),
        "{err}"
    );
    let eur = r#"[{"id": "p", "name": "P", "api_pattern": "x", "currency": "eur",
        "models": [{"id": "m", "match": {"equals": "m"}, "prices": {"input_mtok": 1}}]}]"#;
    let c = Catalogue::from_json(eur).expect("valid");
    assert!(
        c.lookup(None, "m").is_none(),
        "no model_match: needs a hint"
    );
    let m = c.lookup(Some("p"), "m").expect("by hint");
    assert_eq!(m.currency(), Currency::new("EUR").expect("valid code"));
    let image = r#"[{"id": "p", "name": "P", "api_pattern": "x",
        "models": [{"id": "m", "match": {"equals": "m"}, "prices": {"input_image_mtok": 1}}]}]"#;
    assert!(matches!(
        Catalogue::from_json(image),
        Err(CatalogueError::Format(_))
    ));
}

#[test]
fn recorded_usage_converts_with_cached_tokens_as_cache_reads() {
    let recorded = TokenUsage {
        input_tokens: 1200,
        output_tokens: 900,
        total_tokens: Some(2100),
        cached_input_tokens: 1024,
        reasoning_tokens: 640,
        ..TokenUsage::default()
    };
    let u = CatalogueUsage::from(&recorded);
    assert_eq!(
        (
            u.input_tokens,
            u.cache_read_tokens,
            u.output_tokens,
            u.reasoning_tokens,
            u.requests
        ),
        (1200, 1024, 900, 640, 1)
    );
    // o3 since 2025-06-10: 176 × $2 + 1024 × $0.50 + 900 × $8 (per M).
    let at = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 1, 1, 0, 0, 0)
        .single()
        .expect("valid");
    let q = builtin()
        .price(Some("openai"), "o3", &u, at)
        .expect("priced");
    assert_eq!(q.total_nanos, 352_000 + 512_000 + 7_200_000);
}

#[test]
fn recorded_cache_writes_and_audio_are_priced_at_their_rates() {
    // claude-sonnet-4-5 (Anthropic): input $3, cache write $3.75, cache read
    // $0.30, output $15 per M. 5,005 input = 5 fresh + 4,000 read + 1,000 written.
    let recorded = TokenUsage {
        input_tokens: 5_005,
        output_tokens: 50,
        cached_input_tokens: 4_000,
        cache_write_tokens: 1_000,
        ..TokenUsage::default()
    };
    let u = CatalogueUsage::from(&recorded);
    assert_eq!((u.cache_read_tokens, u.cache_write_tokens), (4_000, 1_000));
    let at = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 1, 1, 0, 0, 0)
        .single()
        .expect("valid");
    let q = builtin()
        .price(Some("anthropic"), "claude-sonnet-4-5", &u, at)
        .expect("priced");
    assert_eq!(q.parts.cache_write.nanos, 3_750_000);
    assert_eq!(q.parts.cache_read.nanos, 1_200_000);
    assert_eq!(q.parts.uncached_input.nanos, 15_000);
    assert_eq!(q.parts.output.nanos, 750_000);
    assert_eq!(q.total_nanos, 3_750_000 + 1_200_000 + 15_000 + 750_000);

    // gpt-audio (input $2.50, output $10, audio in $32, audio out $64 per M):
    // audio tokens are parts of the totals, priced at the audio rates.
    let audio = TokenUsage {
        input_tokens: 1_000,
        output_tokens: 500,
        input_audio_tokens: 400,
        output_audio_tokens: 300,
        ..TokenUsage::default()
    };
    let q = builtin()
        .price(
            Some("openai"),
            "gpt-audio",
            &CatalogueUsage::from(&audio),
            at,
        )
        .expect("priced");
    let p = q.parts;
    assert_eq!((p.uncached_input.units, p.input_audio.units), (600, 400));
    assert_eq!((p.output.units, p.output_audio.units), (200, 300));
    assert_eq!(
        (
            p.uncached_input.nanos,
            p.input_audio.nanos,
            p.output.nanos,
            p.output_audio.nanos
        ),
        (1_500_000, 12_800_000, 2_000_000, 19_200_000)
    );
    assert_eq!(q.total_nanos, 35_500_000);
}
