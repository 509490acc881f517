"""The guide's Python examples (MONITORING_GUIDE.zh.md), changed only in
their import line (`server.utils.ai_usage_monitor` / `ai_tracking_decorator`
→ `ai_usage_monitor`)."""

import datetime
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import chat_response


class FakeCompletions:
    """Stands in for `ai_client.chat.completions`: answers with fixed usage."""

    def __init__(self, prompt=1200, completion=300):
        self.prompt, self.completion, self.calls = prompt, completion, 0

    def create(self, model="qwen-plus", **kwargs):
        self.calls += 1
        return chat_response(model, self.prompt, self.completion)


def fake_client(prompt=1200, completion=300):
    return SimpleNamespace(chat=SimpleNamespace(completions=FakeCompletions(prompt, completion)))


def test_method_1_decorator(monitor):
    ai_client = fake_client()

    # --- guide, 方法 1 ---
    from ai_usage_monitor import track_ai_usage

    @track_ai_usage("实时分析", "qwen-plus")
    def generate_analysis(context):
        """生成直播分析"""
        response = ai_client.chat.completions.create(
            model="qwen-plus",
            messages=[...],
            temperature=0.3
        )
        return response
    # ---

    response = generate_analysis({"anchor_id": "anchor_123"})
    assert response.usage.prompt_tokens == 1200
    assert generate_analysis.__doc__ == "生成直播分析"
    day = monitor.get_daily_summary()
    assert day.total_calls == 1
    assert day.by_function["实时分析"]["total_tokens"] == 1500
    # qwen-plus: ¥0.0008 / 1K input, ¥0.002 / 1K output (Alibaba Cloud's list)
    assert day.by_model["qwen-plus"]["cost"] == pytest.approx(1.2 * 0.0008 + 0.3 * 0.002)
    assert day.by_anchor["anchor_123"]["calls"] == 1


def test_method_2_manual_record(monitor):
    ai_client = fake_client(800, 200)

    # --- guide, 方法 2 ---
    from ai_usage_monitor import record_ai_usage
    import time

    # 记录开始时间
    start_time = time.time()

    # 调用 AI
    response = ai_client.chat.completions.create()

    # 计算耗时
    duration_ms = (time.time() - start_time) * 1000

    # 手动记录
    record_ai_usage(
        model="qwen-plus",
        function="实时分析",
        input_tokens=response.usage.prompt_tokens,
        output_tokens=response.usage.completion_tokens,
        duration_ms=duration_ms,
        success=True,
        anchor_id="anchor_123",  # 可选：主播 ID
        session_id="session_456"  # 可选：会话 ID
    )
    # ---

    stats = monitor.get_session_stats("session_456")
    assert stats["calls"] == 1 and stats["tokens"] == 1000
    assert stats["cost"] == pytest.approx(0.8 * 0.0008 + 0.2 * 0.002)


def test_python_query_example(monitor, capsys):
    from ai_usage_monitor import record_ai_usage

    record_ai_usage("qwen-plus", "实时分析", 10_000, 5_000, 900.0, user_id="u1", session_id="session_123")
    record_ai_usage("qwen-max", "话术生成", 20_000, 8_000, 1500.0, user_id="u2")

    # --- guide, 3. Python 代码查询 ---
    from ai_usage_monitor import get_usage_monitor

    # 获取监控器实例
    monitor = get_usage_monitor()

    # 获取今日统计
    today = monitor.get_daily_summary(days_ago=0)
    print(f"今日调用: {today.total_calls}")
    print(f"今日费用: ¥{today.total_cost:.2f}")

    # 获取会话统计
    session_stats = monitor.get_session_stats("session_123")
    print(f"会话费用: ¥{session_stats['cost']:.4f}")

    # 获取 Top 用户
    top_users = monitor.get_top_users(limit=5, days=7)
    for user in top_users:
        print(f"{user['user_id']}: ¥{user['cost']:.2f}")
    # ---

    out = capsys.readouterr().out.splitlines()
    assert out[0] == "今日调用: 2"
    expected_session = 10 * 0.0008 + 5 * 0.002
    assert out[2] == f"会话费用: ¥{expected_session:.4f}"
    # u2 used more tokens, so it ranks first (the original orders by tokens).
    assert out[3].startswith("u2: ¥") and out[4].startswith("u1: ¥")
    assert today.total_cost == round(sum(today.costs.values()), 2)


def test_export_report_example(monitor, tmp_path, monkeypatch):
    from ai_usage_monitor import record_ai_usage

    record_ai_usage("qwen-plus", "实时分析", 1000, 100, 10.0)
    monkeypatch.chdir(tmp_path)

    # --- guide, 方法 3：通过 Python 代码 ---
    from ai_usage_monitor import get_usage_monitor
    from pathlib import Path

    monitor = get_usage_monitor()

    # 导出最近 30 天的报告
    output_path = Path("reports") / "monthly_usage.json"
    monitor.export_report(output_path=output_path, days=30)

    print(f"报告已导出到: {output_path}")
    # ---

    report = json.loads((tmp_path / "reports" / "monthly_usage.json").read_text(encoding="utf-8"))
    text = json.dumps(report, ensure_ascii=False)
    assert "qwen-plus" in text and "实时分析" in text


def test_cost_alert_example(monitor):
    from ai_usage_monitor import record_ai_usage

    # qwen-max, ¥0.02 / 1K input: 3M input tokens cost ¥60, over the ¥50 line.
    record_ai_usage("qwen-max", "话术生成", 3_000_000, 0, 1000.0)
    alerts = []
    send_alert = alerts.append

    # --- guide, 1. 设置成本告警 ---
    from ai_usage_monitor import get_usage_monitor

    monitor = get_usage_monitor()
    daily = monitor.get_daily_summary()

    # 每日费用超过 ¥50 时告警
    if daily.total_cost > 50:
        send_alert(f"⚠️ 今日AI费用已超 ¥50: ¥{daily.total_cost:.2f}")
    # ---

    assert len(alerts) == 1 and alerts[0].startswith("⚠️ 今日AI费用已超 ¥50: ¥")


def test_weekly_review_example(monitor):
    from ai_usage_monitor import get_usage_monitor, record_ai_usage

    record_ai_usage("qwen-turbo", "问答", 100, 100, 5.0)
    sent = []
    send_email_to_admin = sent.append

    # --- guide, 2. 定期审查报告 (without the scheduler) ---
    def weekly_review():
        """每周一生成报告并发送"""
        monitor = get_usage_monitor()
        report = monitor.export_report(days=7)
        send_email_to_admin(report)
    # ---

    weekly_review()
    assert len(sent) == 1 and isinstance(sent[0], Path) and sent[0].is_file()
    assert sent[0].parent == monitor.data_dir


def test_session_cost_example(monitor, capsys):
    from ai_usage_monitor import get_usage_monitor

    # --- guide, 3. 追踪会话成本 ---
    from ai_usage_monitor import track_ai_usage

    # 直播开始时
    session_id = "live_20251026_123456"

    # 使用装饰器时传入 session_id
    @track_ai_usage("实时分析", "qwen-plus")
    def analyze(context, session_id=None):
        # session_id 会自动记录
        return chat_response("qwen-plus", 5000, 1000)

    analyze({}, session_id=session_id)
    analyze({}, session_id=session_id)

    # 直播结束后查看成本
    monitor = get_usage_monitor()
    stats = monitor.get_session_stats(session_id)
    print(f"本场直播AI成本: ¥{stats['cost']:.2f}")
    # ---

    assert stats["calls"] == 2
    assert stats["cost"] == pytest.approx(2 * (5 * 0.0008 + 1 * 0.002))
    assert capsys.readouterr().out.strip() == f"本场直播AI成本: ¥{2 * (5 * 0.0008 + 1 * 0.002):.2f}"


def test_q4_anchors_and_case_1(monitor, capsys):
    # --- guide, Q4 ---
    from ai_usage_monitor import record_ai_usage, get_usage_monitor

    record_ai_usage(
        model="qwen-plus",
        function="实时分析",
        anchor_id="anchor_001",  # 主播 A
        input_tokens=1000, output_tokens=1000, duration_ms=100.0,
    )

    record_ai_usage(
        model="qwen-plus",
        function="实时分析",
        anchor_id="anchor_002",  # 主播 B
        input_tokens=2000, output_tokens=2000, duration_ms=100.0,
    )
    record_ai_usage("qwen-plus", "实时分析", 4000, 0, 100.0, anchor_id="anchor_123")

    monitor = get_usage_monitor()
    daily = monitor.get_daily_summary()
    for anchor_id, stats in daily.by_anchor.items():
        print(f"主播 {anchor_id}: ¥{stats['cost']:.2f}")

    # --- guide, 案例 1 ---
    # 获取今日数据
    daily = monitor.get_daily_summary()

    # 查看某个主播的费用
    anchor_stats = daily.by_anchor.get("anchor_123", {})
    print(f"主播 123 今日费用: ¥{anchor_stats.get('cost', 0):.2f}")
    print(f"调用次数: {anchor_stats.get('calls', 0)}")
    # ---

    out = capsys.readouterr().out.splitlines()
    # qwen-plus ¥0.0008 / ¥0.002 per 1K (Alibaba Cloud's list).
    a1, a2, a123 = 1 * 0.0008 + 1 * 0.002, 2 * 0.0008 + 2 * 0.002, 4 * 0.0008
    assert out[:3] == [f"主播 anchor_001: ¥{a1:.2f}", f"主播 anchor_002: ¥{a2:.2f}",
                       f"主播 anchor_123: ¥{a123:.2f}"]
    assert out[3:] == [f"主播 123 今日费用: ¥{a123:.2f}", "调用次数: 1"]


def test_case_2_models(monitor, capsys):
    from ai_usage_monitor import record_ai_usage

    for _ in range(3):
        record_ai_usage("qwen-plus", "实时分析", 1000, 1000, 100.0)
    record_ai_usage("qwen-turbo", "实时分析", 1000, 1000, 100.0)

    # --- guide, 案例 2 ---
    daily = monitor.get_daily_summary()

    for model, stats in daily.by_model.items():
        avg_cost = stats['cost'] / stats['calls'] if stats['calls'] > 0 else 0
        print(f"{model}:")
        print(f"  总调用: {stats['calls']}")
        print(f"  总费用: ¥{stats['cost']:.2f}")
        print(f"  平均每次: ¥{avg_cost:.4f}")
    # ---

    out = capsys.readouterr().out.splitlines()
    assert out[0] == "qwen-plus:" and out[1] == "  总调用: 3"
    assert out[3] == "  平均每次: ¥0.0028"
    assert out[4] == "qwen-turbo:" and out[5] == "  总调用: 1"


def test_case_3_forecast(monitor, capsys):
    import time as _time

    now = _time.time()
    # One call on each of the last 7 days, ¥1.00 each (explicit cost, kept as given).
    for d in range(7):
        monitor.record_usage("qwen-plus", "实时分析", 10, 10, 1.0, cost=1.0, timestamp=now - d * 86400)

    # --- guide, 案例 3 ---
    # 获取最近 7 天的成本趋势
    trend = monitor.get_cost_trend(days=7)

    # 计算日均费用
    total_cost = sum(d['cost'] for d in trend)
    avg_daily = total_cost / len(trend)

    # 预测本月费用
    import datetime
    days_in_month = 30
    predicted_monthly = avg_daily * days_in_month

    print(f"最近 7 天日均: ¥{avg_daily:.2f}")
    print(f"预测本月费用: ¥{predicted_monthly:.2f}")
    # ---

    assert len(trend) == 7
    assert capsys.readouterr().out.splitlines() == ["最近 7 天日均: ¥1.00", "预测本月费用: ¥30.00"]
    # Our forecast, alongside: month-to-date plus the recent daily average.
    f = monitor.get_forecast()
    assert f["month_to_date"] >= 1.0 and f["projected_total"] >= f["month_to_date"]
