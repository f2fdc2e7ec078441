"""Overlays drawn over any pattern: static text (burned in once) and a live clock.

The clock is dynamic: it cannot be pre-rendered, so it is a small patch the
producer writes into each frame (``pixfmt.write_rgb_patch``). The patch has a
fixed, even-aligned box and always repaints the whole box, so the previous
frame's digits never show through.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..spec import Size
from . import params as p
from .params import Colour, Param

POSITIONS = ("top-left", "top", "top-right", "center", "bottom-left", "bottom", "bottom-right")


class DynamicOverlay(Protocol):
    def patch(self, frame_index: int, wall_time: float) -> tuple[int, int, np.ndarray]:
        """(y, x, RGB patch) to write over frame ``frame_index`` of the ring at ``wall_time``."""


@dataclass(frozen=True)
class _TextBox:
    """Where a line of text goes and how big it is drawn; y, x, height, width are even."""

    y: int
    x: int
    height: int
    width: int
    scale: float
    thickness: int
    pad: int
    baseline_y: int

    def draw(self, patch: np.ndarray, text: str, colour: Colour) -> None:
        import cv2  # on first use: patterns without text never load OpenCV

        cv2.putText(patch, text, (self.pad, self.baseline_y), cv2.FONT_HERSHEY_SIMPLEX, self.scale, colour,
                    self.thickness, cv2.LINE_AA)

    def cut(self, frame: np.ndarray) -> np.ndarray:
        """A contiguous copy of the box's pixels (OpenCV draws only into contiguous arrays)."""
        return np.ascontiguousarray(frame[self.y:self.y + self.height, self.x:self.x + self.width])


def _even(value: float) -> int:
    return max(0, int(value) // 2 * 2)


def _layout(widest_text: str, size: Size, share: float, position: str) -> _TextBox:
    """A box sized for ``widest_text`` with glyphs ``share`` of the frame height tall."""
    import cv2

    target = max(8.0, share * size.height)
    (_, unit_height), _ = cv2.getTextSize(widest_text, cv2.FONT_HERSHEY_SIMPLEX, 1.0, 1)
    scale = target / unit_height
    thickness = max(1, round(scale * 1.5))
    (text_w, text_h), baseline = cv2.getTextSize(widest_text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    pad = max(2, text_h // 4)
    width = min(_even(text_w + 2 * pad + 1), _even(size.width))
    height = min(_even(text_h + baseline + 2 * pad + 1), _even(size.height))
    margin = _even(min(size.width, size.height) * 0.03)
    vertical, _, horizontal = position.partition("-")  # "top" and "center" centre horizontally
    x = {"left": margin, "right": size.width - margin - width}.get(horizontal, (size.width - width) / 2)
    y = {"top": margin, "bottom": size.height - margin - height}.get(vertical, (size.height - height) / 2)
    return _TextBox(_even(y), _even(x), height, width, scale, thickness, pad, pad + text_h)


def _text(params: Mapping[str, Any], frames: Sequence[np.ndarray], size: Size) -> None:
    box = _layout(params["text"], size, params["size"], params["position"])
    for frame in frames:
        patch = box.cut(frame)
        if params["background"] is not None:
            patch[:] = params["background"]
        box.draw(patch, params["text"], params["colour"])
        frame[box.y:box.y + box.height, box.x:box.x + box.width] = patch


class ClockOverlay:
    """Wall-clock time (HH:MM:SS.mmm) and frame number, redrawn for every frame.

    With a ``background`` colour the box is flat; without one, the pattern
    under the box is kept per ring frame (a few KB each) so the text sits on
    the right picture. ``frame_index`` must be the index the ring frame was
    taken with, since the cycle length is how backgrounds are matched.
    """

    def __init__(self, params: Mapping[str, Any], frames: Sequence[np.ndarray], size: Size) -> None:
        self._show_frame = params["frame_number"]
        self._clock = time.gmtime if params["timezone"] == "utc" else time.localtime
        self._colour = params["colour"]
        self._box = _layout(self._text(0.0, 99_999_999), size, params["size"], params["position"])
        if params["background"] is None:
            self._backgrounds = [self._box.cut(frame) for frame in frames]
        else:
            flat = np.empty((self._box.height, self._box.width, 3), np.uint8)
            flat[:] = params["background"]
            self._backgrounds = [flat]

    def _text(self, wall_time: float, frame_index: int) -> str:
        stamp = time.strftime("%H:%M:%S", self._clock(wall_time)) + f".{int(wall_time * 1000) % 1000:03d}"
        return f"{stamp}  #{frame_index}" if self._show_frame else stamp

    def patch(self, frame_index: int, wall_time: float) -> tuple[int, int, np.ndarray]:
        patch = self._backgrounds[frame_index % len(self._backgrounds)].copy()
        self._box.draw(patch, self._text(wall_time, frame_index), self._colour)
        return self._box.y, self._box.x, patch


@dataclass(frozen=True)
class OverlayKind:
    """An overlay ``kind:``; ``apply`` draws into the cycle's frames or returns a dynamic overlay."""

    name: str
    doc: str
    params: Mapping[str, Param]
    apply: Callable[[Mapping[str, Any], list[np.ndarray], Size], DynamicOverlay | None]


_COMMON = {
    "position": p.choice("bottom-right", POSITIONS, "where the box sits"),
    "size": p.number(0.05, 0.01, 0.5, "text height as a share of the frame height"),
    "colour": p.colour((255, 255, 255), "text colour"),
    "background": p.colour((0, 0, 0), "box colour, or null for none", optional=True),
}

OVERLAYS = {kind.name: kind for kind in [
    OverlayKind("text", "a fixed line of text", {"text": p.text(p.REQUIRED, "the text"), **_COMMON}, _text),
    OverlayKind("clock", "live wall-clock time and frame number", {
        **_COMMON,
        "position": p.choice("bottom-left", POSITIONS, "where the box sits"),
        "timezone": p.choice("local", ("local", "utc"), "which clock to show"),
        "frame_number": p.flag(True, "also show the frame number"),
    }, ClockOverlay),
]}
