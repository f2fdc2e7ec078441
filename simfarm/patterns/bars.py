"""Colour bar generators: SMPTE 75% bars, SMPTE HD (ARIB STD-B28 / RP 219) bars, colour squares.

RGB is full range (0..255), so levels are percentages of 255: 75% is 191.
Levels below black (the -4% and -2% PLUGE bars) cannot exist in RGB and are
drawn as black; the positive PLUGE steps are kept so crushed blacks show.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from ..spec import Size
from . import params as p
from .core import Frames, Generator
from .params import Colour

BLACK: Colour = (0, 0, 0)
WHITE: Colour = (255, 255, 255)
GREY75: Colour = (191, 191, 191)
BARS75: tuple[Colour, ...] = (GREY75, (191, 191, 0), (0, 191, 191), (0, 191, 0),
                             (191, 0, 191), (191, 0, 0), (0, 0, 191))
MINUS_I: Colour = (0, 33, 76)
PLUS_Q: Colour = (50, 0, 106)
PLUS_2, PLUS_4 = (5, 5, 5), (10, 10, 10)

# A segment is (width in bar units, colour); RAMP is a black-to-white ramp.
RAMP = None
Segment = tuple[float, Colour | None]
Band = tuple[float, Sequence[Segment]]  # (share of the height, segments)


def _row(segments: Sequence[Segment], width: int) -> np.ndarray:
    """One (W, 3) row: each column takes the segment its centre falls in."""
    edges = np.cumsum([units for units, _ in segments], dtype=np.float64)
    edges *= width / edges[-1]
    centres = np.arange(width) + 0.5
    which = np.searchsorted(edges, centres, side="right")
    row = np.empty((width, 3), np.uint8)
    for index, (_, colour) in enumerate(segments):
        mask = which == index
        if colour is RAMP:
            start = edges[index - 1] if index else 0.0
            level = (centres[mask] - start) / (edges[index] - start) * 255
            row[mask] = (level + 0.5).astype(np.uint8)[:, None]
        else:
            row[mask] = colour
    return row


def _bands(bands: Sequence[Band], size: Size) -> np.ndarray:
    """Stack horizontal bands whose heights are shares of the frame height."""
    bottoms = np.round(np.cumsum([share for share, _ in bands]) * size.height).astype(int)
    heights = np.diff(bottoms, prepend=0)
    rows = np.stack([_row(segments, size.width) for _, segments in bands])
    return np.ascontiguousarray(np.repeat(rows, heights, axis=0))


def _smpte75(_params: Mapping[str, Any], size: Size, _fps: Fraction, _max: int) -> Frames:
    blue, magenta, cyan = BARS75[6], BARS75[4], BARS75[2]
    castellations = [blue, BLACK, magenta, BLACK, cyan, BLACK, GREY75]
    q = 5 / 4  # the bottom row's first four blocks are 5/4 of a bar wide
    bottom = [(q, MINUS_I), (q, WHITE), (q, PLUS_Q), (q, BLACK),
              (1 / 3, BLACK), (1 / 3, BLACK), (1 / 3, PLUS_4), (1, BLACK)]
    return [_bands([(8 / 12, [(1, c) for c in BARS75]),
                    (1 / 12, [(1, c) for c in castellations]),
                    (3 / 12, bottom)], size)]


def _smpte_hd(_params: Mapping[str, Any], size: Size, _fps: Fraction, _max: int) -> Frames:
    side = 7 / 6  # side panels are 1/8 of the width; the 7 bars fill the middle 3/4
    grey40, grey15 = (102, 102, 102), (38, 38, 38)
    pluge = [(1 / 3, BLACK), (1 / 3, BLACK), (1 / 3, PLUS_2), (1 / 3, BLACK), (1 / 3, PLUS_4)]
    return [_bands([
        (7 / 12, [(side, grey40), *[(1, c) for c in BARS75], (side, grey40)]),
        (1 / 12, [(side, (0, 255, 255)), (1, WHITE), (6, GREY75), (side, (0, 0, 255))]),
        (1 / 12, [(side, (255, 255, 0)), (1, BLACK), (6, RAMP), (side, (255, 0, 0))]),
        (3 / 12, [(side, grey15), (1.5, BLACK), (2, WHITE), (5 / 6, BLACK), *pluge, (1, BLACK),
                  (side, grey15)]),
    ], size)]


def _squares(params: Mapping[str, Any], size: Size, _fps: Fraction, _max: int) -> Frames:
    columns, rows, palette = params["columns"], params["rows"], np.array(params["colours"], np.uint8)
    col = np.arange(size.width) * columns // size.width
    row = np.arange(size.height) * rows // size.height
    index = (row[:, None] * columns + col[None, :]) % len(palette)
    return [np.ascontiguousarray(palette[index])]


SATURATED: tuple[Colour, ...] = (WHITE, (255, 255, 0), (0, 255, 255), (0, 255, 0),
                                 (255, 0, 255), (255, 0, 0), (0, 0, 255), BLACK)

GENERATORS = [
    Generator("smpte75", "SMPTE EG 1 75% colour bars with castellations, -I/white/+Q and PLUGE", {},
              _smpte75),
    Generator("smpte-hd", "SMPTE RP 219 / ARIB STD-B28 HD bars: 75% bars in 40% grey side panels, "
              "100% colours, a luma ramp, PLUGE", {}, _smpte_hd),
    Generator("squares", "a grid of flat colour squares, colours taken in reading order", {
        "columns": p.number(4, 1, 64, "squares across", integer=True),
        "rows": p.number(2, 1, 64, "squares down", integer=True),
        "colours": p.colours(SATURATED, "palette, repeated if shorter than the grid"),
    }, _squares),
]
