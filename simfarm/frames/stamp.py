"""The per-frame part of a frame: code strip, dynamic overlays, final encoding.

Everything else about a frame is rendered once into a ring; only what this
module writes changes from frame to frame, which is what keeps a camera's
CPU cost far below an encoder's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..spec import PixelFormat, Size
from . import pixfmt
from .code import CodeStrip, FrameCode

class _RawStrip:
    """A ring frame's strip as whole raw rows, so a stamp rewrites it with three line copies.

    Built after the frame's first full stamp: ``lines`` holds one raw row per
    row of cells as that stamp left it (chroma neutral), and a new code only
    changes the luma samples of those three rows before they are copied
    down the strip. Only formats whose strip rows are contiguous in the
    buffer with their luma inside (YUYV, UYVY, NV12, YU12) get one.
    """

    def __init__(self, frame: np.ndarray, luma: np.ndarray, strip: CodeStrip) -> None:
        row_bytes, step = luma.strides
        offset = luma.ctypes.data - frame.ctypes.data
        self.frame = frame  # held, so the id it is cached under stays this frame's
        self.rows = frame[: strip.height * row_bytes].reshape(strip.height, row_bytes)
        self.lines = self.rows[[first for first, _ in strip.row_spans]]  # a copy: the template rows
        self.luma = self.lines[:, offset::step][:, : strip.width]

    @staticmethod
    def fits(frame: np.ndarray, luma: np.ndarray) -> bool:
        return (frame.ndim == 1 and frame.flags.c_contiguous
                and 0 <= luma.ctypes.data - frame.ctypes.data < luma.strides[1] <= luma.strides[0])


# MJPEG frames are composed as BGR and compressed per frame, since the code
# changes every frame and JPEG data cannot be patched in place.
_WORKING_FORMAT = {PixelFormat.MJPEG: PixelFormat.BGR24}


def working_format(fmt: PixelFormat) -> PixelFormat:
    """The raw format a ring for ``fmt`` is rendered in."""
    return _WORKING_FORMAT.get(fmt, fmt)


class Stamper:
    """Turns a ring frame into the bytes to write for one sequence number."""

    def __init__(self, fmt: PixelFormat, size: Size, overlays: Sequence[object] = (),
                 *, jpeg_quality: int = 85) -> None:
        self.fmt = fmt
        self.size = size
        self.raw_format = working_format(fmt)
        self.strip = CodeStrip(size.width, size.height)
        self._overlays = list(overlays)
        self._jpeg_quality = jpeg_quality
        # The strips of frames that keep their content between stamps (a ring), keyed by id.
        self._strips: dict[int, _RawStrip] = {}

    def stamp(self, frame: np.ndarray, code: FrameCode, *, frame_index: int,
              wall_time: float, reused: bool = False) -> np.ndarray:
        """Write code and overlays into ``frame`` (in place) and return what to send.

        ``reused`` says ``frame`` is a ring buffer stamped before: its strip
        rows are kept (see _RawStrip), so a stamp is the cheapest possible
        per-frame work: three short lines updated, then copied down the strip.
        """
        for overlay in self._overlays:
            y, x, patch = overlay.patch(frame_index, wall_time)
            pixfmt.write_rgb_patch(frame, self.raw_format, self.size, y, x, patch)
        raw = self._strips.get(id(frame)) if reused else None
        if raw is not None:
            self.strip.cell_rows(code, raw.luma)
            self.strip.spread(raw.lines, raw.rows)
        else:
            pixfmt.write_luma_strip(frame, self.raw_format, self.size, self.strip.render(code))
            luma = pixfmt.luma_view(frame, self.raw_format, self.size) if reused else None
            if luma is not None and self.raw_format is not PixelFormat.GREY and _RawStrip.fits(frame, luma):
                self._strips[id(frame)] = _RawStrip(frame, luma, self.strip)
        if self.fmt is PixelFormat.MJPEG:
            # The working frame is already BGR, what the encoder takes: no conversion.
            bgr = frame.reshape(self.size.height, self.size.width, 3)
            return pixfmt.encode_jpeg_bgr(bgr, self._jpeg_quality)
        return frame
