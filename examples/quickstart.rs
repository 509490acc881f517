//! Records a few calls the way the seed guide does (方法 2: 手动记录) and
//! prints today's summary.
//!
//! `cargo run --example quickstart` (records into `records/ai_usage`, or
//! `AI_USAGE_DIR`).

use ai_usage_monitor::{
    get_usage_monitor, init_global, record_ai_usage, MonitorBuilder, UsageEvent,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Optional: configure the global monitor; the guard flushes it at exit.
    let _guard = init_global(MonitorBuilder::default())?;

    // 实时分析 with qwen-plus for one anchor's broadcast.
    let rec = record_ai_usage(
        &UsageEvent::new("qwen-plus", "实时分析")
            .tokens(1200, 350)
            .duration_ms(850.0)
            .anchor("anchor_123")
            .session("live_20251026_123456"),
    );
    println!("recorded {} for ¥{}", rec.model, rec.cost);

    // 话术生成 with a cheaper model, and a failed 问答 call.
    record_ai_usage(
        &UsageEvent::new("qwen-turbo", "话术生成")
            .tokens(800, 600)
            .duration_ms(640.0)
            .user("user_42"),
    );
    record_ai_usage(
        &UsageEvent::new("deepseek-chat", "问答")
            .tokens(300, 0)
            .duration_ms(30_000.0)
            .failed("timeout"),
    );

    let monitor = get_usage_monitor();
    let today = monitor.get_daily_summary(0);
    println!("今日调用: {}", today.total_calls);
    println!("今日费用: ¥{:.2}", today.total_cost);
    if let Some(s) = monitor.get_session_stats("live_20251026_123456") {
        println!("本场直播AI成本: ¥{:.4}", s.cost);
    }
    println!("{}", serde_json::to_string_pretty(&today)?);
    Ok(())
}
