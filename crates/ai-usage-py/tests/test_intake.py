"""The intake rules every door shares, through Python: bad values raise
ValueError naming the field and nothing is counted; a far-future line on
disk never empties the day's totals."""

import json
import time
import pytest

from ai_usage_monitor import AIUsageMonitor


def _record_50(monitor):
    for _ in range(50):
        monitor.record_usage("qwen-plus", "f", 10, 2, 1.0, session_id="s1")


def test_millisecond_timestamp_raises_and_keeps_the_day(monitor):
    _record_50(monitor)
    with pytest.raises(ValueError, match="timestamp"):
        monitor.record_usage("qwen-plus", "f", 10, 2, 1.0, timestamp=time.time() * 1000)
    with pytest.raises(ValueError, match="timestamp"):
        monitor.record_usage("qwen-plus", "f", 10, 2, 1.0, timestamp=1.0)
    # An hour ago is fine.
    monitor.record_usage("qwen-plus", "f", 10, 2, 1.0, timestamp=time.time() - 3600)
    day = monitor.get_daily_summary(0)
    # The hour-old call may fall on yesterday just after midnight.
    assert day.total_calls in (50, 51)
    assert monitor.get_session_stats("s1")["calls"] == 50


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"cost": -1.0}, "cost"),
        ({"input_tokens": -5}, "input_tokens"),
        ({"cached_input_tokens": -1}, "cached_input_tokens"),
        ({"user_id": "u\x1b[31m"}, "user_id"),
        ({"anchor_id": "a\r"}, "anchor_id"),
        ({"session_id": "s" * 257}, "session_id"),
        ({"request_id": "r\n"}, "request_id"),
    ],
)
def test_bad_values_raise_naming_the_field(monitor, kwargs, field):
    args = {"model": "qwen-plus", "function": "f", "input_tokens": 10, "output_tokens": 2,
            "duration_ms": 1.0}
    args.update(kwargs)
    with pytest.raises(ValueError, match=field):
        monitor.record_usage(**args)
    assert monitor.get_daily_summary(0).total_calls == 0


def test_a_far_future_line_on_disk_is_skipped(records_dir, monitor):
    _record_50(monitor)
    monitor.flush()
    files = sorted(records_dir.glob("usage_*.jsonl"))
    assert files, "no day file written"
    line = {"timestamp": 4102444800.0, "user_id": None, "anchor_id": None, "session_id": None,
            "model": "qwen-plus", "function": "f", "input_tokens": 1, "output_tokens": 1,
            "total_tokens": 2, "cost": 0.0, "duration_ms": 1.0, "success": True,
            "error_msg": None}
    # Appended to today's file (the newest one), as another process would.
    with open(files[-1], "a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")
    # A second process (a new monitor on the same directory) replays it.
    other = AIUsageMonitor(records_dir)
    try:
        assert other.get_daily_summary(0).total_calls == 50
        assert other.health()["out_of_window_records"] == 1
    finally:
        other.shutdown()
