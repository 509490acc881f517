"""`@track_ai_usage`: sync and async functions, every source of tokens and
context, failures of the call and of the recording."""

import asyncio
import inspect
import json
import logging

import pytest

import ai_usage_monitor
from ai_usage_monitor import track_ai_usage
from conftest import chat_response


def only_record(monitor):
    day = monitor.get_daily_summary()
    assert day.total_calls == 1, day
    return day


def test_sync_function(monitor):
    @track_ai_usage("实时分析", "qwen-plus")
    def call(x):
        """doc"""
        return chat_response("qwen-plus-2025-01-25", 1000, 200)

    assert call.__name__ == "call" and call.__doc__ == "doc"
    assert call(1).usage.prompt_tokens == 1000
    day = only_record(monitor)
    # model_name wins over result.model
    assert day.by_model["qwen-plus"]["input_tokens"] == 1000
    assert day.by_model["qwen-plus"]["output_tokens"] == 200


def test_async_function(monitor):
    @track_ai_usage("话术生成")
    async def call(context):
        await asyncio.sleep(0.01)
        return chat_response("qwen-max", 300, 700)

    assert inspect.iscoroutinefunction(call)
    result = asyncio.run(call({"user_id": "u7"}))
    assert result.model == "qwen-max"
    day = only_record(monitor)
    # No model_name: taken from result.model
    g = day.by_model["qwen-max"]
    assert (g["input_tokens"], g["output_tokens"], g["total_tokens"]) == (300, 700, 1000)
    assert day.by_user["u7"]["calls"] == 1
    assert day.avg_duration_ms >= 10.0


def test_async_exception(monitor):
    @track_ai_usage("实时分析", "qwen-plus")
    async def call():
        raise TimeoutError("provider timed out")

    with pytest.raises(TimeoutError):
        asyncio.run(call())
    day = only_record(monitor)
    assert day.failed_calls == 1


def test_exception_recorded_and_reraised(monitor, records_dir):
    @track_ai_usage("实时分析", "qwen-plus")
    def call(context):
        raise ValueError("bad prompt")

    with pytest.raises(ValueError, match="bad prompt"):
        call({"session_id": "s-err"})
    day = only_record(monitor)
    assert day.failed_calls == 1 and day.successful_calls == 0
    monitor.flush()
    (line,) = next(records_dir.glob("usage_*.jsonl")).read_text(encoding="utf-8").splitlines()
    rec = json.loads(line)
    assert rec["success"] is False and rec["error_msg"] == "bad prompt"
    assert rec["session_id"] == "s-err" and rec["input_tokens"] == 0


def test_dict_result_usage(monitor):
    @track_ai_usage("qa", "qwen-turbo")
    def call():
        return {"model": "qwen-turbo", "usage": {"prompt_tokens": 11, "completion_tokens": 22, "total_tokens": 40}}

    call()
    g = only_record(monitor).by_model["qwen-turbo"]
    assert (g["input_tokens"], g["output_tokens"], g["total_tokens"]) == (11, 22, 40)


@pytest.mark.parametrize("returned, expected", [((5, 6), (5, 6, 11)), ((5, 6, 20), (5, 6, 20))])
def test_extract_tokens(monitor, returned, expected):
    @track_ai_usage("qa", "qwen-turbo", extract_tokens=lambda r: r["counts"])
    def call():
        return {"text": "hi", "counts": returned}

    call()
    g = only_record(monitor).by_model["qwen-turbo"]
    assert (g["input_tokens"], g["output_tokens"], g["total_tokens"]) == expected


def test_broken_extract_tokens_is_logged(monitor, caplog):
    @track_ai_usage("qa", "qwen-turbo", extract_tokens=lambda r: (1,))
    def call():
        return "answer"

    with caplog.at_level(logging.WARNING, logger="ai_usage_monitor"):
        assert call() == "answer"
    assert "could not read tokens" in caplog.text
    assert only_record(monitor).total_tokens == 0  # the call still counts


def test_provider_bodies_read_by_the_engine(monitor):
    bodies = [
        # Anthropic Messages
        {"model": "claude-x", "usage": {"input_tokens": 100, "output_tokens": 50}},
        # Gemini
        {"modelVersion": "gemini-y", "usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 3,
                                                       "totalTokenCount": 10}},
    ]

    @track_ai_usage("live_review")
    def call(body):
        return body

    for b in bodies:
        call(b)
    day = monitor.get_daily_summary()
    assert day.by_model["claude-x"]["input_tokens"] == 100
    assert day.by_model["claude-x"]["output_tokens"] == 50
    assert day.by_model["gemini-y"]["total_tokens"] == 10


def test_pydantic_like_object(monitor):
    class Response:  # what SDKs built on pydantic return
        def model_dump(self):
            return {"model": "gpt-4o", "usage": {"input_tokens": 9, "output_tokens": 4,
                                                  "input_tokens_details": {"cached_tokens": 2}}}

    @track_ai_usage("qa")
    def call():
        return Response()

    call()
    g = only_record(monitor).by_model["gpt-4o"]
    assert (g["input_tokens"], g["output_tokens"]) == (9, 4)


def test_context_from_kwargs_and_first_dict(monitor):
    @track_ai_usage("实时分析", "qwen-plus")
    def call(context, user_id=None, anchor_id=None, session_id=None):
        return chat_response("qwen-plus", 1, 1)

    call({"user_id": "ctx-user", "anchor_id": "ctx-anchor", "session_id": "ctx-session"})
    call({"anchor_id": "ignored"}, anchor_id="kw-anchor", session_id="kw-session")
    call("not a dict", user_id="kw-user")
    day = monitor.get_daily_summary()
    assert set(day.by_user) == {"ctx-user", "kw-user"}
    assert set(day.by_anchor) == {"ctx-anchor", "kw-anchor"}
    assert monitor.get_session_stats("ctx-session")["calls"] == 1
    assert monitor.get_session_stats("kw-session")["calls"] == 1


def test_no_usage_no_model(monitor):
    @track_ai_usage("qa")
    def call():
        return 42

    assert call() == 42
    day = only_record(monitor)
    assert list(day.by_model) == ["unknown"] and day.total_tokens == 0


def test_recording_failure_is_logged_not_raised(monitor, monkeypatch, caplog):
    def broken():
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(ai_usage_monitor, "get_usage_monitor", broken)

    @track_ai_usage("qa", "qwen-turbo")
    def call():
        return "fine"

    with caplog.at_level(logging.ERROR, logger="ai_usage_monitor"):
        assert call() == "fine"
    assert "could not record a call of qa" in caplog.text and "disk on fire" in caplog.text


def test_method_self_is_not_context(monitor):
    class Service:
        @track_ai_usage("qa", "qwen-turbo")
        def ask(self, question, user_id=None):
            return chat_response("qwen-turbo", 3, 4)

    Service().ask("why?", user_id="svc-user")
    assert only_record(monitor).by_user["svc-user"]["calls"] == 1


def test_anthropic_body_cache_writes_and_provider(monitor, records_dir):
    # The engine reads the body's cache reads and writes; `provider` picks
    # Anthropic's price: $3 × 1000 + $3.75 × 2000 + $0.30 × 4000 + $15 × 200
    # per M tokens = $0.0147.
    @track_ai_usage("问答", provider="anthropic")
    def call():
        return {"id": "msg_1", "type": "message", "model": "claude-sonnet-4-5", "content": [],
                "usage": {"input_tokens": 1000, "cache_creation_input_tokens": 2000,
                          "cache_read_input_tokens": 4000, "output_tokens": 200}}

    call()
    monitor.flush()
    (line,) = next(records_dir.glob("usage_*.jsonl")).read_text(encoding="utf-8").splitlines()
    r = json.loads(line)
    assert (r["input_tokens"], r["cached_input_tokens"], r["cache_write_tokens"]) == (7000, 4000, 2000)
    assert (r["provider"], r["currency"], r["cost"]) == ("anthropic", "USD", 0.0147)


def test_openai_sdk_object_keeps_cached_tokens(monitor, records_dir):
    class Response:  # pydantic-style: usage details only in model_dump()
        usage = type("U", (), {"prompt_tokens": 1000, "completion_tokens": 10, "total_tokens": 1010})()

        def model_dump(self):
            return {"model": "gpt-4o", "usage": {"prompt_tokens": 1000, "completion_tokens": 10,
                                                  "total_tokens": 1010,
                                                  "prompt_tokens_details": {"cached_tokens": 800}}}

    @track_ai_usage("qa")
    def call():
        return Response()

    call()
    monitor.flush()
    (line,) = next(records_dir.glob("usage_*.jsonl")).read_text(encoding="utf-8").splitlines()
    assert json.loads(line)["cached_input_tokens"] == 800
