"""Content faults as transforms of one frame's bytes: black, green, noise, bitflip, tear, stripe.

A :class:`Step` is built once per fault for the camera's format and size
(rows checked against the frame there). A :class:`Corruption` binds the
steps acting on one frame to that frame's seeds, so applying it is a pure
function of the frame and the previous one: the same scenario seed gives the
same damaged bytes.

Steps act either on pixels (black, noise, tear, stripe) or on the bytes as
written (green, bitflip). In raw formats both are the same buffer; for MJPEG
the pixel steps work on the decoded picture, which is then compressed again,
and the byte steps damage the compressed stream itself, as a faulty link
would.

Row positions are picture rows. In 4:2:0 formats a chroma row serves two
picture rows; one shared by a row inside a band and a row outside it is left
alone, so rows outside a band are never touched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..errors import BadInput
from ..frames import pixfmt
from ..spec import PixelFormat, Size

# Above this bit error rate one draw per bit is cheaper than drawing positions
# (about 10 ms against 1.5 s per 640x480 YUYV frame at rate 0.5).
_DENSE_FLIPS = 0.01
# The picture of an MJPEG frame is damaged in this raw format, then compressed again.
_MJPEG_PIXELS = PixelFormat.RGB24


class Step(Protocol):
    """One fault's effect on a frame, in place."""

    bytes_level: bool  # acts on the bytes as written rather than on decoded pixels
    needs_previous: bool

    def __call__(self, buf: np.ndarray, previous: np.ndarray | None, rng: np.random.Generator) -> None: ...


def _row_bands(buf: np.ndarray, fmt: PixelFormat, size: Size, first: int, stop: int) -> list[np.ndarray]:
    """Views of picture rows [first, stop) in every plane of the raw frame ``buf``.

    A plane row serving several picture rows is included only if all of them are in the range.
    """
    # pixfmt owns the plane layout; reading it here keeps a single definition of it.
    planes = pixfmt._planes(buf, fmt, size)
    bands = []
    for plane in planes:
        per_row = size.height // plane.shape[0]  # picture rows per plane row: 1, or 2 for 4:2:0 chroma
        bands.append(plane[-(-first // per_row):stop // per_row])
    return bands


@dataclass(frozen=True, eq=False)
class _Fill:
    """Replace the picture by a constant frame (black)."""

    frame: np.ndarray
    bytes_level = False
    needs_previous = False

    def __call__(self, buf: np.ndarray, previous: np.ndarray | None, rng: np.random.Generator) -> None:
        buf[: self.frame.size] = self.frame


@dataclass(frozen=True)
class _Zero:
    """All-zero bytes: what an uninitialised buffer looks like."""

    bytes_level = True
    needs_previous = False

    def __call__(self, buf: np.ndarray, previous: np.ndarray | None, rng: np.random.Generator) -> None:
        buf[:] = 0


@dataclass(frozen=True)
class _Noise:
    amount: float
    bytes_level = False
    needs_previous = False

    def __call__(self, buf: np.ndarray, previous: np.ndarray | None, rng: np.random.Generator) -> None:
        reach = max(1, round(self.amount * 255))
        noisy = buf.astype(np.int16) + rng.integers(-reach, reach + 1, buf.size, dtype=np.int16)
        np.clip(noisy, 0, 255, out=noisy)
        buf[:] = noisy


@dataclass(frozen=True)
class _BitFlip:
    rate: float
    bytes_level = True
    needs_previous = False

    def __call__(self, buf: np.ndarray, previous: np.ndarray | None, rng: np.random.Generator) -> None:
        bits = buf.size * 8
        if self.rate < _DENSE_FLIPS:
            # Distinct positions (a bit drawn twice would flip back), summed into a per-byte mask.
            where = np.unique(rng.integers(0, bits, rng.binomial(bits, self.rate)))
            mask = np.bincount(where >> 3, weights=1 << (where & 7), minlength=buf.size).astype(np.uint8)
        else:
            mask = np.packbits(rng.random(bits) < self.rate, bitorder="little")
        buf ^= mask


@dataclass(frozen=True)
class _Tear:
    fmt: PixelFormat
    size: Size
    row: int
    bytes_level = False
    needs_previous = True

    def __call__(self, buf: np.ndarray, previous: np.ndarray | None, rng: np.random.Generator) -> None:
        stop = self.size.height
        if previous is None:  # undecodable previous MJPEG frame: nothing to splice but black
            previous = pixfmt.from_rgb(np.zeros((stop, self.size.width, 3), np.uint8), self.fmt)
        for band, old in zip(_row_bands(buf, self.fmt, self.size, self.row, stop),
                             _row_bands(previous, self.fmt, self.size, self.row, stop), strict=True):
            band[:] = old


@dataclass(frozen=True)
class _Stripe:
    fmt: PixelFormat
    size: Size
    first: int
    last: int
    shift: bool
    bytes_level = False
    needs_previous = False

    def __call__(self, buf: np.ndarray, previous: np.ndarray | None, rng: np.random.Generator) -> None:
        # An even pixel shift moves whole chroma groups in every format.
        shift_px = self.size.width // 4 & ~1
        for band in _row_bands(buf, self.fmt, self.size, self.first, self.last + 1):
            if self.shift:
                band[:] = np.roll(band, shift_px * band.shape[1] // self.size.width, axis=1)
            else:
                band[:] = rng.integers(0, 256, band.shape, dtype=np.uint8)


def _check_row(name: str, row: int, size: Size, lowest: int) -> None:
    if not lowest <= row < size.height:
        raise BadInput(f"{name} row {row} is outside the {size} frame ({lowest}..{size.height - 1})")


def build_step(kind: str, params: Mapping[str, Any], fmt: PixelFormat, size: Size) -> Step:
    """The step for content fault ``kind`` on frames of ``fmt`` and ``size``; rows are checked here."""
    pixels = _MJPEG_PIXELS if fmt is PixelFormat.MJPEG else fmt
    if kind == "black":
        return _Fill(pixfmt.from_rgb(np.zeros((size.height, size.width, 3), np.uint8), pixels))
    if kind == "green":
        return _Zero()
    if kind == "noise":
        return _Noise(params["amount"])
    if kind == "bitflip":
        return _BitFlip(params["rate"])
    if kind == "tear":
        row = params.get("row", size.height // 2)
        _check_row("tear", row, size, 1)
        return _Tear(pixels, size, row)
    if kind == "stripe":
        band = max(1, size.height // 8)
        first, last = params.get("rows", ((size.height - band) // 2, (size.height + band) // 2 - 1))
        _check_row("stripe first", first, size, 0)
        _check_row("stripe last", last, size, 0)
        return _Stripe(pixels, size, first, last, params["style"] == "shift")
    raise ValueError(f"{kind!r} is not a content fault")


@dataclass(frozen=True)
class Corruption:
    """What happens to one frame: content steps, each with its own seed, in the order faults were added.

    Call it with the stamped frame as it would be written and the previous
    frame written (or None); it returns new bytes and leaves both inputs alone.
    """

    fmt: PixelFormat
    size: Size
    steps: tuple[tuple[Step, int], ...]

    def __call__(self, frame: np.ndarray, previous: np.ndarray | None) -> np.ndarray:
        pixel_steps = [(step, seed) for step, seed in self.steps if not step.bytes_level]
        byte_steps = [(step, seed) for step, seed in self.steps if step.bytes_level]
        out = frame.copy()
        if pixel_steps:
            if self.fmt is PixelFormat.MJPEG:
                picture = pixfmt.from_rgb(pixfmt.to_rgb(out, self.fmt, self.size), _MJPEG_PIXELS)
                _run(pixel_steps, picture, self._decoded(previous))
                out = pixfmt.from_rgb(pixfmt.to_rgb(picture, _MJPEG_PIXELS, self.size), self.fmt)
            else:
                _run(pixel_steps, out, previous)
        _run(byte_steps, out, previous)
        return out

    def _decoded(self, previous: np.ndarray | None) -> np.ndarray | None:
        if previous is None:
            return None
        try:
            return pixfmt.from_rgb(pixfmt.to_rgb(previous, self.fmt, self.size), _MJPEG_PIXELS)
        except ValueError:  # the previous frame was itself damaged beyond decoding
            return None


def _run(steps: Sequence[tuple[Step, int]], buf: np.ndarray, previous: np.ndarray | None) -> None:
    for step, seed in steps:
        step(buf, previous, np.random.default_rng(seed))
