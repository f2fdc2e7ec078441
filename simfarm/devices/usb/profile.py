"""What a USB webcam is, as the host sees it: ids, strings, formats with their sizes and rates, controls.

The uvc backend reads each profile file into a :class:`Profile`; the
USB/IP device builds its descriptors from it and answers the host's
requests with it. bFormatIndex is the profile's format order and
bFrameIndex each format's size order, both from 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from ...spec import PixelFormat, Size


@dataclass(frozen=True)
class FrameSize:
    size: Size
    rates: tuple[Fraction, ...]  # frames per second, the first the default

    @property
    def intervals(self) -> list[int]:
        """Frame intervals in the descriptor's 100 ns units."""
        return [round(Fraction(10_000_000) / rate) for rate in self.rates]


@dataclass(frozen=True)
class Format:
    format: PixelFormat
    sizes: tuple[FrameSize, ...]


@dataclass(frozen=True)
class Control:
    """A processing-unit control: its range, step and default (UVC's GET_MIN/MAX/RES/DEF)."""

    name: str
    minimum: int
    maximum: int
    step: int
    default: int


@dataclass(frozen=True)
class Profile:
    """What a webcam is, as the host sees it."""

    name: str
    vendor_id: int
    product_id: int
    manufacturer: str
    product: str
    serial: str
    formats: tuple[Format, ...]
    controls: tuple[Control, ...]


def frame_buffer_size(fmt: PixelFormat, size: Size) -> int:
    """The largest frame of ``fmt`` at ``size``: YUYV's exact size, and the same bound for a JPEG."""
    return size.width * size.height * 2
