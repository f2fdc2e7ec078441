"""Generators defined by a formula over the frame: solid, ramps, checkerboard, zone plate, noise."""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import Any

import numpy as np

from ..spec import Size
from . import params as p
from .core import Frames, Generator, cycle_frames, filled, lerp

DIRECTIONS = ("horizontal", "vertical", "diagonal", "radial")


def _position(size: Size, direction: str) -> np.ndarray:
    """(H, W) float32 in 0..1: how far each pixel centre is along ``direction``."""
    y = (np.arange(size.height, dtype=np.float32) + 0.5)[:, None] / size.height
    x = (np.arange(size.width, dtype=np.float32) + 0.5)[None, :] / size.width
    if direction == "horizontal":
        t = np.broadcast_to(x, (size.height, size.width))
    elif direction == "vertical":
        t = np.broadcast_to(y, (size.height, size.width))
    elif direction == "diagonal":
        t = (x + y) / 2
    else:  # radial: centre to the corners, in the frame's own proportions
        t = np.hypot(x - 0.5, y - 0.5) / np.hypot(0.5, 0.5)
    # Pixel centres never reach 0 or 1; stretch so the ends hit the exact colours.
    low, high = t.min(), t.max()
    return (t - low) / (high - low) if high > low else np.zeros_like(t)


def _gradient(params: Mapping[str, Any], size: Size, _fps: Fraction, _max: int) -> Frames:
    t = _position(size, params["direction"])
    steps = params["steps"]
    if steps:
        t = np.minimum(np.floor(t * steps), steps - 1) / max(steps - 1, 1)
    return [lerp(params["start"], params["end"], t)]


def _ramp(params: Mapping[str, Any], size: Size, fps: Fraction, max_frames: int) -> Frames:
    return _gradient({**params, "start": (0, 0, 0), "end": (255, 255, 255)}, size, fps, max_frames)


def _solid(params: Mapping[str, Any], size: Size, _fps: Fraction, _max: int) -> Frames:
    return [filled(size, params["colour"])]


def _checkerboard(params: Mapping[str, Any], size: Size, _fps: Fraction, _max: int) -> Frames:
    cell = params["cell"]
    parity = (np.arange(size.height)[:, None] // cell + np.arange(size.width)[None, :] // cell) % 2
    return [np.ascontiguousarray(np.array(params["colours"], np.uint8)[parity])]


def _zoneplate(params: Mapping[str, Any], size: Size, fps: Fraction, max_frames: int) -> Frames:
    # Phase grows with r^2 so the local frequency grows linearly with r and
    # reaches `frequency` cycles/pixel at half the frame height from the centre.
    y = np.arange(size.height, dtype=np.float32)[:, None] - (size.height - 1) / 2
    x = np.arange(size.width, dtype=np.float32)[None, :] - (size.width - 1) / 2
    phase = np.pi * params["frequency"] * (x * x + y * y) / (size.height / 2)
    cos0, sin0 = np.cos(phase), np.sin(phase)
    period = params["period"]
    count = cycle_frames(period, fps, max_frames, "shorten period") if period else 1
    frames = []
    for index in range(count):
        # cos(phase + shift) from the precomputed terms: two multiplies per pixel, no trig.
        shift = 2 * np.pi * index / count
        level = (cos0 * np.float32(np.cos(shift)) - sin0 * np.float32(np.sin(shift)) + 1) * 127.5
        frames.append(np.repeat((level + 0.5).astype(np.uint8)[:, :, None], 3, axis=2))
    return frames


def _noise(params: Mapping[str, Any], size: Size, fps: Fraction, max_frames: int) -> Frames:
    count = params["frames"]
    cycle_frames(count / fps, fps, max_frames, "ask for fewer frames")
    rng = np.random.default_rng(params["seed"])
    channels = 1 if params["mono"] else 3
    shape = (size.height, size.width, channels)
    return [np.repeat(rng.integers(0, 256, shape, np.uint8), 3 // channels, axis=2) for _ in range(count)]


_DIRECTION = p.choice("horizontal", DIRECTIONS, "which way the colours change")
_STEPS = p.number(0, 0, 256, "number of flat steps (0: smooth)", integer=True)

GENERATORS = [
    Generator("solid", "one flat colour", {"colour": p.colour((128, 128, 128), "the colour")}, _solid),
    Generator("ramp", "black to white", {"direction": _DIRECTION, "steps": _STEPS}, _ramp),
    Generator("gradient", "one colour blending into another", {
        "start": p.colour((0, 0, 255), "colour at the start (left, top, top-left or centre)"),
        "end": p.colour((255, 128, 0), "colour at the end"),
        "direction": _DIRECTION, "steps": _STEPS,
    }, _gradient),
    Generator("checkerboard", "alternating square cells", {
        "cell": p.number(32, 1, 4096, "cell side in pixels (the period is twice this)", integer=True),
        "colours": p.colours(((255, 255, 255), (0, 0, 0)), "the two cell colours, top-left first", count=2),
    }, _checkerboard),
    Generator("zoneplate", "circular zone plate whose rings move outwards", {
        "frequency": p.number(0.25, 0, 1, "cycles per pixel at half the frame height from the centre",
                              low_open=True),
        "period": p.number(2.0, 0, 60, "seconds per full phase turn (0: still)"),
    }, _zoneplate),
    Generator("noise", "uniform random pixels, reproducible from the seed", {
        "seed": p.number(0, 0, 2**63 - 1, "random seed", integer=True),
        "frames": p.number(8, 1, 10_000, "distinct frames in the cycle (must fit the cycle limit)", integer=True),
        "mono": p.flag(False, "grey noise instead of colour"),
    }, _noise),
]
