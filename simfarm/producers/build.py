"""Assembling a Producer from a CameraSpec: the one place that wires the layers."""

from __future__ import annotations

import os
import threading
import weakref

from ..faults import FaultSet
from ..frames.picture import Picture
from ..frames.stamp import Stamper, working_format
from ..patterns import PatternLibrary
from ..spec import CameraSpec
from .producer import Producer
from .progress import Progress, ProgressCell
from .sinks import Sink
from .sources import Cycle, FfmpegSource, FrameSource, PictureSource, RingSource

# The cycles cameras of this process show, by (pattern id, size, fps, raw format):
# cameras alike share one, and it is freed with the last of them.
_CYCLES: weakref.WeakValueDictionary[tuple, Cycle] = weakref.WeakValueDictionary()
_CYCLES_LOCK = threading.Lock()


def build_source(spec: CameraSpec, library: PatternLibrary) -> tuple[FrameSource, list]:
    """The frame source for ``spec`` and the dynamic overlays to apply per frame."""
    raw = working_format(spec.format)
    if spec.producer == "ffmpeg":
        if os.path.exists(spec.source):
            return FfmpegSource.file(spec.source, raw, spec.size), []
        return FfmpegSource.lavfi(_lavfi_graph(spec), raw, spec.size), []
    cycle = shared_cycle(spec, library)
    return RingSource(cycle, raw, spec.size), list(cycle.overlays)


def shared_cycle(spec: CameraSpec, library: PatternLibrary) -> Cycle:
    """The cycle of ``spec``'s pattern, rendered now unless a camera of this process shows it already."""
    pattern = library.get(spec.pattern)
    raw = working_format(spec.format)
    key = (id(pattern), spec.size, spec.fps, raw)
    with _CYCLES_LOCK:  # held while rendering: cameras provisioned together render a pattern once
        cycle = _CYCLES.get(key)
        if cycle is None:
            cycle = Cycle.render(pattern.render(spec.size, spec.fps), raw, spec.size, pattern)
            _CYCLES[key] = cycle
    return cycle


def _lavfi_graph(spec: CameraSpec) -> str:
    # A bare source name gets our rate and size (lavfi defaults to 25 fps);
    # a graph with options is the user's to get right.
    if spec.source.isidentifier():
        return f"{spec.source}=rate={spec.fps}:size={spec.size}"
    return spec.source


def build_producer(camera: int, spec: CameraSpec, sink: Sink, library: PatternLibrary, *,
                   faults: FaultSet | None = None, sequence: int = 0, clock: float = 0.0,
                   picture: Picture | None = None, progress: ProgressCell | None = None,
                   resume: Progress | None = None) -> Producer:
    """``faults``, ``sequence`` and ``clock`` carry a camera's faults, numbering and stream
    clock over to a replacement producer; ``picture`` is a webcam's controls, applied per frame;
    ``progress`` and ``resume`` are Producer's (a worker farm's)."""
    source, overlays = build_source(spec, library)
    if picture is not None:
        source = PictureSource(source, picture)
    return Producer(camera, source, sink, spec.fps, Stamper(spec.format, spec.size, overlays),
                    faults=faults, sequence=sequence, clock=clock, progress=progress, resume=resume)
