"""What a run's end may store: its result, bounded so that the journal can always hold it."""

from __future__ import annotations

from typing import Any, Final

import msgspec

_RESULT_CAP: Final = 65536
_RESULT_DEPTH: Final = 64
_ENCODER = msgspec.msgpack.Encoder()


def storable_result(result: Any) -> Any:
    """A run's result as it can be journalled: long text is cut, and a value the journal
    cannot hold (nested too deep, too large, not encodable) becomes a short note. Executors
    bound what remote systems send; this is the last guard, so a reply can never crash the
    daemon when the run's end is recorded."""
    if result is None or isinstance(result, bool | int | float):
        return result
    if isinstance(result, str):
        return result if len(result) <= _RESULT_CAP else result[:_RESULT_CAP] + "…[truncated]"
    if _too_deep(result, _RESULT_DEPTH):
        return f"[result not stored: nested deeper than {_RESULT_DEPTH} levels]"
    try:
        size = len(_ENCODER.encode(result))
    except (RecursionError, TypeError, ValueError, OverflowError, msgspec.EncodeError) as exc:
        return f"[result not stored: {type(exc).__name__}]"
    if size > _RESULT_CAP:
        return f"[result not stored: {size} bytes encoded, over the {_RESULT_CAP} byte limit]"
    return result


def _too_deep(value: Any, limit: int) -> bool:
    """Whether containers nest deeper than ``limit`` (iterative: no recursion to exhaust)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    seen = 0
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        seen += 1
        if seen > _RESULT_CAP:
            return True  # a huge structure: the size check would refuse it anyway
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list | tuple):
            stack.extend((v, depth + 1) for v in item)
    return False
