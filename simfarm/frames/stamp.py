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
from .code import BLACK, WHITE, CodeStrip, FrameCode

class _RawStrip:
    """A ring frame's strip, stamped by joining prepared bytes: no numpy call per frame.

    Built after the frame's first full stamp has made the chroma under the
    strip neutral: for each cell, the raw bytes of one of its lines drawn
    black and drawn white are kept, so a code's line of a row of cells is a
    join of 32 of them, repeated down the row and copied into the frame.
    Per frame that is a few dozen Python steps and three copies, which
    matters more than it seems: the producer wakes every frame with cold
    caches, where each numpy call costs many times its warm price. Only
    formats whose strip rows are contiguous in the buffer, with their luma
    samples inside, get one (YUYV, UYVY, NV12, YU12).
    """

    def __init__(self, frame: np.ndarray, luma: np.ndarray, strip: CodeStrip) -> None:
        row_bytes, step = luma.strides
        offset = luma.ctypes.data - frame.ctypes.data
        pixel_bytes = row_bytes // strip.width
        self.frame = frame  # held, so the id it is cached under stays this frame's
        self._view = memoryview(frame)
        self._bit_string = strip.bit_string
        self._rows = []
        edges = [edge * pixel_bytes for edge in strip.column_edges]
        for bits, (first, end) in zip(strip.cell_bits, strip.row_spans, strict=True):
            black = frame[first * row_bytes:(first + 1) * row_bytes].copy()
            white = black.copy()
            black[offset::step], white[offset::step] = BLACK, WHITE
            cells = [(bit, black[a:b].tobytes(), white[a:b].tobytes())
                     for bit, a, b in zip(bits, edges[:-1], edges[1:], strict=True)]
            self._rows.append((first * row_bytes, end * row_bytes, row_bytes, cells))

    @staticmethod
    def fits(frame: np.ndarray, luma: np.ndarray, width: int) -> bool:
        row_bytes, step = luma.strides
        return (frame.ndim == 1 and frame.flags.c_contiguous and row_bytes % width == 0
                and 0 <= luma.ctypes.data - frame.ctypes.data < step == row_bytes // width)

    def stamp(self, code: FrameCode) -> None:
        bits, view = self._bit_string(code), self._view
        for start, end, line_bytes, cells in self._rows:
            view[start:start + line_bytes] = b"".join([white if bits[bit] == "1" else black
                                                       for bit, black, white in cells])
            # Down the row by doubling copies inside the frame: no strip-sized bytes allocated
            # (and paged in) per frame.
            done = line_bytes
            while done < end - start:
                step = min(done, end - start - done)
                view[start + done:start + done + step] = view[start:start + step]
                done += step


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
        is rewritten from prepared bytes (see _RawStrip), the cheapest
        possible per-frame work.
        """
        for overlay in self._overlays:
            y, x, patch = overlay.patch(frame_index, wall_time)
            pixfmt.write_rgb_patch(frame, self.raw_format, self.size, y, x, patch)
        raw = self._strips.get(id(frame)) if reused else None
        if raw is not None:
            raw.stamp(code)
        else:
            pixfmt.write_luma_strip(frame, self.raw_format, self.size, self.strip.render(code))
            luma = pixfmt.luma_view(frame, self.raw_format, self.size) if reused else None
            if luma is not None and self.raw_format is not PixelFormat.GREY and _RawStrip.fits(frame, luma, self.size.width):
                self._strips[id(frame)] = _RawStrip(frame, luma, self.strip)
        if self.fmt is PixelFormat.MJPEG:
            # The working frame is already BGR, what the encoder takes: no conversion.
            bgr = frame.reshape(self.size.height, self.size.width, 3)
            return pixfmt.encode_jpeg_bgr(bgr, self._jpeg_quality)
        return frame
