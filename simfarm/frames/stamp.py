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
        # Luma views of frames that keep their content between stamps (a
        # ring), keyed by id; the entry holds the frame, so the id stays its own.
        self._views: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def stamp(self, frame: np.ndarray, code: FrameCode, *, frame_index: int,
              wall_time: float, reused: bool = False) -> np.ndarray:
        """Write code and overlays into ``frame`` (in place) and return what to send.

        ``reused`` says ``frame`` is a ring buffer stamped before: its chroma
        under the strip is already neutral, so only the luma cells are
        rewritten, the cheapest possible per-frame work.
        """
        for overlay in self._overlays:
            y, x, patch = overlay.patch(frame_index, wall_time)
            pixfmt.write_rgb_patch(frame, self.raw_format, self.size, y, x, patch)
        cached = self._views.get(id(frame)) if reused else None
        if cached is not None:
            self.strip.stamp(cached[1], code)
        else:
            pixfmt.write_luma_strip(frame, self.raw_format, self.size, self.strip.render(code))
            view = pixfmt.luma_view(frame, self.raw_format, self.size) if reused else None
            if view is not None and self.raw_format is not PixelFormat.GREY:
                self._views[id(frame)] = (frame, view)
        if self.fmt is PixelFormat.MJPEG:
            # The working frame is already BGR, what the encoder takes: no conversion.
            bgr = frame.reshape(self.size.height, self.size.width, 3)
            return pixfmt.encode_jpeg_bgr(bgr, self._jpeg_quality)
        return frame
