"""Each item of the original's public API, and our additions."""

import dataclasses
import inspect
import json
import time
from pathlib import Path

import pytest

import ai_usage_monitor
from ai_usage_monitor import AIUsageMonitor, ModelPricing, UsageRecord, UsageSummary


def test_usage_record_attributes(monitor):
    before = time.time()
    r = monitor.record_usage("qwen-plus", "实时分析", 1200, 300, 850.5, user_id="u1",
                             anchor_id="a1", session_id="s1")
    assert isinstance(r, UsageRecord)
    assert before - 1 <= r.timestamp <= time.time() + 1
    assert (r.user_id, r.anchor_id, r.session_id) == ("u1", "a1", "s1")
    assert (r.model, r.function) == ("qwen-plus", "实时分析")
    assert (r.input_tokens, r.output_tokens, r.total_tokens) == (1200, 300, 1500)
    assert r.cost == pytest.approx(0.00156)  # qwen-plus ¥0.0008 / ¥0.002 per 1K
    assert r.duration_ms == 850.5 and r.success is True and r.error_msg is None
    d = r.to_dict()
    assert d["cost"] == r.cost and d["currency"] == "CNY"
    assert "qwen-plus" in repr(r)


def test_record_usage_keywords(monitor):
    # Everything after duration_ms is keyword-only, as in the original.
    with pytest.raises(TypeError):
        monitor.record_usage("qwen-plus", "f", 1, 1, 1.0, 0.5)
    r = monitor.record_usage("qwen-plus", "f", 100, 50, 1.0, cost=0.123456, total_tokens=200,
                             success=False, error_msg="timeout")
    assert r.cost == 0.123456  # an explicit cost is kept as given
    assert r.total_tokens == 200
    assert r.success is False and r.error_msg == "timeout"
    # An int user id (common in apps) is stored as its text.
    assert monitor.record_usage("qwen-plus", "f", 1, 1, 1.0, user_id=42).user_id == "42"


def test_unknown_model_is_unpriced(monitor):
    r = monitor.record_usage("my-private-model", "f", 1000, 1000, 1.0)
    assert r.cost == 0.0
    day = monitor.get_daily_summary()
    assert day.unpriced_calls == 1
    assert day.by_model["my-private-model"]["unpriced_calls"] == 1


def test_usage_summary_shape(monitor):
    monitor.record_usage("qwen-plus", "live_analysis", 1000, 500, 10.0, user_id="u", anchor_id="a")
    monitor.record_usage("qwen-plus", "live_analysis", 10, 5, 10.0, success=False, error_msg="x")
    for s in (monitor.get_daily_summary(), monitor.get_hourly_summary(), monitor.get_monthly_summary()):
        assert isinstance(s, UsageSummary)
        assert s.total_calls == 2 and s.successful_calls == 1 and s.failed_calls == 1
        assert s.total_input_tokens == 1010 and s.total_output_tokens == 505
        assert s.end_time > s.start_time
        for groups in (s.by_model, s.by_function, s.by_user, s.by_anchor):
            for g in groups.values():
                assert {"calls", "input_tokens", "output_tokens", "total_tokens", "cost"} <= g.keys()
        assert s.by_model["qwen-plus"]["display_name"] == ModelPricing.get_model_display_name("qwen-plus")
    assert [s.period for s in (monitor.get_hourly_summary(), monitor.get_daily_summary(),
                               monitor.get_monthly_summary())] == ["hourly", "daily", "monthly"]
    assert dataclasses.asdict(monitor.get_daily_summary())["total_calls"] == 2
    # Yesterday and an explicit month
    assert monitor.get_daily_summary(days_ago=1).total_calls == 0
    assert monitor.get_monthly_summary(2001, 1).total_calls == 0
    with pytest.raises(ValueError):
        monitor.get_monthly_summary(2025, 13)
    with pytest.raises(ValueError):
        monitor.get_monthly_summary(year=2025)


def test_total_cost_rounding_and_currencies(monitor):
    monitor.record_usage("qwen-plus", "f", 1, 1, 1.0, cost=1.234567)
    monitor.record_usage("gpt-x", "f", 1, 1, 1.0, cost=2.5, currency="USD")
    day = monitor.get_daily_summary()
    assert day.total_cost == 1.23  # the CNY total, to 2 decimals as the original
    assert day.costs == {"CNY": 1.234567, "USD": 2.5}  # never mixed
    assert day.by_model["qwen-plus"]["cost"] == 1.234567
    assert day.by_model["gpt-x"]["currency"] == "USD"


def test_record_usage_accepts_explicit_cost(monitor):
    # The original's own test: an explicit cost on a dollar-priced model is
    # the day's total_cost, rounded as the original and /stats/daily round it.
    r = monitor.record_usage(model="gpt-4o-mini-2024-07-18", function="gateway_openai",
                             input_tokens=100, output_tokens=50, total_tokens=200,
                             cost=2.3456, duration_ms=12.0, user_id="u1")
    assert r.cost == 2.3456
    day = monitor.get_daily_summary(0)
    assert day.total_cost == 2.35
    assert day.total_tokens == 200
    assert day.costs == {"USD": 2.3456}


def test_session_stats_unknown(monitor):
    assert monitor.get_session_stats("nope") == {"session_id": "nope", "calls": 0, "tokens": 0, "cost": 0.0}


def test_top_users_and_trend(monitor):
    monitor.record_usage("qwen-plus", "f", 100, 0, 1.0, user_id="small")
    monitor.record_usage("qwen-plus", "f", 9000, 0, 1.0, user_id="big")
    top = monitor.get_top_users(limit=10, days=7)
    assert [u["user_id"] for u in top] == ["big", "small"]
    assert top[0]["tokens"] == 9000 and top[0]["calls"] == 1
    assert len(monitor.get_top_users(limit=1)) == 1
    trend = monitor.get_cost_trend(days=30)
    assert len(trend) == 30 and trend[-1]["calls"] == 2
    assert {"date", "cost", "calls"} <= trend[0].keys()


def test_export_report_default_path(monitor):
    monitor.record_usage("qwen-plus", "f", 100, 0, 1.0)
    p = monitor.export_report()
    assert isinstance(p, Path) and p.parent == monitor.data_dir and p.suffix == ".json"
    json.loads(p.read_text(encoding="utf-8"))
    csv = monitor.export_csv(days=1)
    assert csv.read_text(encoding="utf-8").count("\n") >= 2


def test_data_dir_str_and_path(tmp_path):
    a = AIUsageMonitor(str(tmp_path / "a"))
    b = AIUsageMonitor(tmp_path / "b")
    assert a.data_dir == tmp_path / "a" and b.data_dir == tmp_path / "b"
    assert (tmp_path / "a").is_dir()
    a.shutdown()
    b.shutdown()


def test_default_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("AI_USAGE_DIR", str(tmp_path / "env_dir"))
    m = AIUsageMonitor()
    assert m.data_dir == tmp_path / "env_dir"
    m.shutdown()
    monkeypatch.delenv("AI_USAGE_DIR")
    monkeypatch.chdir(tmp_path)
    m = AIUsageMonitor()
    assert m.data_dir == Path("records/ai_usage")
    m.shutdown()


def test_model_pricing_classmethods():
    assert ModelPricing.calculate_cost("qwen-plus", 1000, 1000) == pytest.approx(0.0028)
    assert ModelPricing.calculate_cost("no-such-model", 1000, 1000) == 0.0
    p = ModelPricing.get_pricing("qwen-plus")
    assert p["input"] == 0.0008 and p["output"] == 0.002 and p["display_name"] == "通义千问-Plus"
    assert ModelPricing.get_pricing("no-such-model") is None
    # USD models come from the genai-prices catalogue: GPT-4o $2.50/$10 per M.
    g = ModelPricing.get_pricing("gpt-4o-2024-08-06")
    assert g["model"] == "gpt-4o" and g["currency"] == "USD"
    assert g["input"] == pytest.approx(0.0025) and g["output"] == pytest.approx(0.01)
    assert ModelPricing.get_model_display_name("gpt-4o-mini") == "GPT-4o Mini"
    assert ModelPricing.get_model_display_name("qwen-plus") == "通义千问-Plus"
    assert ModelPricing.get_model_display_name("no-such-model") == "no-such-model"
    assert ModelPricing.get_function_name_cn("live_review") == "直播复盘"
    assert ModelPricing.get_function_name_cn("gateway_qwen") == "实时分析（通义千问）"
    assert ModelPricing.get_function_name_cn("自定义") == "自定义"
    for name in ("calculate_cost", "get_model_display_name", "get_pricing", "get_function_name_cn"):
        assert inspect.ismethod(getattr(ModelPricing, name))  # classmethods


def test_global_monitor_is_one_instance(monitor):
    assert ai_usage_monitor.get_usage_monitor() is monitor
    r = ai_usage_monitor.record_ai_usage("qwen-plus", "f", 10, 10, 1.0, user_id="g")
    assert r.user_id == "g" and monitor.get_daily_summary().total_calls == 1


def test_budget_alert_callback(monitor):
    alerts = []
    monitor.on_budget_alert(alerts.append)
    monitor.add_budget("每日总预算", 1.0, period="daily")
    monitor.add_budget("主播A", 0.5, scope="anchor", target="A", thresholds=(50,))
    monitor.record_usage("qwen-plus", "f", 1, 1, 1.0, cost=0.3, anchor_id="A")
    assert [a["budget"] for a in alerts] == ["主播A"] and alerts[0]["threshold"] == 50
    monitor.record_usage("qwen-plus", "f", 1, 1, 1.0, cost=0.6)
    assert [(a["budget"], a["threshold"]) for a in alerts[1:]] == [("每日总预算", 80)]
    status = {s["name"]: s for s in monitor.budget_status()}
    assert status["每日总预算"]["spent"] == pytest.approx(0.9)
    assert monitor.remove_budget("主播A") and not monitor.remove_budget("主播A")
    with pytest.raises(ValueError):
        monitor.add_budget("bad", -1.0)
    with pytest.raises(ValueError):
        monitor.add_budget("bad", 1.0, scope="user")


def test_budget_callback_exception_does_not_reach_recorder(monitor, monkeypatch):
    import sys

    reported = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: reported.append(u.exc_value))

    def broken(alert):
        raise RuntimeError("callback bug")

    monitor.on_budget_alert(broken)
    monitor.add_budget("b", 0.1)
    r = monitor.record_usage("qwen-plus", "f", 1, 1, 1.0, cost=1.0)
    assert r.cost == 1.0
    assert [str(e) for e in reported] == ["callback bug", "callback bug"]  # 80 % and 100 %


def test_savings_health_flush_shutdown(monitor):
    monitor.record_usage("qwen-max", "话术生成", 100_000, 10_000, 1.0)
    assert isinstance(monitor.get_savings(days=7), dict)
    assert monitor.health()["ok"] is True
    monitor.flush()
    lines = list(monitor.data_dir.glob("usage_*.jsonl"))
    assert len(lines) == 1 and lines[0].read_text(encoding="utf-8").count("\n") == 1
    monitor.shutdown()
    # Still counted after shutdown, just not written.
    monitor.record_usage("qwen-max", "话术生成", 1, 1, 1.0)
    assert monitor.get_daily_summary().total_calls == 2


def test_flush_releases_the_gil(monitor):
    """Another Python thread runs while a flush waits for the disk.

    With a switch interval far longer than the test, a thread holding the
    GIL is never preempted: the ticker can only tick while the main thread
    is inside a call that released it.
    """
    import sys
    import threading

    ticks = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(1)
            time.sleep(0)

    old = sys.getswitchinterval()
    sys.setswitchinterval(100.0)
    t = threading.Thread(target=ticker)
    t.start()
    try:
        during = 0
        for _ in range(20):
            monitor.record_usage("qwen-plus", "f", 10, 10, 1.0)
            before = len(ticks)
            monitor.flush()
            during += len(ticks) - before
    finally:
        stop.set()
        t.join()
        sys.setswitchinterval(old)
    assert during > 20


def test_cache_writes_audio_and_provider(monitor):
    # Anthropic prices cache writes and reads apart from fresh input:
    # $3 × 1000 + $3.75 × 2000 + $0.30 × 4000 + $15 × 200 per M = $0.0147.
    r = monitor.record_usage("claude-sonnet-4-5", "问答", 7000, 200, 1.0, cached_input_tokens=4000,
                             cache_write_tokens=2000, provider="anthropic", request_id="req-1")
    assert (r.cost, r.currency) == (0.0147, "USD")
    assert (r.cached_input_tokens, r.cache_write_tokens, r.provider, r.request_id) == (
        4000, 2000, "anthropic", "req-1")
    # Without the split the same tokens cost less: the split is what was priced.
    plain = monitor.record_usage("claude-sonnet-4-5", "问答", 7000, 200, 1.0, provider="anthropic")
    assert plain.cost == 0.024 and plain.cache_write_tokens == 0
    a = monitor.record_usage("gpt-4o-audio-preview", "语音", 1000, 500, 1.0, input_audio_tokens=600,
                             output_audio_tokens=400, reasoning_tokens=0)
    assert (a.input_audio_tokens, a.cached_audio_input_tokens, a.output_audio_tokens) == (600, 0, 400)
    d = r.to_dict()
    assert d["cache_write_tokens"] == 2000 and d["provider"] == "anthropic"
    assert d["input_audio_tokens"] == 0 and d["request_id"] == "req-1"
    assert "provider='anthropic'" in repr(r) or 'provider="anthropic"' in repr(r)


def test_usage_record_details_are_keyword_only():
    r = UsageRecord(1.0, None, None, None, "m", "f", 1, 2, 3, 0.5, 9.0, True, None, "USD",
                    cache_write_tokens=7, provider="openai")
    assert (r.cache_write_tokens, r.provider, r.cached_input_tokens) == (7, "openai", 0)
    with pytest.raises(TypeError):
        UsageRecord(1.0, None, None, None, "m", "f", 1, 2, 3, 0.5, 9.0, True, None, "USD", 7)


def test_stub_lists_every_record_field_in_order():
    # The attributes come from the engine's one table of record fields; the
    # hand-kept `.pyi` stub must list exactly them, in their order.
    import ast
    import pathlib

    import ai_usage_monitor._native as native

    stub = pathlib.Path(native.__file__).with_name("_native.pyi")
    if not stub.exists():  # an installed wheel without the stub beside it
        stub = pathlib.Path(__file__).parent.parent / "python" / "ai_usage_monitor" / "_native.pyi"
    tree = ast.parse(stub.read_text(encoding="utf-8"))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "UsageRecord")
    names = [n.target.id for n in cls.body if isinstance(n, ast.AnnAssign) and n.target.id != "FIELDS"]
    assert names == list(UsageRecord.FIELDS)
    # Every listed attribute reads, and to_dict has the same keys in order.
    r = UsageRecord(1.0, None, None, None, "m", "f", 1, 2, 3, 0.5, 9.0)
    assert list(r.to_dict()) == names
    for name in names:
        getattr(r, name)
    r.tags = ["a", "b"]
    r.priced = False
    assert (r.tags, r.priced, r.to_dict()["priced"]) == (["a", "b"], False, False)
    with pytest.raises(AttributeError):
        r.no_such_field
    with pytest.raises(TypeError):
        UsageRecord(1.0, None, None, None, "m", "f", 1, 2, 3, 0.5, 9.0, no_such_field=1)


def test_record_usage_refuses_an_unknown_token_keyword(monitor):
    with pytest.raises(TypeError, match="cached_tokens"):
        monitor.record_usage("qwen-plus", "f", 10, 5, cached_tokens=1)
    r = monitor.record_usage("qwen-plus", "f", 10, 5, cached_input_tokens=4, reasoning_tokens=2)
    assert (r.cached_input_tokens, r.reasoning_tokens) == (4, 2)
    with pytest.raises(ValueError, match="reasoning_tokens"):
        monitor.record_usage("qwen-plus", "f", 10, 5, reasoning_tokens=-1)


def test_check_budget_raises_at_block_at(monitor):
    monitor.add_budget("u42", 1.0, scope="user", target="42", block_at=100)
    monitor.add_budget("live-ops", 5.0, scope="tag", target="team:live-ops", block_at=100)
    monitor.check_budget(user_id="42", model="qwen-plus")
    monitor.record_usage("qwen-plus", "f", 1, 1, 1.0, cost=1.0, user_id="42")
    with pytest.raises(ai_usage_monitor.BudgetExceeded) as refused:
        monitor.check_budget(user_id="42", model="qwen-plus")
    assert refused.value.budget == "u42"
    assert refused.value.spent == pytest.approx(1.0)
    assert refused.value.limit == pytest.approx(1.0)
    assert refused.value.block_at == 100
    monitor.check_budget(user_id="7")
    # A tag budget with nothing spent lets the call through.
    monitor.check_budget(tags=["beta", "team:live-ops"])
    status = {s["name"]: s for s in monitor.budget_status()}
    assert status["u42"]["refusing"] and status["u42"]["block_at"] == 100
    assert not status["live-ops"]["refusing"]
