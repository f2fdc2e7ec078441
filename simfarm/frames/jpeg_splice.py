"""JPEG frames whose picture changes only in its top rows: encoded whole once, then spliced.

A camera's MJPEG frames differ only in the code strip at the top (and in
overlays drawn there), yet a full encode costs the whole frame each time.
Here every frame is encoded with a restart marker after each MCU row (16
picture rows at the 4:2:0 sampling pinned here). Restarts reset the DC
prediction, so each MCU row's entropy-coded segment depends on that row's
pixels only. The top k MCU rows encoded as an image of their own, with the
same quality and parameters, therefore give the same tables and the same
segments for those rows; spliced in front of a full encode's remaining rows
they make exactly the bytes a full encode of the new picture would. The
restart markers need no renumbering: the top rows sit at the same place in
both images, and the SOF keeps the full height.

Each top-rows encode's headers are checked against the full encode's (its
SOF height aside) before splicing; a frame whose headers differ is encoded
whole.

The same layout lets a reader that needs only the code strip decode only
the top MCU rows of such a frame (:func:`top_rows`): cut after them, with
the SOF's height cut to match, they are a JPEG of their own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..spec import Size
from . import pixfmt

MCU_ROWS = 16  # picture rows per MCU row at 4:2:0 (2x2 luma blocks of 8x8)

_MARKER = 0xFF
_SOF0, _SOS, _DRI = 0xC0, 0xDA, 0xDD
_RST0 = 0xD0
_EOI = b"\xff\xd9"


@dataclass(frozen=True, eq=False)
class _Cut:
    """A full encode cut around its top MCU rows."""

    head: np.ndarray  # SOI up to the end of the SOS header
    tail: np.ndarray  # the restart marker ending the last top row, the rows below it and EOI
    top_head: bytes  # the headers a top-rows encode must have to be spliced in: head with its SOF height


class SplicingEncoder:
    """JPEG encodes of (H, W, 3) BGR frames of one size whose changes are confined to the top rows.

    :meth:`encode` takes a ``content`` key, the read-only frame the picture
    was copied from: each content is encoded whole once and kept (one JPEG
    per picture a ring shows), and later frames showing the same content
    only have their top :attr:`rows` encoded. The key is held while cached,
    so its id cannot be reused by another picture.
    """

    def __init__(self, size: Size, quality: int, changing_rows: int) -> None:
        import cv2  # on first use, as in pixfmt

        # The picture rows encoded per frame: the changing rows, rounded up to whole MCU rows.
        self.rows = -(-changing_rows // MCU_ROWS) * MCU_ROWS
        self._quality = quality
        self._params = (cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420,
                        cv2.IMWRITE_JPEG_RST_INTERVAL, -(-size.width // MCU_ROWS))  # in MCUs: one MCU row
        # Splicing needs rows below the top ones to keep; it stops for good once stop_splicing is called.
        self.splicing = self.rows < size.height
        self._cuts: dict[int, tuple[np.ndarray, _Cut | None]] = {}

    def stop_splicing(self) -> None:
        """Encode every frame whole from now on: rows below :attr:`rows` may change too."""
        self.splicing = False
        self._cuts.clear()

    def encode(self, bgr: np.ndarray, content: np.ndarray | None = None) -> np.ndarray:
        """The JPEG of ``bgr``, byte for byte a full encode with a restart marker after each MCU row.

        ``content`` is the frame ``bgr`` shows below its top :attr:`rows`
        (None: not known, encode whole).
        """
        if content is None or not self.splicing:
            return self._full(bgr)
        cached = self._cuts.get(id(content))
        if cached is not None and cached[0] is content:
            if cached[1] is not None:
                if (jpeg := self._splice(bgr, cached[1])) is not None:
                    return jpeg
                self._cuts[id(content)] = (content, None)  # the tables differ, and would every time
            return self._full(bgr)
        jpeg = self._full(bgr)
        self._cuts[id(content)] = (content, _cut(jpeg, self.rows // MCU_ROWS))
        return jpeg

    def _full(self, bgr: np.ndarray) -> np.ndarray:
        return pixfmt.encode_jpeg_bgr(bgr, self._quality, params=self._params)

    def _splice(self, bgr: np.ndarray, cut: _Cut) -> np.ndarray | None:
        top = pixfmt.encode_jpeg_bgr(bgr[:self.rows], self._quality, params=self._params)
        headers = len(cut.top_head)
        if top[:headers].tobytes() != cut.top_head:
            return None
        # The top rows' segments without the encode's EOI, then the cut's marker ending the last of them.
        return np.concatenate((cut.head, top[headers:-2], cut.tail))


def top_rows(jpeg: np.ndarray, rows: int) -> tuple[np.ndarray, int] | None:
    """(a JPEG of the top MCU rows of ``jpeg`` covering its first ``rows`` picture rows, their
    height), or None unless ``jpeg`` is laid out as this module encodes (4:2:0, a restart marker
    after each MCU row: simfarm's MJPEG frames) and taller than that."""
    data = jpeg.tobytes()
    try:
        sof, scan, restart = _find_headers(data)
    except (ValueError, IndexError):
        return None
    height, width = int.from_bytes(data[sof + 5:sof + 7], "big"), int.from_bytes(data[sof + 7:sof + 9], "big")
    mcu_rows = -(-rows // MCU_ROWS)
    if data[sof + 11] != 0x22 or restart != -(-width // MCU_ROWS) or mcu_rows * MCU_ROWS >= height:
        return None
    cut = _cut_at(jpeg, data, sof, scan, mcu_rows)
    if cut is None:
        return None
    top = np.frombuffer(cut.top_head + data[scan:len(data) - len(cut.tail)] + _EOI, np.uint8)
    return top, mcu_rows * MCU_ROWS


def _cut(jpeg: np.ndarray, top_rows: int) -> _Cut | None:
    """``jpeg`` cut after its first ``top_rows`` MCU rows, or None if it is not laid out as expected."""
    data = jpeg.tobytes()
    try:
        sof, scan, _ = _find_headers(data)
    except (ValueError, IndexError):
        return None
    return _cut_at(jpeg, data, sof, scan, top_rows)


def _cut_at(jpeg: np.ndarray, data: bytes, sof: int, scan: int, top_rows: int) -> _Cut | None:
    """:func:`_cut` once ``jpeg``'s bytes (``data``) and the offsets of its SOF0 and scan are known."""
    start = scan
    for row in range(top_rows):
        # Stuffed 0xFF data bytes are followed by 0x00, so the first FF Dn after a row's start ends it.
        start = data.find(bytes((_MARKER, _RST0 + row % 8)), start) + 2
        if start == 1:
            return None
    top_head = bytearray(data[:scan])
    top_head[sof + 5:sof + 7] = (top_rows * MCU_ROWS).to_bytes(2, "big")
    return _Cut(jpeg[:scan], jpeg[start - 2:], bytes(top_head))


def _find_headers(data: bytes) -> tuple[int, int, int | None]:
    """(offset of the SOF0 marker, offset of the scan data, restart interval in MCUs if any) in the
    baseline JPEG ``data``."""
    at, sof, restart = 2, None, None  # past SOI
    while True:
        if data[at] != _MARKER:
            raise ValueError("not a marker")
        kind, length = data[at + 1], int.from_bytes(data[at + 2:at + 4], "big")
        if kind == _SOF0:
            sof = at
        elif kind == _DRI:
            restart = int.from_bytes(data[at + 4:at + 6], "big")
        at += 2 + length
        if kind == _SOS:
            if sof is None:
                raise ValueError("no baseline SOF")
            return sof, at, restart
