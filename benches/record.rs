//! Caller-side cost of recording one AI call: ours against the common Rust
//! alternative, a `tracing` event through `tracing-subscriber`'s JSON layer
//! into `tracing-appender`'s non-blocking file writer, both ending in a file
//! in a temp dir. Run: `cargo bench --bench record`.

use std::hint::black_box;

use ai_usage_monitor::{FsyncPolicy, UsageEvent, UsageMonitor};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use tracing_subscriber::layer::SubscriberExt;

const BATCH: u64 = 1000;

fn event(i: u64) -> UsageEvent<'static> {
    const MODELS: [&str; 3] = ["qwen-plus", "deepseek-chat", "qwen-max"];
    UsageEvent::new(MODELS[(i % 3) as usize], "实时分析")
        .tokens(1200 + i % 500, 300)
        .duration_ms(850.0)
        .user("user_42")
        .anchor("anchor_001")
        .session("live_20251026_123456")
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("record_1000_calls");
    g.throughput(Throughput::Elements(BATCH));

    let ours_dir = tempfile::tempdir().expect("temp dir");
    let monitor = UsageMonitor::builder()
        .dir(ours_dir.path())
        .replay(false)
        .fsync(FsyncPolicy::Interval(std::time::Duration::from_secs(1)))
        .build()
        .expect("monitor");
    g.bench_function("ai_usage_monitor", |b| {
        b.iter_batched(
            || (),
            |_| {
                for i in 0..BATCH {
                    black_box(monitor.record(&event(i)));
                }
            },
            BatchSize::SmallInput,
        )
    });

    let theirs_dir = tempfile::tempdir().expect("temp dir");
    let appender = tracing_appender::rolling::never(theirs_dir.path(), "usage.jsonl");
    // Lossless, like ours (its default drops lines when its queue is full).
    let (writer, _guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(appender);
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().json().with_writer(writer));
    tracing::subscriber::with_default(subscriber, || {
        g.bench_function("tracing_json_non_blocking", |b| {
            b.iter_batched(
                || (),
                |_| {
                    for i in 0..BATCH {
                        let e = event(i);
                        tracing::info!(
                            model = e.model,
                            function = e.function,
                            input_tokens = e.usage.input_tokens,
                            output_tokens = e.usage.output_tokens,
                            duration_ms = e.duration_ms,
                            user_id = e.user_id,
                            anchor_id = e.anchor_id,
                            session_id = e.session_id,
                            success = e.success,
                            "ai_usage"
                        );
                    }
                },
                BatchSize::SmallInput,
            )
        });
    });
    g.finish();
    monitor.flush().expect("flush");
}

criterion_group!(benches, bench);
criterion_main!(benches);
