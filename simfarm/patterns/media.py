"""Generators fed from files: a still image and a looped video clip.

FFmpeg decodes both, straight to RGB at the frame size, fitted one of three
ways: ``letterbox`` (the whole picture, centred, bars of ``background``),
``crop`` (fill the frame, centred, overflow cut) or ``stretch``. A clip is
decoded once at the camera's rate; only its first ``max_frames`` frames are
kept, and they loop.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from .. import binaries
from ..errors import BadInput
from ..spec import Size
from . import params as p
from .core import Frames, Generator
from .params import Colour

FITS = ("letterbox", "crop", "stretch")


def _fit_filter(size: Size, fit: str, background: Colour) -> str:
    w, h = size.width, size.height
    if fit == "stretch":
        return f"scale={w}:{h},setsar=1"
    if fit == "crop":
        return f"scale={w}:{h}:force_original_aspect_ratio=increase,crop={w}:{h},setsar=1"
    colour = "0x{:02x}{:02x}{:02x}".format(*background)
    return f"scale={w}:{h}:force_original_aspect_ratio=decrease,pad={w}:{h}:-1:-1:color={colour},setsar=1"


def decode(path: Path, size: Size, *, fit: str, background: Colour, max_frames: int,
           fps: Fraction | None = None, start: float = 0.0) -> Frames:
    """Up to ``max_frames`` RGB frames of ``path`` (at ``fps`` if given), fitted to ``size``."""
    vf = _fit_filter(size, fit, background)
    if fps is not None:
        vf = f"fps={fps},{vf}"
    command = [binaries.require("ffmpeg"), "-nostdin", "-loglevel", "error", "-ss", str(start),
               "-i", str(path), "-map", "0:v:0", "-vf", vf, "-frames:v", str(max_frames),
               "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]
    frames: Frames = []
    # stderr goes to a file: a pipe nobody drains could fill up and stall FFmpeg.
    with tempfile.TemporaryFile() as errors, subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=errors) as process:
        assert process.stdout is not None
        while (frame := _read_frame(process.stdout, size)) is not None:
            frames.append(frame)
        returncode = process.wait()
        errors.seek(0)
        lines = errors.read().decode(errors="replace").strip().splitlines()
    if returncode:
        raise BadInput(f"cannot decode {path}: {lines[-1] if lines else f'ffmpeg exited with {returncode}'}")
    if not frames:
        raise BadInput(f"{path} has no video frames after {start:g} s")
    return frames


def _read_frame(stream: Any, size: Size) -> np.ndarray | None:
    """The next whole frame from ``stream`` (read in place, no extra copy), or None at the end."""
    frame = np.empty((size.height, size.width, 3), np.uint8)
    view = frame.data.cast("B")
    filled = 0
    while filled < len(view):
        got = stream.readinto(view[filled:])
        if not got:
            return None
        filled += got
    return frame


def _still(params: Mapping[str, Any], size: Size, _fps: Fraction, _max: int) -> Frames:
    return decode(params["file"], size, fit=params["fit"], background=params["background"], max_frames=1)


def _clip(params: Mapping[str, Any], size: Size, fps: Fraction, max_frames: int) -> Frames:
    return decode(params["file"], size, fit=params["fit"], background=params["background"],
                  max_frames=max_frames, fps=fps, start=params["start"])


_FIT = p.choice("letterbox", FITS, "how the picture fills the frame")
_BACKGROUND = p.colour((0, 0, 0), "colour of letterbox bars")

GENERATORS = [
    Generator("still", "an image file (PNG, JPEG, ...) fitted to the frame", {
        "file": p.file("image path, relative to the pattern file"),
        "fit": _FIT, "background": _BACKGROUND,
    }, _still),
    Generator("clip", "a video file decoded at the camera's rate and size, looped", {
        "file": p.file("video path, relative to the pattern file"),
        "start": p.number(0.0, 0, 86_400, "seconds into the file to start from"),
        "fit": _FIT, "background": _BACKGROUND,
    }, _clip),
]
