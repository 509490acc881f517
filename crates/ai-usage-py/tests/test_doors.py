"""Careless and hostile input at the Python door: forks while other threads
record, interrupted decorated calls, query arguments out of range, empty
values. Each must give a clear error or keep working; never a hang, a
`PanicException` or a silently wrong answer."""

import asyncio
import json
import os
import threading
import time

import pytest

import ai_usage_monitor
from ai_usage_monitor import AIUsageMonitor, track_ai_usage


def day_lines(d):
    lines = []
    for f in sorted(d.glob("usage_*.jsonl")):
        lines += f.read_text(encoding="utf-8").splitlines()
    return [json.loads(l) for l in lines]


# -- fork while other threads record -------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX-only")
def test_fork_while_threads_record_keeps_parent_and_children_recording(monitor, records_dir):
    stop = threading.Event()
    parent_calls = [0, 0]

    def recorder(n):
        while not stop.is_set():
            monitor.record_usage("qwen-plus", f"parent-thread-{n}", 10, 5, 1.0)
            parent_calls[n] += 1

    threads = [threading.Thread(target=recorder, args=(n,), daemon=True) for n in range(2)]
    for t in threads:
        t.start()
    time.sleep(0.2)  # the threads are mid-record when the forks happen
    children = []
    for k in range(5):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                m = ai_usage_monitor.get_usage_monitor()
                for i in range(100):
                    m.record_usage("qwen-plus", f"child-{k}", 1, 1, 1.0, user_id=f"c{k}-{i}")
                m.flush()
                code = 0
            finally:
                os._exit(code)
        children.append(pid)
        time.sleep(0.05)
    # Bounded: a child that hangs in flush fails the test instead of the run.
    deadline = time.monotonic() + 60
    statuses = {}
    while len(statuses) < len(children) and time.monotonic() < deadline:
        for pid in children:
            if pid in statuses:
                continue
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                statuses[pid] = status
        time.sleep(0.05)
    hung = [pid for pid in children if pid not in statuses]
    for pid in hung:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    stop.set()
    for t in threads:
        t.join(10)
    assert not hung, f"{len(hung)} of 5 children hung"
    for pid, status in statuses.items():
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, (pid, status)
    monitor.flush()
    recs = day_lines(records_dir)
    for k in range(5):
        users = sorted(r["user_id"] for r in recs if r["function"] == f"child-{k}")
        assert users == sorted(f"c{k}-{i}" for i in range(100)), f"child {k}: {len(users)} lines"
    # The parent kept recording on both threads, every call on disk.
    for n in range(2):
        written = sum(1 for r in recs if r["function"] == f"parent-thread-{n}")
        assert written == parent_calls[n] > 0


# -- the decorator records interrupted calls --------------------------------


def test_cancelled_and_interrupted_calls_are_recorded_and_reraised(monitor):
    @track_ai_usage("slow", "qwen-plus")
    async def slow():
        await asyncio.sleep(10)

    async def cancel_it():
        task = asyncio.ensure_future(slow())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    async def time_out():
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(slow(), 0.01)

    asyncio.run(cancel_it())
    asyncio.run(time_out())

    @track_ai_usage("interrupted", "qwen-plus")
    def interrupted(kind):
        raise kind

    stop = SystemExit(3)
    with pytest.raises(KeyboardInterrupt):
        interrupted(KeyboardInterrupt)
    with pytest.raises(SystemExit) as caught:
        interrupted(stop)
    assert caught.value is stop and caught.value.code == 3  # unchanged

    day = monitor.get_daily_summary()
    assert day.by_function["slow"]["calls"] == 2, day.by_function
    assert day.by_function["interrupted"]["calls"] == 2, day.by_function
    assert day.total_calls == 4 and day.success_rate == 0.0
    monitor.flush()
    errors = sorted(r["error_msg"] for r in day_lines(monitor.data_dir))
    assert errors == ["CancelledError", "CancelledError", "KeyboardInterrupt", "SystemExit: 3"]
    assert all(not r["success"] for r in day_lines(monitor.data_dir))


# -- the same bounds as HTTP and the CLI --------------------------------------


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda m: m.get_daily_summary(2**31), "days_ago"),
        (lambda m: m.get_daily_summary(10**30), "days_ago"),
        (lambda m: m.get_daily_summary(91), "days_ago"),
        (lambda m: m.get_daily_summary(-1), "days_ago"),
        (lambda m: m.get_hourly_summary(73), "hours_ago"),
        (lambda m: m.get_top_users(10, 10**9), "days"),
        (lambda m: m.get_top_users(0, 7), "limit"),
        (lambda m: m.get_top_anchors(10**20, 7), "limit"),
        (lambda m: m.get_top_functions(10, 0), "days"),
        (lambda m: m.get_cost_trend(10**7), "days"),
        (lambda m: m.get_savings(91), "days"),
        (lambda m: m.export_report(days=10**9), "days"),
        (lambda m: m.export_csv(days=0), "days"),
        (lambda m: m.get_monthly_summary(-5, 13), "year"),
        (lambda m: m.get_monthly_summary(2026, 13), "month"),
        (lambda m: m.get_monthly_summary(1999, 12), "year"),
    ],
)
def test_query_arguments_out_of_range_raise_value_error(monitor, call, name):
    started = time.monotonic()
    with pytest.raises(ValueError) as e:
        call(monitor)
    assert f"invalid {name}:" in str(e.value) and "out of range" in str(e.value), e.value
    assert time.monotonic() - started < 5


def test_query_arguments_at_the_bounds_are_answered(monitor, tmp_path):
    monitor.record_usage("qwen-plus", "f", 10, 5, 1.0)
    assert monitor.get_daily_summary(90).total_calls == 0
    assert monitor.get_hourly_summary(72).total_calls == 0
    assert monitor.get_top_users(100, 90) == []
    assert len(monitor.get_cost_trend(90)) == 90
    assert monitor.get_monthly_summary(2100, 12).total_calls == 0
    assert monitor.export_report(tmp_path / "r.json", days=90).exists()
    with pytest.raises(TypeError):
        monitor.get_daily_summary("1")


# -- empty values -------------------------------------------------------------


def test_empty_data_dir_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for empty in ["", "  "]:
        with pytest.raises(ValueError, match="data_dir is empty"):
            AIUsageMonitor(empty)
    assert list(tmp_path.iterdir()) == []  # nothing written into the working directory
