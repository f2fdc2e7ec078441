"""What a base generator is, and the helpers every generator shares.

A generator turns checked parameters, a frame size and a rate into one cycle
of RGB frames: (H, W, 3) uint8, C-contiguous, played in a loop. A cycle must
close (its last frame leads smoothly into its first) and fit ``max_frames``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from ..errors import BadInput
from ..spec import Size
from .params import Colour, Param

Frames = list[np.ndarray]
# (checked params, size, fps, max_frames) -> one cycle of frames
RenderFn = Callable[[Mapping[str, Any], Size, Fraction, int], Frames]


@dataclass(frozen=True)
class Generator:
    """A named base a pattern file can build on."""

    name: str
    doc: str
    params: Mapping[str, Param]
    render: RenderFn


def filled(size: Size, colour: Colour) -> np.ndarray:
    """A frame of one colour."""
    frame = np.empty((size.height, size.width, 3), np.uint8)
    frame[:] = colour
    return frame


def cycle_frames(seconds: float, fps: Fraction, max_frames: int, advice: str) -> int:
    """Frames in a cycle lasting ``seconds``: at least one, at most ``max_frames``.

    ``advice`` tells the user which parameter shortens the cycle.
    """
    count = max(1, round(seconds * fps))
    if count > max_frames:
        raise BadInput(f"one cycle is {seconds:.2f} s ({count} frames at {fps} fps), "
                       f"more than the {max_frames}-frame limit; {advice}")
    return count


def lerp(start: Colour, end: Colour, t: np.ndarray) -> np.ndarray:
    """Colours between ``start`` (t=0) and ``end`` (t=1), shape t.shape + (3,), uint8."""
    a = np.asarray(start, np.float32)
    b = np.asarray(end, np.float32)
    return (a + (b - a) * t[..., None] + 0.5).astype(np.uint8)
