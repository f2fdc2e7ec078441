"""Durations as people write them: ``500ms``, ``2s``, ``1.5m``, ``1h``, or plain seconds."""

from __future__ import annotations

import math
import re

from ..errors import BadInput

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?")


def parse_duration(value: object, what: str = "duration", *, allow_zero: bool = False) -> float:
    """Seconds (> 0, or >= 0 with ``allow_zero``) from a number of seconds or a string with a unit.

    ``what`` names the value in the error message (e.g. ``for``, ``every``).
    """
    # bool is an int in Python, but `for: yes` is a mistake, not one second.
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.fullmatch(value.strip())):
        seconds = float(match[1]) * _UNITS[match[2] or "s"]
    else:
        raise BadInput(f"{what} {value!r} is not a duration (e.g. 500ms, 2s, 1m, 1h)")
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        raise BadInput(f"{what} {value!r} must be a {'non-negative' if allow_zero else 'positive'}, "
                       "finite duration")
    return seconds


def format_duration(seconds: float) -> str:
    """A short spelling that :func:`parse_duration` reads back: ``500ms``, ``2s``, ``1.5s``."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}s"
