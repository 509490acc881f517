"""Type stubs of the compiled module ``ai_usage_monitor._native``."""

import os
from pathlib import Path
from typing import Any, Callable, List, Optional, Tuple, Union

DEFAULT_DIR: str
DIR_ENV: str

_PathLike = Union[str, "os.PathLike[str]"]

class UsageRecord:
    """One recorded AI call: the original's dataclass fields, then the record's
    others (``currency``, token details, ``priced``, ``request_id``, ``tags``,
    ``provider``), in the day-file line's order (``FIELDS``)."""

    FIELDS: Tuple[str, ...]
    timestamp: float
    user_id: Optional[str]
    anchor_id: Optional[str]
    session_id: Optional[str]
    model: str
    function: str
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost: float
    duration_ms: float
    success: bool
    error_msg: Optional[str]
    cached_input_tokens: int
    reasoning_tokens: int
    currency: str
    priced: bool
    request_id: Optional[str]
    tags: List[str]
    cache_write_tokens: int
    input_audio_tokens: int
    cached_audio_input_tokens: int
    output_audio_tokens: int
    provider: Optional[str]
    def __init__(
        self,
        timestamp: float,
        user_id: Optional[str],
        anchor_id: Optional[str],
        session_id: Optional[str],
        model: str,
        function: str,
        input_tokens: int,
        output_tokens: int,
        total_tokens: int,
        cost: float,
        duration_ms: float,
        success: bool = True,
        error_msg: Optional[str] = None,
        currency: str = "CNY",
        *,
        cached_input_tokens: int = 0,
        reasoning_tokens: int = 0,
        cache_write_tokens: int = 0,
        input_audio_tokens: int = 0,
        cached_audio_input_tokens: int = 0,
        output_audio_tokens: int = 0,
        provider: Optional[str] = None,
        request_id: Optional[str] = None,
    ) -> None: ...
    def to_dict(self) -> dict[str, Any]: ...

class Monitor:
    """The engine behind ``AIUsageMonitor``."""

    def __new__(cls, data_dir: Optional[_PathLike] = None, *, follow_interval: Optional[float] = 1.0) -> "Monitor": ...
    @property
    def data_dir(self) -> Path: ...
    def record_usage(
        self,
        model: str,
        function: str,
        input_tokens: int = 0,
        output_tokens: int = 0,
        duration_ms: float = 0.0,
        *,
        cost: Optional[float] = None,
        total_tokens: Optional[int] = None,
        success: bool = True,
        user_id: Optional[Any] = None,
        anchor_id: Optional[Any] = None,
        session_id: Optional[Any] = None,
        error_msg: Optional[str] = None,
        currency: Optional[str] = None,
        cached_input_tokens: int = 0,
        reasoning_tokens: int = 0,
        request_id: Optional[str] = None,
        timestamp: Optional[float] = None,
        cache_write_tokens: int = 0,
        input_audio_tokens: int = 0,
        cached_audio_input_tokens: int = 0,
        output_audio_tokens: int = 0,
        provider: Optional[str] = None,
    ) -> UsageRecord: ...
    def remove_budget(self, name: str) -> bool: ...
    def flush(self) -> None: ...
    def shutdown(self) -> None: ...
    def refresh(self) -> None: ...
    def refresh_price_catalogue(self) -> bool: ...
    def _summary(self, kind: str, a: Optional[int] = None, b: Optional[int] = None) -> dict[str, Any]: ...
    def _session_json(self, session_id: str) -> Optional[str]: ...
    def _top_json(self, kind: str, limit: int, days: int, by: str = "tokens") -> str: ...
    def _trend_json(self, days: int) -> str: ...
    def _forecast_json(self) -> str: ...
    def _savings_json(self, days: int) -> str: ...
    def _health_json(self) -> str: ...
    def _export_report(self, output_path: Optional[_PathLike] = None, days: Optional[int] = None) -> Path: ...
    def _export_csv(self, output_path: Optional[_PathLike] = None, days: Optional[int] = None, bom: bool = False) -> Path: ...
    def _add_budget_json(self, budget: str) -> None: ...
    def _budget_status_json(self) -> str: ...
    def _on_budget_alert_json(self, callback: Callable[[str], Any]) -> None: ...
    def _reinit_after_fork(self) -> None: ...

def _mark_exiting() -> None: ...
def calculate_cost(model: str, input_tokens: int, output_tokens: int) -> float: ...
def model_display_name(model: str) -> str: ...
def function_names() -> List[Tuple[str, str]]: ...
def pricing_json(model: str) -> Optional[str]: ...
def usage_from_json(body: str) -> Optional[dict[str, Any]]: ...
