"""Shared fixtures: every test gets its own records directory, and the
module's global monitor (what `get_usage_monitor()` / `record_ai_usage` /
`@track_ai_usage` use) is pointed at it."""

import os
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

import ai_usage_monitor


@pytest.fixture
def records_dir(tmp_path: Path) -> Path:
    d = tmp_path / "records" / "ai_usage"
    return d


@pytest.fixture
def monitor(records_dir: Path, monkeypatch: pytest.MonkeyPatch) -> ai_usage_monitor.AIUsageMonitor:
    """A fresh monitor that is also the global one."""
    m = ai_usage_monitor.AIUsageMonitor(records_dir)
    monkeypatch.setattr(ai_usage_monitor, "_global_monitor", m)
    yield m
    m.shutdown()


def chat_response(model: str, prompt: int, completion: int, total=None):
    """An object shaped like an OpenAI-compatible SDK response."""
    usage = SimpleNamespace(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion if total is None else total,
    )
    return SimpleNamespace(model=model, usage=usage, choices=[])


def need_program(name: str, what_to_install: str):
    """The path of an outside program; skip (or fail under CI) without it."""
    env_path = os.environ.get("AI_USAGE_BIN") if name == "ai-usage" else None
    path = env_path or shutil.which(name)
    if path:
        return path
    if os.environ.get("CI"):
        pytest.fail(f"{name} is required under CI: {what_to_install}")
    print(f"skipped: {what_to_install}")
    pytest.skip(f"skipped: {what_to_install}")


def run(cmd, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)
