"""Engine semantics across processes: fork, flush at exit, several writers,
and files shared with the Rust CLI in both directions."""

import json
import os
import sys
import textwrap
import time

import pytest

import ai_usage_monitor
from ai_usage_monitor import AIUsageMonitor
from conftest import need_program, run


def day_lines(d):
    lines = []
    for f in sorted(d.glob("usage_*.jsonl")):
        lines += f.read_text(encoding="utf-8").splitlines()
    return lines


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX-only")
def test_fork_parent_and_child_both_record(monitor, records_dir):
    monitor.record_usage("qwen-plus", "before-fork", 1, 1, 1.0)
    pid = os.fork()
    if pid == 0:  # child: its monitor must work on its own threads
        code = 1
        try:
            m = ai_usage_monitor.get_usage_monitor()
            m.record_usage("qwen-plus", "child", 10, 10, 1.0)
            # The child sees the parent's pre-fork record (replayed) and its own.
            day = m.get_daily_summary()
            if day.by_function.get("child", {}).get("calls") == 1 and day.total_calls == 2:
                code = 0
            m.flush()
        finally:
            os._exit(code)
    monitor.record_usage("qwen-plus", "parent", 20, 20, 1.0)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    monitor.flush()
    recs = [json.loads(l) for l in day_lines(records_dir)]
    assert sorted(r["function"] for r in recs) == ["before-fork", "child", "parent"]
    # The parent counts the child's record too (following the directory).
    monitor.refresh()
    assert monitor.get_daily_summary().by_function["child"]["calls"] == 1


def test_global_monitor_flushed_at_exit(records_dir):
    script = textwrap.dedent(
        """
        from ai_usage_monitor import record_ai_usage
        for i in range(500):
            record_ai_usage("qwen-plus", "exit-test", 10, 10, 1.0, user_id=f"u{i}")
        # no flush: atexit must write everything
        """
    )
    env = dict(os.environ, AI_USAGE_DIR=str(records_dir))
    r = run([sys.executable, "-c", script], env=env)
    assert r.returncode == 0, r.stderr
    lines = day_lines(records_dir)
    assert len(lines) == 500
    assert {json.loads(l)["user_id"] for l in lines} == {f"u{i}" for i in range(500)}


def test_several_processes_write_whole_lines(records_dir):
    script = textwrap.dedent(
        """
        import sys
        from ai_usage_monitor import record_ai_usage
        who = sys.argv[1]
        for i in range(3000):
            record_ai_usage("qwen-plus", "multi", 10, 10, 1.0, user_id=who,
                            error_msg="x" * (i % 300))
        """
    )
    env = dict(os.environ, AI_USAGE_DIR=str(records_dir))
    import subprocess

    procs = [subprocess.Popen([sys.executable, "-c", script, f"w{n}"], env=env) for n in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    lines = day_lines(records_dir)
    assert len(lines) == 12000
    by_user = {}
    for l in lines:
        rec = json.loads(l)  # a torn line would not parse
        by_user[rec["user_id"]] = by_user.get(rec["user_id"], 0) + 1
    assert by_user == {f"w{n}": 3000 for n in range(4)}
    # A monitor opened afterwards replays all of them.
    m = AIUsageMonitor(records_dir)
    assert m.get_daily_summary().total_calls == 12000
    m.shutdown()


def test_reads_the_original_modules_files(records_dir):
    """A day file as the original Python monitor wrote it (no currency)."""
    records_dir.mkdir(parents=True)
    now = time.time()
    day = time.strftime("%Y-%m-%d", time.localtime(now))  # the guide: usage_2025-10-26.jsonl
    line = {
        "timestamp": now, "user_id": None, "anchor_id": "anchor_9", "session_id": "live_1",
        "model": "qwen-plus", "function": "实时分析", "input_tokens": 1200, "output_tokens": 300,
        "total_tokens": 1500, "cost": 0.0084, "duration_ms": 850.0, "success": True, "error_msg": None,
    }
    (records_dir / f"usage_{day}.jsonl").write_text(json.dumps(line, ensure_ascii=False) + "\n",
                                                   encoding="utf-8")
    m = AIUsageMonitor(records_dir)
    s = m.get_daily_summary()
    assert s.total_calls == 1 and s.by_anchor["anchor_9"]["cost"] == 0.0084
    assert m.get_session_stats("live_1")["tokens"] == 1500
    m.shutdown()


def test_rust_cli_reads_python_records_and_back(records_dir):
    cli = need_program("ai-usage", "build the CLI (cargo build -p ai-usage-cli) and set AI_USAGE_BIN")
    m = AIUsageMonitor(records_dir)
    m.record_usage("qwen-plus", "实时分析", 1200, 300, 850.0, anchor_id="a1", session_id="s-cli")
    m.record_usage("qwen-max", "话术生成", 2000, 1000, 900.0, user_id="u1")
    m.shutdown()
    expected = AIUsageMonitor(records_dir, follow_interval=None)
    want = expected.get_daily_summary()
    expected.shutdown()

    r = run([cli, "--dir", str(records_dir), "--json", "stats", "daily"])
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["total_calls"] == 2
    assert got["total_tokens"] == want.total_tokens
    assert got["costs"] == want.costs

    # And back: the CLI records, Python reads.
    r = run([cli, "--dir", str(records_dir), "record", "--model", "qwen-turbo", "--function", "qa",
             "--input-tokens", "100", "--output-tokens", "50"])
    assert r.returncode == 0, r.stderr
    m = AIUsageMonitor(records_dir)
    assert m.get_daily_summary().by_model["qwen-turbo"]["total_tokens"] == 150
    m.shutdown()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX-only")
def test_fork_keeps_budgets_and_alert_callbacks(monitor):
    alerts = []
    monitor.on_budget_alert(lambda a: alerts.append(a["budget"]))
    monitor.add_budget("worker-day", 1.0)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            monitor.record_usage("qwen-plus", "child", 1, 1, 1.0, cost=2.0)
            if alerts == ["worker-day", "worker-day"]:  # 80 % and 100 %, in the child
                code = 0
            monitor.flush()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert [b["name"] for b in monitor.budget_status()] == ["worker-day"]
