"""Unpaced rendering: stamped frames as fast as they can be made, for files.

The codes still advance in stream time (sequence i is stamped at
start + i/fps), so a rendered file analyses like a live capture.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np

from ..frames.code import FrameCode
from ..frames.stamp import Stamper
from ..patterns import PatternLibrary
from ..spec import CameraSpec
from .build import build_source


def stamped_frames(spec: CameraSpec, library: PatternLibrary, count: int, *, camera: int = 0,
                   start_ms: float | None = None) -> Iterator[np.ndarray]:
    """Yield ``count`` frames of ``spec`` in ``spec.format``, each carrying its code."""
    source, overlays = build_source(spec, library)
    stamper = Stamper(spec.format, spec.size, overlays)
    start = time.time() * 1000 if start_ms is None else start_ms
    period = 1000 / float(spec.fps)
    try:
        for index in range(count):
            sent = start + index * period
            frame = source.frame(index)
            yield stamper.stamp(frame, FrameCode(camera, index, int(sent)), frame_index=index,
                                wall_time=sent / 1000, reused=source.reuses_buffers, content=source.content)
    finally:
        source.close()
