"""Moving objects for motion-detection tests: a bouncing ball and a sliding box.

Speeds are in frame widths per second. Objects bounce off the frame edges
and a cycle is one round trip, so the loop has no jump; the round trip is
rounded to whole frames, which changes the speed by at most half a frame's
worth. Edges are anti-aliased so the centroid moves smoothly (sub-pixel).
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import Any

import numpy as np

from ..spec import Size
from . import params as p
from .core import Frames, Generator, cycle_frames, filled
from .params import Colour


def _triangle(phase: float) -> float:
    """0 -> 1 -> 0 as ``phase`` goes 0 -> 0.5 -> 1 (and periodic)."""
    return 1 - abs(2 * (phase % 1.0) - 1)


def _round_trip(travel: float, speed: float, size: Size, fps: Fraction, max_frames: int) -> int:
    return cycle_frames(2 * max(travel, 0.0) / (speed * size.width), fps, max_frames,
                        "raise speed or enlarge the object")


def _coverage(start: float, length: float, count: int) -> np.ndarray:
    """How much of each of ``count`` unit pixels the interval [start, start+length) covers."""
    edges = np.arange(count, dtype=np.float32)
    return np.clip(np.minimum(edges + 1, start + length) - np.maximum(edges, start), 0, 1)


def _span(coverage: np.ndarray) -> tuple[int, int]:
    """The [first, last) pixels ``coverage`` touches, so only they are blended."""
    touched = np.flatnonzero(coverage)
    return int(touched[0]), int(touched[-1]) + 1


def _blend(frame: np.ndarray, top: int, left: int, alpha: np.ndarray, colour: Colour) -> None:
    """Paint ``colour`` over ``frame`` with per-pixel ``alpha`` placed at (top, left)."""
    region = frame[top:top + alpha.shape[0], left:left + alpha.shape[1]]
    a = alpha[:, :, None]
    region[:] = (region * (1 - a) + np.asarray(colour, np.float32) * a + 0.5).astype(np.uint8)


def _draw_disc(frame: np.ndarray, cx: float, cy: float, radius: float, colour: Colour) -> None:
    height, width = frame.shape[:2]
    top, bottom = max(0, int(cy - radius) - 1), min(height, int(cy + radius) + 2)
    left, right = max(0, int(cx - radius) - 1), min(width, int(cx + radius) + 2)
    y = np.arange(top, bottom, dtype=np.float32)[:, None] + 0.5 - cy
    x = np.arange(left, right, dtype=np.float32)[None, :] + 0.5 - cx
    # A one-pixel linear ramp across the rim approximates the covered area.
    _blend(frame, top, left, np.clip(radius + 0.5 - np.hypot(x, y), 0, 1), colour)


def _moving_ball(params: Mapping[str, Any], size: Size, fps: Fraction, max_frames: int) -> Frames:
    radius = params["radius"] * size.height
    travel_x, travel_y = size.width - 2 * radius, max(size.height - 2 * radius, 0.0)
    count = _round_trip(travel_x, params["speed"], size, fps, max_frames)
    background = filled(size, params["background"])
    frames = []
    for index in range(count):
        phase = index / count
        frame = background.copy()
        # Vertical motion a quarter-cycle out of step: the ball runs a diamond
        # touching all four edges and starts at the left edge, half-way down.
        _draw_disc(frame, radius + max(travel_x, 0.0) * _triangle(phase),
                   radius + travel_y * _triangle(phase + 0.25), radius, params["colour"])
        frames.append(frame)
    return frames


def _moving_box(params: Mapping[str, Any], size: Size, fps: Fraction, max_frames: int) -> Frames:
    box_w, box_h = params["width"] * size.width, params["height"] * size.height
    rows = _coverage((size.height - box_h) / 2, box_h, size.height)
    top, bottom = _span(rows)
    count = _round_trip(size.width - box_w, params["speed"], size, fps, max_frames)
    background = filled(size, params["background"])
    frames = []
    for index in range(count):
        left = (size.width - box_w) * _triangle(index / count)
        columns = _coverage(left, box_w, size.width)
        first, last = _span(columns)
        frame = background.copy()
        _blend(frame, top, first, rows[top:bottom, None] * columns[None, first:last], params["colour"])
        frames.append(frame)
    return frames


_SPEED = p.number(1.0, 0, 50, "frame widths per second", low_open=True)
_BACKGROUND = p.colour((40, 40, 40), "background colour")
_COLOUR = p.colour((255, 255, 255), "object colour")

GENERATORS = [
    Generator("moving-ball", "a ball bouncing off all four edges", {
        "radius": p.number(0.08, 0.005, 0.5, "radius as a share of the frame height"),
        "speed": _SPEED, "colour": _COLOUR, "background": _BACKGROUND,
    }, _moving_ball),
    Generator("moving-box", "a box sliding left and right across the middle", {
        "width": p.number(0.15, 0.005, 1, "width as a share of the frame width"),
        "height": p.number(0.3, 0.005, 1, "height as a share of the frame height"),
        "speed": _SPEED, "colour": _COLOUR, "background": _BACKGROUND,
    }, _moving_box),
]
