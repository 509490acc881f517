"""Measures the two figures the package promises (see README.md):

- ``record_usage`` from Python: p50 ≤ 5 µs per call;
- ``get_daily_summary`` over 100,000 records of the day: ≤ 2 ms.

Run against an optimised build (``pip install ./crates/ai-usage-py``, which
builds in release mode), not ``maturin develop``'s debug build:

    python crates/ai-usage-py/bench.py [--records 100000]

Exits 1 when a figure misses its target, so CI can run it as a check.
"""

import argparse
import statistics
import sys
import tempfile
import time

from ai_usage_monitor import AIUsageMonitor

RECORD_P50_TARGET_US = 5.0
SUMMARY_TARGET_MS = 2.0


def percentile(sorted_values, q):
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--summaries", type=int, default=200)
    args = ap.parse_args()

    models = ["qwen-plus", "qwen-turbo", "qwen-max", "deepseek-chat", "gpt-4o-mini"]
    functions = ["实时分析", "话术生成", "直播复盘", "问答"]
    with tempfile.TemporaryDirectory() as d:
        m = AIUsageMonitor(d)
        rec = m.record_usage
        clock = time.perf_counter_ns
        samples = []
        # Realistic calls: a user, an anchor and a session each.
        for i in range(args.records):
            model = models[i % 5]
            function = functions[i % 4]
            user = f"user_{i % 200}"
            anchor = f"anchor_{i % 20}"
            t0 = clock()
            rec(model, function, 1200, 300, 850.0, user_id=user, anchor_id=anchor, session_id=anchor)
            samples.append(clock() - t0)
        samples.sort()
        p50_us = percentile(samples, 0.50) / 1000
        p99_us = percentile(samples, 0.99) / 1000
        m.flush()

        times = []
        for _ in range(args.summaries):
            t0 = clock()
            s = m.get_daily_summary()
            times.append(clock() - t0)
        assert s.total_calls >= args.records, s.total_calls  # the day holds them all
        times.sort()
        summary_ms = statistics.median(times) / 1e6
        m.shutdown()

    print(f"record_usage: p50 {p50_us:.2f} µs, p99 {p99_us:.2f} µs over {args.records} calls "
          f"(target p50 ≤ {RECORD_P50_TARGET_US} µs)")
    print(f"get_daily_summary at {args.records} records ({len(s.by_user)} users, "
          f"{len(s.by_anchor)} anchors): median {summary_ms:.3f} ms over {args.summaries} calls "
          f"(target ≤ {SUMMARY_TARGET_MS} ms)")
    ok = p50_us <= RECORD_P50_TARGET_US and summary_ms <= SUMMARY_TARGET_MS
    print("OK" if ok else "MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
