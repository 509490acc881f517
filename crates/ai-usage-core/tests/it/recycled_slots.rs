//! The writer recycles the records it has written as queue slots: a plain
//! record that reuses the slot of a richer one must not inherit its fields.

use ai_usage_core::{UsageEvent, UsageMonitor, UsageRecord};

#[test]
fn a_recycled_slot_keeps_nothing_of_the_previous_record() {
    let dir = tempfile::tempdir().unwrap();
    let m = UsageMonitor::builder()
        .dir(dir.path())
        .replay(false)
        .build()
        .unwrap();
    let rich = UsageEvent::new("claude-sonnet-4-5", "对话")
        .tokens(5_000, 300)
        .cached_tokens(1_000)
        .cache_write_tokens(2_000)
        .audio_tokens(500, 40)
        .provider("anthropic");
    for _ in 0..50 {
        m.record(&rich);
    }
    // Written: the 50 records go back to the queue as spare slots.
    m.flush().unwrap();
    let plain = UsageEvent::new("qwen-plus", "问答").tokens(100, 20);
    for _ in 0..50 {
        m.record(&plain);
    }
    m.flush().unwrap();

    let mut records: Vec<UsageRecord> = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "jsonl") {
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                records.push(serde_json::from_str(line).unwrap());
            }
        }
    }
    assert_eq!(records.len(), 100);
    let plain: Vec<&UsageRecord> = records.iter().filter(|r| r.model == "qwen-plus").collect();
    assert_eq!(plain.len(), 50);
    for r in plain {
        assert_eq!(
            (
                r.cache_write_tokens,
                r.input_audio_tokens,
                r.output_audio_tokens,
                r.cached_input_tokens,
                r.provider.as_deref(),
            ),
            (0, 0, 0, 0, None),
            "{r:?}"
        );
    }
    let rich: Vec<&UsageRecord> = records
        .iter()
        .filter(|r| r.model == "claude-sonnet-4-5")
        .collect();
    assert!(rich.iter().all(|r| r.cache_write_tokens == 2_000
        && r.input_audio_tokens == 500
        && r.output_audio_tokens == 40
        && r.provider.as_deref() == Some("anthropic")));
}
