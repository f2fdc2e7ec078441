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
from .code import BLACK, COLUMNS, WHITE, CodeStrip, FrameCode, cell_bits
from .jpeg_splice import SplicingEncoder


class _RawStrip:
    """A ring frame's strip, stamped by joining prepared bytes: no numpy call and no Python frame per cell.

    Built after the frame's first full stamp has made the chroma under the
    strip neutral. The strip's lines are the first rows of the buffer's
    first plane in every raw format. For every column of cells the raw bytes
    of that column in one strip line are kept twice, drawn black and drawn
    white, so a code's line of a row of cells is one C-level join over the
    row's 0/1 cell values (code.cell_bits) picking from each column's pair,
    repeated down the row and copied into the frame. Per frame that is a
    handful of Python steps and three copies, which matters more than it
    seems: the producer wakes every frame with cold caches, where each Python
    call and each numpy call costs many times its warm price.
    """

    def __init__(self, frame: np.ndarray, fmt: PixelFormat, strip: CodeStrip) -> None:
        row_bytes = pixfmt.line_bytes(fmt, strip.width)
        self.frame = frame  # held, so the id it is cached under stays this frame's
        self._view = memoryview(frame)
        # Per row of cells: where its cells start in cell_bits(), and its bytes in the frame.
        self._rows = [(r * COLUMNS, (r + 1) * COLUMNS, first * row_bytes, end * row_bytes, end - first)
                      for r, (first, end) in enumerate(strip.row_spans)]
        # A strip line drawn all black, and all white: the top line of a two-line frame so drawn.
        lines = Size(strip.width, 2)
        levels = []
        for level in (BLACK, WHITE):
            drawn = np.zeros(pixfmt.frame_bytes(fmt, lines), np.uint8)
            pixfmt.write_luma_strip(drawn, fmt, lines, np.full((1, strip.width), level, np.uint8))
            levels.append(drawn[:row_bytes])
        edges = [edge * (row_bytes // strip.width) for edge in strip.column_edges]
        self._columns = [tuple(levels[bit][edges[c]:edges[c + 1]].tobytes() for bit in (0, 1))
                         for c in range(COLUMNS)]

    @staticmethod
    def fits(frame: np.ndarray) -> bool:
        return frame.ndim == 1 and frame.flags.c_contiguous

    def stamp(self, code: FrameCode) -> None:
        cells, view, pick = cell_bits(code), self._view, tuple.__getitem__
        for first, last, start, end, lines in self._rows:
            # map() over a C method and bytes repetition run in C: no Python frame per cell or line.
            view[start:end] = b"".join(map(pick, self._columns, cells[first:last])) * lines


# MJPEG frames are composed as BGR, what the encoder takes, and compressed per
# frame: whole, or only their top rows spliced into a ring frame's full encode
# (see jpeg_splice).
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
        self._jpeg = SplicingEncoder(size, jpeg_quality, self.strip.height) if fmt is PixelFormat.MJPEG else None
        # The strips of frames that keep their content between stamps (a ring), keyed by id.
        self._strips: dict[int, _RawStrip] = {}

    def stamp(self, frame: np.ndarray, code: FrameCode, *, frame_index: int,
              wall_time: float, reused: bool = False, content: np.ndarray | None = None) -> np.ndarray:
        """Write code and overlays into ``frame`` (in place) and return what to send.

        ``reused`` says ``frame`` is a ring buffer stamped before: its strip
        is rewritten from prepared bytes (see _RawStrip), the cheapest
        possible per-frame work. ``content`` is the read-only frame that
        ``frame`` was copied from (a ring's cycle frame, FrameSource.content):
        an MJPEG frame of a content seen before has only its top rows
        encoded, the rest comes from that content's first encode (see
        jpeg_splice), unless an overlay ever drew below those rows.
        """
        for overlay in self._overlays:
            y, x, patch = overlay.patch(frame_index, wall_time)
            if self._jpeg is not None and y + patch.shape[0] > self._jpeg.rows:
                self._jpeg.stop_splicing()  # the ring's pictures no longer match their cached encodes
            pixfmt.write_rgb_patch(frame, self.raw_format, self.size, y, x, patch)
        raw = self._strips.get(id(frame)) if reused else None
        if raw is not None:
            raw.stamp(code)
        else:
            pixfmt.write_luma_strip(frame, self.raw_format, self.size, self.strip.render(code))
            if reused and _RawStrip.fits(frame):
                self._strips[id(frame)] = _RawStrip(frame, self.raw_format, self.strip)
        if self._jpeg is not None:
            return self._jpeg.encode(frame.reshape(self.size.height, self.size.width, 3), content)
        return frame
