"""Frame codes: who sent a frame, which one, and when, readable from its pixels.

Layout (geometry depends on the frame width ``W`` only, so a decoder finds the
strip in a frame scaled by any factor):

- A strip over the top rows, full width: ``COLUMNS`` x ``ROWS`` (32 x 3) square
  cells of nominal side ``W/32``. Column edges are at ``round(i*W/32)``, row
  edges at ``round(j*W/32)``, so the strip is ``round(3*W/32)`` rows high.
- Each cell is binary luma: 16 for 0 and 235 for 1 (BT.601 limited black and
  white, i.e. RGB 0 and 255).
- Four cells are fixed references, in two white/black pairs at opposite ends:
  (row 0, columns 0 and 1) and (row 2, columns 30 and 31). They give the
  decoder the black and white levels to threshold against and reject frames
  with no code (black, green, noise, plain patterns) before the CRC.
- The other 92 cells, in row-major order, carry this word, most significant
  bit first: camera (8 bits), sequence (32), time_ms (20), CRC-32 (32). The
  CRC (zlib's, IEEE 802.3) covers the 60 payload bits packed big-endian into
  8 bytes. On this 92-bit word it has Hamming distance 8 (checked
  exhaustively): every error of up to 7 cells is caught, and a random word
  passes with probability 2**-32.

``time_ms`` is the send time in ms of the Unix wall clock, modulo
``TIME_WRAP`` = 2**20 ms (about 17.5 minutes): :meth:`FrameCode.latency_ms`
recovers a latency from a full receive time as long as the true latency is
within half a wrap (about 8.7 minutes) either way.

Guarantees (tests/host/test_code_encodes.py): from a source width of
``GUARANTEED_WIDTH`` (320 px) up, every frame of a stream over moving noise
decodes to exactly its code after libx264 ``-preset ultrafast -crf 30``
(yuv420p), MJPEG at quality 50 (OpenCV; ffmpeg ``-q:v 10``, its equal in PSNR,
and ``-q:v 31``, its coarsest), a 2x downscale (ffmpeg's bicubic scaler,
OpenCV ``INTER_AREA``) and a 2x downscale followed by that x264 encode; clean
frames also decode after scaling by any factor from 0.5 to 2.5. Narrower
frames down to ``MIN_WIDTH`` carry a code that decodes from clean frames.
Whatever the damage, :func:`decode` returns either the exact code that was
stamped or None.
"""

from __future__ import annotations

import operator
import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..errors import BadInput

CAMERA_BITS, SEQUENCE_BITS, TIME_BITS, CHECK_BITS = 8, 32, 20, 32
MAX_CAMERA = 2**CAMERA_BITS - 1
SEQUENCE_WRAP = 2**SEQUENCE_BITS
TIME_WRAP = 2**TIME_BITS

COLUMNS, ROWS = 32, 3
BLACK, WHITE = 16, 235
GUARANTEED_WIDTH = 320
MIN_WIDTH = 2 * COLUMNS  # two pixels per cell: anything narrower has no cell centre

_PAYLOAD_BITS = CAMERA_BITS + SEQUENCE_BITS + TIME_BITS
_WORD_BITS = _PAYLOAD_BITS + CHECK_BITS
_WORD_BYTES = (_WORD_BITS + 7) // 8
_PAD_BITS = 8 * _WORD_BYTES - _WORD_BITS  # leading zero bits when the word is packed into bytes

# Reference cells as (row, column) -> bit. Each pair is a white/black edge, so a
# frame must show two sharp transitions in the right places to be read at all.
_REFERENCES = {(0, 0): 1, (0, 1): 0, (ROWS - 1, COLUMNS - 2): 1, (ROWS - 1, COLUMNS - 1): 0}
_CELLS = [(r, c) for r in range(ROWS) for c in range(COLUMNS)]
_DATA_CELLS = [cell for cell in _CELLS if cell not in _REFERENCES]
assert len(_DATA_CELLS) == _WORD_BITS

# Each cell's source in the "extended word": the word's bits followed by the
# constant bits 0 and 1, so rendering maps pixels straight to extended-word bits.
_CELL_SOURCE = np.array([_WORD_BITS + _REFERENCES[cell] if cell in _REFERENCES
                         else _DATA_CELLS.index(cell) for cell in _CELLS], dtype=np.intp)
_DATA_INDEX = np.array([r * COLUMNS + c for r, c in _DATA_CELLS], dtype=np.intp)
_REFERENCE_INDEX = np.array([r * COLUMNS + c for r, c in _REFERENCES], dtype=np.intp)
_REFERENCE_BITS = np.array(list(_REFERENCES.values()), dtype=bool)
_LEVELS = np.array([BLACK, WHITE], dtype=np.uint8)

# A decoded cell must sit within this fraction of the reference contrast from
# its own level (so at least 0.5 - _MARGIN away from the threshold); anything
# less sure is treated as damage rather than guessed at.
_MARGIN = 0.3
# The references must differ by at least this much luma; a washed-out strip is
# not a strip.
_MIN_CONTRAST = 64
# Where a cell is sampled, as fractions of its side: its central 40 %, away
# from the ringing and blur codecs and scalers put at its edges.
_SAMPLE_FRACTIONS = np.array([0.3, 0.43, 0.57, 0.7])


@dataclass(frozen=True, init=False)
class FrameCode:
    """What a frame says about itself.

    ``sequence`` and ``time_ms`` are stored reduced modulo ``SEQUENCE_WRAP`` and
    ``TIME_WRAP``, so a full value (e.g. ``int(time.time() * 1000)``) may be
    passed and only its low bits are kept, exactly what a decoder gets back.
    """

    camera: int
    sequence: int
    time_ms: int

    # Written out, not generated with a __post_init__ that stores every field a
    # second time: a producer makes one of these per frame.
    def __init__(self, camera: int, sequence: int, time_ms: int) -> None:
        # operator.index: numpy integers are welcome, floats are a mistake.
        camera = operator.index(camera)
        if not 0 <= camera <= MAX_CAMERA:
            raise BadInput(f"camera id {camera} is out of range 0..{MAX_CAMERA}")
        store = object.__setattr__
        store(self, "camera", camera)
        store(self, "sequence", operator.index(sequence) % SEQUENCE_WRAP)
        store(self, "time_ms", operator.index(time_ms) % TIME_WRAP)

    @property
    def payload(self) -> int:
        """Camera, sequence and time as one 60-bit integer."""
        return (((self.camera << SEQUENCE_BITS) | self.sequence) << TIME_BITS) | self.time_ms

    @property
    def check(self) -> int:
        """The 32 check bits: CRC-32 of the payload."""
        return _crc(self.payload)

    def latency_ms(self, received_ms: float) -> float:
        """Receive time minus send time, for a full receive time in ms of the Unix wall clock.

        Correct while the true latency is within half a ``TIME_WRAP`` either way
        (negative values mean the receiver's clock is behind the sender's).
        """
        return elapsed_ms(self.time_ms, received_ms)


def elapsed_ms(earlier_ms: float, later_ms: float) -> float:
    """``later_ms - earlier_ms`` on the ``TIME_WRAP`` circle, in [-TIME_WRAP/2, TIME_WRAP/2).

    Either argument may be full or already reduced; only the difference modulo
    the wrap matters.
    """
    return (later_ms - earlier_ms + TIME_WRAP / 2) % TIME_WRAP - TIME_WRAP / 2


def _crc(payload: int) -> int:
    return zlib.crc32(payload.to_bytes(8, "big"))


def _edges(width: int, count: int) -> np.ndarray:
    """Pixel offsets of the first ``count + 1`` cell edges for a frame ``width`` wide."""
    return np.round(np.arange(count + 1) * width / COLUMNS).astype(np.intp)


def strip_height(width: int) -> int:
    """Pixel rows the code strip takes in a frame ``width`` pixels wide."""
    return int(_edges(width, ROWS)[-1])


class CodeStrip:
    """Renders codes for frames of one width; built once per camera.

    A code is drawn as one pixel line per row of cells (:meth:`cell_rows`, a
    gather over a precomputed map), each then copied over the lines of its
    row of cells (:meth:`spread`, three contiguous copies at memcpy speed).
    """

    def __init__(self, width: int, frame_height: int) -> None:
        if width < MIN_WIDTH:
            raise BadInput(f"frame width {width} is too narrow for a frame code (minimum {MIN_WIDTH})")
        self.width = width
        self.height = strip_height(width)
        if frame_height < self.height:
            raise BadInput(f"a {width}x{frame_height} frame has no room for the "
                           f"{self.height}-row frame code strip")
        columns, rows = _edges(width, COLUMNS), _edges(width, ROWS)
        column_of_pixel = np.repeat(np.arange(COLUMNS), np.diff(columns))
        cell_of_pixel = np.arange(ROWS)[:, None] * COLUMNS + column_of_pixel[None, :]
        # (ROWS, width): per pixel, its bit in _extended_bits (which starts with _EXTENDED_PAD zeros)
        self._row_sources = _CELL_SOURCE[cell_of_pixel] + _EXTENDED_PAD
        # The strip lines [first, end) of each row of cells, and the pixel edges of its columns.
        self.row_spans = list(zip(rows[:-1].tolist(), rows[1:].tolist(), strict=True))
        self.column_edges: list[int] = columns.tolist()
        self._lines = np.empty((ROWS, width), np.uint8)  # stamp's scratch: no allocation per frame

    def render(self, code: FrameCode) -> np.ndarray:
        """The strip for ``code``: a new (height, width) uint8 luma array.

        Per frame, :meth:`stamp` is cheaper: it writes in place, so no strip
        sized buffer is allocated (and paged in) each time.
        """
        out = np.empty((self.height, self.width), np.uint8)
        self.stamp(out, code)
        return out

    def stamp(self, luma: np.ndarray, code: FrameCode) -> None:
        """Write ``code``'s strip into the top rows of the writable luma plane ``luma``."""
        if luma.ndim != 2 or luma.shape[1] != self.width or luma.shape[0] < self.height:
            raise BadInput(f"cannot stamp a {self.width}-wide code strip into a luma plane "
                           f"of shape {luma.shape}")
        self.cell_rows(code, self._lines)
        self.spread(self._lines, luma)

    def cell_rows(self, code: FrameCode, out: np.ndarray) -> None:
        """Write the luma of ``code``'s strip, one line per row of cells, into ``out`` (ROWS, width; may be strided)."""
        out[...] = _LEVELS[_extended_bits(code)][self._row_sources]

    def spread(self, lines: np.ndarray, out: np.ndarray) -> None:
        """Copy each of ``lines`` (one per row of cells) over that row's lines of the strip in ``out``.

        ``lines`` and ``out`` may hold any per-pixel layout (luma, or raw
        rows of a packed format): only whole lines are copied.
        """
        for line, (first, end) in zip(lines, self.row_spans, strict=True):
            out[first:end] = line


# The extended word: the word's bits followed by the reference bits 0 and 1,
# packed into whole bytes after this many leading zero bits.
_EXTENDED_BYTES = (_WORD_BITS + 2 + 7) // 8
_EXTENDED_PAD = 8 * _EXTENDED_BYTES - _WORD_BITS - 2


def _extended_bits(code: FrameCode) -> np.ndarray:
    """The bits of the extended word, after ``_EXTENDED_PAD`` zeros: one int, one unpack."""
    extended = (((code.payload << CHECK_BITS) | code.check) << 2) | 0b01
    return np.unpackbits(np.frombuffer(extended.to_bytes(_EXTENDED_BYTES, "big"), np.uint8))


# In row-major order the cells are row 0's two references, the word's bits in
# order, then the last row's two references (asserted here), so a code's cells
# are one formatted string.
assert _DATA_CELLS == _CELLS[2:-2]
_FIRST_REFERENCES = "".join(str(_REFERENCES[cell]) for cell in _CELLS[:2])
_LAST_REFERENCES = "".join(str(_REFERENCES[cell]) for cell in _CELLS[-2:])


_BIT_VALUES = bytes.maketrans(b"01", b"\x00\x01")


def cell_bits(code: FrameCode) -> bytes:
    """``code``'s cells as bytes 0/1, row-major: cell (row r, column c) is byte ``r * COLUMNS + c``.

    Made by C calls only (format, encode, translate) from the payload, read
    once: the producer calls this for every frame.
    """
    payload = code.payload
    word = (payload << CHECK_BITS) | _crc(payload)
    return f"{_FIRST_REFERENCES}{word:0{_WORD_BITS}b}{_LAST_REFERENCES}".encode().translate(_BIT_VALUES)


@lru_cache(maxsize=16)
def _sample_points(width: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices, (cells, samples), of the points sampled in each cell."""
    edges = _edges(width, COLUMNS)
    starts, sides = edges[:-1], np.diff(edges)
    offsets = np.floor(sides[:, None] * _SAMPLE_FRACTIONS[None, :]).astype(np.intp)
    columns = starts[:, None] + offsets  # (COLUMNS, k)
    rows = columns[:ROWS]  # square cells: row edges are the first column edges
    k = len(_SAMPLE_FRACTIONS)
    ys = np.broadcast_to(rows[:, None, :, None], (ROWS, COLUMNS, k, k)).reshape(ROWS * COLUMNS, k * k)
    xs = np.broadcast_to(columns[None, :, None, :], (ROWS, COLUMNS, k, k)).reshape(ROWS * COLUMNS, k * k)
    return ys, xs


def decode(luma: np.ndarray) -> FrameCode | None:
    """The code stamped in a luma plane of any size, or None if there is none to trust.

    Never returns a code other than the one stamped: damaged, missing or
    ambiguous strips give None.
    """
    if luma.ndim != 2:
        raise BadInput(f"decode needs a 2-D luma plane, got shape {luma.shape}")
    height, width = luma.shape
    if width < MIN_WIDTH or height < strip_height(width):
        return None
    ys, xs = _sample_points(width)
    means = luma[ys, xs].mean(axis=1)
    reference_means = means[_REFERENCE_INDEX]
    black, white = reference_means[~_REFERENCE_BITS].mean(), reference_means[_REFERENCE_BITS].mean()
    contrast = white - black
    if contrast < _MIN_CONTRAST:
        return None
    levels = (means - black) / contrast
    bits = levels > 0.5
    if (np.abs(levels - bits) > _MARGIN).any() or (bits[_REFERENCE_INDEX] != _REFERENCE_BITS).any():
        return None
    padded = np.concatenate((np.zeros(_PAD_BITS, bool), bits[_DATA_INDEX]))
    word = int.from_bytes(np.packbits(padded).tobytes(), "big")
    payload, check = word >> CHECK_BITS, word & (2**CHECK_BITS - 1)
    if _crc(payload) != check:
        return None
    time_ms = payload & (TIME_WRAP - 1)
    sequence = (payload >> TIME_BITS) & (SEQUENCE_WRAP - 1)
    return FrameCode(payload >> (TIME_BITS + SEQUENCE_BITS), sequence, time_ms)


def rgb_to_luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 limited-range luma (16..235) of an (H, W, 3) uint8 RGB image."""
    weights = np.array([65.481, 128.553, 24.966]) / 255
    return np.clip(rgb @ weights + 16 + 0.5, 0, 255).astype(np.uint8)


def decode_rgb(rgb: np.ndarray) -> FrameCode | None:
    """:func:`decode` for an (H, W, 3) RGB image (reverse BGR from OpenCV first)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise BadInput(f"decode_rgb needs an (H, W, 3) image, got shape {rgb.shape}")
    return decode(rgb_to_luma(rgb[: strip_height(rgb.shape[1])]))
