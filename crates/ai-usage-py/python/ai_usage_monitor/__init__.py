"""Drop-in for the original's ``ai_usage_monitor`` module.

Code written for the original runs unchanged except its import line::

    from ai_usage_monitor import get_usage_monitor, record_ai_usage, track_ai_usage

Records go through the Rust engine (``ai-usage-core``): the same JSONL day
files, exact money, queries answered from in-memory rollups. This file holds
what is naturally Python: the result objects, the decorator, the global
monitor and its ``atexit`` / fork handling.
"""

from __future__ import annotations

import atexit
import dataclasses
import functools
import inspect
import json
import logging
import os
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, TypeVar, Union

from . import _native
from ._native import UsageRecord

__all__ = [
    "AIUsageMonitor",
    "BudgetExceeded",
    "ModelPricing",
    "UsageRecord",
    "UsageSummary",
    "FUNCTION_NAMES_CN",
    "get_usage_monitor",
    "record_ai_usage",
    "track_ai_usage",
]

logger = logging.getLogger("ai_usage_monitor")

F = TypeVar("F", bound=Callable[..., Any])

#: Display names of the app's functions: the engine's default table (the same
#: one the HTTP API uses); names not listed show as they are.
FUNCTION_NAMES_CN: Dict[str, str] = dict(_native.function_names())


# ---------------------------------------------------------------------------
# Result objects
# ---------------------------------------------------------------------------


class BudgetExceeded(Exception):
    """A call refused by :meth:`AIUsageMonitor.check_budget`: the budget
    ``budget`` has reached its hard limit (``block_at`` percent of
    ``limit``) with ``spent`` in its period."""

    def __init__(self, details: Dict[str, Any]) -> None:
        self.details = details
        self.budget: str = details["budget"]
        self.scope: Dict[str, Any] = details["scope"]
        self.period: str = details["period_label"]
        self.spent: float = details["spent"]
        self.limit: float = details["limit"]
        self.block_at: int = details["block_at"]
        self.currency: str = details["currency"]
        super().__init__(
            f"budget {self.budget!r} refuses the call: spent {self.spent} of "
            f"{self.limit} {self.currency} in {self.period}, hard limit at {self.block_at}%"
        )


@dataclass
class UsageSummary:
    """Usage of one period, with the original's attributes.

    ``total_cost`` is the total of the period's currency (its only currency,
    else CNY) rounded to 2 decimals, as the original and ``/stats/daily``;
    ``costs`` gives the exact total of each currency, never mixed.
    """

    period: str
    start_time: float
    end_time: float
    total_calls: int = 0
    successful_calls: int = 0
    failed_calls: int = 0
    total_input_tokens: int = 0
    total_output_tokens: int = 0
    total_tokens: int = 0
    total_cost: float = 0.0
    by_model: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    by_function: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    by_user: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    by_anchor: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    # Our additions.
    costs: Dict[str, float] = field(default_factory=dict)
    unpriced_calls: int = 0
    success_rate: float = 100.0
    avg_duration_ms: float = 0.0
    p95_duration_ms: float = 0.0

    def to_dict(self) -> Dict[str, Any]:
        """The summary as a plain dict."""
        return dataclasses.asdict(self)


class ModelPricing:
    """Model prices (from ``AI_USAGE_PRICING`` or the built-in table)."""

    @classmethod
    def calculate_cost(cls, model: str, input_tokens: int, output_tokens: int) -> float:
        """Cost of a call in the model's currency; 0.0 for an unknown model."""
        return _native.calculate_cost(model, max(0, int(input_tokens)), max(0, int(output_tokens)))

    @classmethod
    def get_model_display_name(cls, model: str) -> str:
        """The model's display name (the name itself when unknown)."""
        return _native.model_display_name(model)

    @classmethod
    def get_pricing(cls, model: str) -> Optional[Dict[str, Any]]:
        """``{input, output, display_name, currency, …}`` (per 1K tokens), or None."""
        text = _native.pricing_json(model)
        return None if text is None else json.loads(text)

    @classmethod
    def get_function_name_cn(cls, name: str) -> str:
        """The function's display name from :data:`FUNCTION_NAMES_CN`."""
        return FUNCTION_NAMES_CN.get(name, name)


# ---------------------------------------------------------------------------
# The monitor
# ---------------------------------------------------------------------------

# Every live monitor, so that exit flushes them all and a forked child
# re-opens them all.
_live_monitors: "weakref.WeakSet[AIUsageMonitor]" = weakref.WeakSet()
_live_lock = threading.Lock()


class AIUsageMonitor(_native.Monitor):
    """A records directory with its rollups and writer.

    ``AIUsageMonitor(data_dir=None)``: ``data_dir`` is a ``str`` or
    ``pathlib.Path`` (default ``AI_USAGE_DIR``, else ``records/ai_usage``).
    ``follow_interval`` (seconds, ``None`` = off) is how often records that
    other processes append to the same directory are counted.

    ``record_usage(model, function, input_tokens, output_tokens, duration_ms,
    *, cost=None, total_tokens=None, success=True, user_id=None,
    anchor_id=None, session_id=None, error_msg=None) -> UsageRecord`` is
    native (see ``_native.pyi``).
    """

    def __init__(
        self,
        data_dir: Union[str, "os.PathLike[str]", None] = None,
        *,
        follow_interval: Optional[float] = 1.0,
    ) -> None:
        # The engine was opened by the native __new__ with these arguments.
        with _live_lock:
            _live_monitors.add(self)

    # -- the original's queries ------------------------------------------

    def get_session_stats(self, session_id: str) -> Dict[str, Any]:
        """``{session_id, calls, tokens, cost, …}``; zeros for an unknown session."""
        text = self._session_json(session_id)
        if text is None:
            return {"session_id": session_id, "calls": 0, "tokens": 0, "cost": 0.0}
        s = json.loads(text)
        s["tokens"] = s["total_tokens"]
        return s

    def get_hourly_summary(self, hours_ago: int = 0) -> UsageSummary:
        """The clock hour ``hours_ago`` hours before the current one."""
        return UsageSummary(**self._summary("hourly", hours_ago, 0))

    def get_daily_summary(self, days_ago: int = 0) -> UsageSummary:
        """The calendar day ``days_ago`` days before today (monitor's zone)."""
        return UsageSummary(**self._summary("daily", days_ago, 0))

    def get_monthly_summary(self, year: Optional[int] = None, month: Optional[int] = None) -> UsageSummary:
        """A calendar month (default: the current one)."""
        if year is None or month is None:
            if year is not None or month is not None:
                raise ValueError("give both year and month, or neither")
            return UsageSummary(**self._summary("monthly"))
        return UsageSummary(**self._summary("monthly", year, month))

    def get_top_users(self, limit: int = 10, days: int = 7) -> List[Dict[str, Any]]:
        """``[{user_id, tokens, cost, calls, …}]``, most tokens first."""
        return json.loads(self._top_json("user", limit, days))

    def get_cost_trend(self, days: int = 30) -> List[Dict[str, Any]]:
        """``[{date, cost, calls, tokens, …}]`` for each of the last ``days`` days."""
        return json.loads(self._trend_json(days))

    def export_report(self, output_path: Union[str, "os.PathLike[str]", None] = None, days: int = 7) -> Path:
        """Writes the JSON report of the last ``days`` days; returns its path."""
        return Path(self._export_report(output_path, days))

    # -- our additions ------------------------------------------------------

    def get_top_anchors(self, limit: int = 10, days: int = 7, by: str = "tokens") -> List[Dict[str, Any]]:
        """Top anchors (主播); ``by`` is ``tokens``, ``cost`` or ``calls``."""
        return json.loads(self._top_json("anchor", limit, days, by))

    def get_top_functions(self, limit: int = 10, days: int = 7, by: str = "tokens") -> List[Dict[str, Any]]:
        """Top functions (功能)."""
        return json.loads(self._top_json("function", limit, days, by))

    def get_forecast(self) -> Dict[str, Any]:
        """This month's spend so far and its projection to the month's end."""
        return json.loads(self._forecast_json())

    def get_savings(self, days: int = 7) -> Dict[str, Any]:
        """Cheaper-model advice from the last ``days`` days."""
        return json.loads(self._savings_json(days))

    def export_csv(
        self,
        output_path: Union[str, "os.PathLike[str]", None] = None,
        days: int = 7,
        bom: bool = False,
    ) -> Path:
        """Writes one CSV row per day × model × function; returns its path."""
        return Path(self._export_csv(output_path, days, bom))

    def health(self) -> Dict[str, Any]:
        """Writer state and replay figures."""
        return json.loads(self._health_json())

    def add_budget(
        self,
        name: str,
        limit: float,
        *,
        period: str = "daily",
        scope: str = "global",
        target: Optional[str] = None,
        currency: str = "CNY",
        thresholds: Tuple[int, ...] = (80, 100),
        block_at: Optional[int] = None,
        notify: Tuple[str, ...] = (),
    ) -> None:
        """Adds (or replaces) a budget.

        ``scope`` is ``global``, ``user``, ``anchor``, ``function``,
        ``model`` or ``tag`` (all but the first name their ``target``);
        ``period`` is ``daily`` or ``monthly``; only costs in ``currency``
        count. ``block_at`` (percent of ``limit``) makes
        :meth:`check_budget` refuse calls once reached; ``notify`` names
        the channels of the budgets file's ``"notify"`` map its alerts go to
        (delivered by ``ai-usage serve``).
        """
        scope_json: Dict[str, Any] = {"kind": scope}
        if scope != "global":
            if target is None:
                raise ValueError(f"a {scope} budget needs a target")
            scope_json["id"] = target
        self._add_budget_json(
            json.dumps(
                {
                    "name": name,
                    "scope": scope_json,
                    "period": period,
                    "limit": limit,
                    "currency": currency,
                    "thresholds": list(thresholds),
                    "block_at": block_at,
                    "notify": list(notify),
                }
            )
        )

    def check_budget(
        self,
        user_id: Optional[str] = None,
        anchor_id: Optional[str] = None,
        function: Optional[str] = None,
        model: Optional[str] = None,
        tags: Optional[List[str]] = None,
    ) -> None:
        """Call before an AI request: raises :class:`BudgetExceeded` when a
        budget matching the call (global, or its user, anchor, function,
        model or one of its tags) has reached its hard limit."""
        refused = self._check_budget_json(
            user_id, anchor_id, function, model, list(tags or ())
        )
        if refused is not None:
            raise BudgetExceeded(json.loads(refused))

    def budget_status(self) -> List[Dict[str, Any]]:
        """Where each budget stands in its current period."""
        return json.loads(self._budget_status_json())

    def on_budget_alert(self, callback: Callable[[Dict[str, Any]], Any]) -> None:
        """Calls ``callback(alert)`` (a dict) once per budget threshold crossed.

        It runs on the recording thread: keep it short.
        """

        def deliver(text: str) -> None:
            callback(json.loads(text))

        self._on_budget_alert_json(deliver)


# ---------------------------------------------------------------------------
# The global monitor, exit and fork
# ---------------------------------------------------------------------------

_global_lock = threading.Lock()
_global_monitor: Optional[AIUsageMonitor] = None


def get_usage_monitor() -> AIUsageMonitor:
    """The process-wide monitor, opened on first use (``AI_USAGE_DIR``)."""
    global _global_monitor
    m = _global_monitor
    if m is None:
        with _global_lock:
            if _global_monitor is None:
                _global_monitor = AIUsageMonitor()
            m = _global_monitor
    return m


def record_ai_usage(
    model: str,
    function: str,
    input_tokens: int,
    output_tokens: int,
    duration_ms: float,
    **kwargs: Any,
) -> UsageRecord:
    """Records one call on the global monitor (keywords as ``record_usage``)."""
    return get_usage_monitor().record_usage(model, function, input_tokens, output_tokens, duration_ms, **kwargs)


def _flush_all_at_exit() -> None:
    _native._mark_exiting()  # no budget callbacks from engine threads from now on
    with _live_lock:
        monitors = list(_live_monitors)
    for m in monitors:
        try:
            m.flush()
        except Exception:  # exit must go on; say what was lost
            logger.exception("ai_usage_monitor: could not flush %s at exit", m.data_dir)


def _flush_before_fork() -> None:
    # What the parent recorded so far is on disk, so the child (which
    # replays the directory) starts from the same figures.
    with _live_lock:
        monitors = list(_live_monitors)
    for m in monitors:
        try:
            m.flush()
        except Exception:
            logger.exception("ai_usage_monitor: could not flush %s before fork", m.data_dir)


def _after_fork_in_child() -> None:
    # The parent's threads are gone; locks they held stay held: start afresh.
    global _global_lock, _live_lock
    _global_lock = threading.Lock()
    _live_lock = threading.Lock()
    for m in list(_live_monitors):
        try:
            m._reinit_after_fork()
        except Exception:
            logger.exception("ai_usage_monitor: could not reopen %s after fork", m.data_dir)


atexit.register(_flush_all_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_flush_before_fork, after_in_child=_after_fork_in_child)


# ---------------------------------------------------------------------------
# The decorator
# ---------------------------------------------------------------------------


def _field(obj: Any, name: str) -> Any:
    """``obj.name`` or ``obj[name]``, None when absent."""
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _as_body(result: Any) -> Optional[str]:
    """The result as provider JSON text, if it can be one."""
    if isinstance(result, (str, bytes, bytearray)):
        text = result.decode("utf-8", "replace") if isinstance(result, (bytes, bytearray)) else result
        return text if text.lstrip().startswith("{") else None
    if isinstance(result, Mapping):
        return json.dumps(result, default=str)
    dump = getattr(result, "model_dump", None)  # pydantic (openai, anthropic SDKs)
    if callable(dump):
        return json.dumps(dump(), default=str)
    return None


def _tokens_of(
    result: Any, extract_tokens: Optional[Callable[[Any], Any]]
) -> Tuple[Dict[str, Any], Optional[str]]:
    """``(token keywords of record_usage, model)`` of a result.

    A provider body (text, dict or pydantic object) is read by the engine,
    which also finds cached, cache-write, reasoning and audio tokens; a plain
    object with ``usage.prompt_tokens`` is read attribute by attribute.
    """
    model = _field(result, "model")
    model = model if isinstance(model, str) and model else None
    if extract_tokens is not None:
        t = tuple(extract_tokens(result))
        if len(t) == 2:
            return {"input_tokens": int(t[0]), "output_tokens": int(t[1])}, model
        if len(t) == 3:
            return {"input_tokens": int(t[0]), "output_tokens": int(t[1]), "total_tokens": int(t[2])}, model
        raise ValueError(f"extract_tokens must return 2 or 3 numbers, got {len(t)}")
    body = _as_body(result)
    if body is not None:
        read = _native.usage_from_json(body)
        if read is not None:
            body_model = read.pop("model")
            return read, model or body_model
    usage = _field(result, "usage")
    if usage is not None:
        prompt = _field(usage, "prompt_tokens")
        completion = _field(usage, "completion_tokens")
        if prompt is not None or completion is not None:
            total = _field(usage, "total_tokens")
            tokens = {"input_tokens": int(prompt or 0), "output_tokens": int(completion or 0)}
            if total is not None:
                tokens["total_tokens"] = int(total)
            return tokens, model
    return {}, model


_CONTEXT_KEYS = ("user_id", "anchor_id", "session_id")


def _context_of(args: Tuple[Any, ...], kwargs: Mapping[str, Any]) -> Dict[str, Any]:
    """user / anchor / session ids from the keywords, else from ``args[0]`` if a dict."""
    first = args[0] if args and isinstance(args[0], Mapping) else None
    ctx: Dict[str, Any] = {}
    for key in _CONTEXT_KEYS:
        value = kwargs.get(key)
        if value is None and first is not None:
            value = first.get(key)
        if value is not None:
            ctx[key] = value
    return ctx


def _error_text(error: BaseException) -> str:
    """The error message of a failed call: the exception's text, and for an
    interruption (cancellation, ``KeyboardInterrupt``, ``SystemExit(2)``)
    its type too, since its text alone says little."""
    text = str(error)
    if isinstance(error, Exception):
        return text or type(error).__name__
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _record_call(
    function_name: str,
    model_name: Optional[str],
    provider: Optional[str],
    extract_tokens: Optional[Callable[[Any], Any]],
    args: Tuple[Any, ...],
    kwargs: Mapping[str, Any],
    started: float,
    result: Any,
    error: Optional[BaseException],
) -> None:
    """Records one decorated call; never raises into the caller."""
    try:
        duration_ms = (time.perf_counter() - started) * 1000.0
        ctx = _context_of(args, kwargs)
        tokens: Dict[str, Any] = {}
        model: Optional[str] = None
        if error is None:
            try:
                tokens, model = _tokens_of(result, extract_tokens)
            except Exception:
                logger.warning("ai_usage_monitor: could not read tokens of %s", function_name, exc_info=True)
                tokens, model = {}, None
        get_usage_monitor().record_usage(
            model_name or model or "unknown",
            function_name,
            duration_ms=duration_ms,
            provider=provider,
            **tokens,
            success=error is None,
            # 1000 characters are at most 4000 bytes: within the intake's limit.
            error_msg=None if error is None else _error_text(error)[:1000],
            **ctx,
        )
    except Exception:
        logger.exception("ai_usage_monitor: could not record a call of %s", function_name)


def track_ai_usage(
    function_name: str,
    model_name: Optional[str] = None,
    extract_tokens: Optional[Callable[[Any], Any]] = None,
    *,
    provider: Optional[str] = None,
) -> Callable[[F], F]:
    """Records every call of the decorated function (sync or ``async def``).

    Tokens come from ``result.usage.prompt_tokens / completion_tokens /
    total_tokens`` (attributes or dict keys), from ``extract_tokens(result)``
    (a 2- or 3-tuple), or from any provider body the engine reads (OpenAI,
    Anthropic, Gemini, DashScope; with their cached, cache-write, reasoning
    and audio tokens). ``provider`` (e.g. ``"anthropic"``) picks that
    provider's price when a model is sold by several. The model is ``model_name``, else
    ``result.model``. ``user_id`` / ``anchor_id`` / ``session_id`` come from
    the keywords, else from ``args[0]`` when it is a dict. An exception is
    recorded as a failure and re-raised unchanged; so are a cancelled task
    (``task.cancel()``, an ``asyncio.wait_for`` timeout), ``KeyboardInterrupt``
    and ``SystemExit``.
    """

    def decorate(func: F) -> F:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    result = await func(*args, **kwargs)
                # BaseException: a cancelled task, a timeout of
                # asyncio.wait_for, KeyboardInterrupt and SystemExit are
                # calls that ended too; recorded as failures, re-raised as is.
                except BaseException as e:
                    _record_call(function_name, model_name, provider, extract_tokens, args, kwargs, started, None, e)
                    raise
                _record_call(function_name, model_name, provider, extract_tokens, args, kwargs, started, result, None)
                return result

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                result = func(*args, **kwargs)
            except BaseException as e:
                _record_call(function_name, model_name, provider, extract_tokens, args, kwargs, started, None, e)
                raise
            _record_call(function_name, model_name, provider, extract_tokens, args, kwargs, started, result, None)
            return result

        return wrapper  # type: ignore[return-value]

    return decorate
