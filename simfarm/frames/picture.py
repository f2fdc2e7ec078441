"""A webcam's picture controls (brightness, contrast, gain, saturation) applied to raw frames.

A reader that sets a control through VIDIOC_S_CTRL must see the picture
change, as with a real webcam. Each control maps its range onto a simple,
measurable effect on the raw frame, before the code strip is stamped (so
codes still decode whatever the controls say):

- brightness adds up to +-255 x (value - default) / range to the luma;
- contrast scales the luma around mid-grey by value / default;
- gain scales the luma by 1 + 3 x (value - default) / range;
- saturation scales the chroma around neutral by value / default.

Only the YUV formats a USB webcam streams (YUYV) and the BGR working format
of MJPEG are handled; at the defaults a frame is passed through untouched.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from ..spec import PixelFormat

ADJUSTABLE = ("brightness", "contrast", "gain", "saturation")


@dataclass(frozen=True)
class ControlRange:
    minimum: int
    maximum: int
    default: int

    def offset(self, value: int) -> float:
        """``value``'s distance from the default as a fraction of the range."""
        return (value - self.default) / max(1, self.maximum - self.minimum)

    def ratio(self, value: int) -> float:
        """``value`` over the default (a default of 0 counts from 1 by the range)."""
        return value / self.default if self.default > 0 else 1 + self.offset(value)


class Picture:
    """The current values of a camera's controls; thread-safe, as the USB side sets them."""

    def __init__(self, ranges: dict[str, ControlRange]) -> None:
        self._ranges = {name: r for name, r in ranges.items() if name in ADJUSTABLE}
        self._values = {name: r.default for name, r in self._ranges.items()}
        self._lock = threading.Lock()
        self._tables: tuple[np.ndarray, np.ndarray, float] | None = None

    def set(self, name: str, value: int) -> None:
        if name not in self._ranges:
            return  # a control the picture does not model (it is still stored by the device)
        with self._lock:
            self._values[name] = value
            self._tables = None

    def values(self) -> dict[str, int]:
        with self._lock:
            return dict(self._values)

    def apply(self, frame: np.ndarray, raw_format: PixelFormat) -> np.ndarray:
        """``frame`` as the controls make it: a new array, or ``frame`` itself at the defaults."""
        tables = self._lookup_tables()
        if tables is None:
            return frame
        luma, chroma, saturation = tables
        if raw_format is PixelFormat.YUYV:
            out = np.empty_like(frame)
            out[0::2] = luma[frame[0::2]]
            out[1::2] = chroma[frame[1::2]]
            return out
        if raw_format is PixelFormat.BGR24:
            out = luma[frame]
            if saturation != 1.0:  # BGR has no chroma plane: move each pixel away from its grey
                pixels = out.reshape(-1, 3).astype(np.float32)
                grey = pixels.mean(axis=1, keepdims=True)
                out = _to_bytes(grey + (pixels - grey) * saturation).reshape(frame.shape)
            return out
        raise ValueError(f"picture controls do not apply to {raw_format.name}")

    def _lookup_tables(self) -> tuple[np.ndarray, np.ndarray, float] | None:
        with self._lock:
            if self._tables is None and any(self._values[n] != r.default for n, r in self._ranges.items()):
                luma = ((_LEVELS - 128) * self._ratio("contrast") + 128) * (1 + 3 * self._offset("gain")) \
                    + 255 * self._offset("brightness")
                saturation = self._ratio("saturation")
                self._tables = (_to_bytes(luma), _to_bytes((_LEVELS - 128) * saturation + 128), saturation)
            return self._tables

    def _offset(self, name: str) -> float:
        r = self._ranges.get(name)
        return r.offset(self._values[name]) if r else 0.0

    def _ratio(self, name: str) -> float:
        r = self._ranges.get(name)
        return r.ratio(self._values[name]) if r else 1.0


_LEVELS = np.arange(256, dtype=np.float64)


def _to_bytes(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)
