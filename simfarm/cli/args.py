"""Argument types shared by commands: argparse turns their ValueError into one line and exit 2."""

from __future__ import annotations

import argparse
import math


def seconds(text: str) -> float:
    """A timeout in seconds: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text} must be a number of seconds >= 0")
    return value
