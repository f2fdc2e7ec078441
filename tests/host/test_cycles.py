"""Cameras alike share one pre-rendered cycle; each still sends its own codes."""

from __future__ import annotations

import gc
import os
import weakref

import numpy as np
import pytest

from simfarm.frames import pixfmt
from simfarm.frames.code import decode
from simfarm.patterns import PatternLibrary
from simfarm.producers.build import build_producer
from simfarm.producers.offline import stamped_frames
from simfarm.producers.sinks import FdSink
from simfarm.spec import CameraSpec

LIBRARY = PatternLibrary()


def frames_written(camera: int, spec: CameraSpec, count: int) -> tuple[list[np.ndarray], object]:
    """``count`` frames a producer for ``camera`` sends (rendered by hand, no pacing), and its cycle."""
    read_fd, write_fd = os.pipe()
    producer = build_producer(camera, spec, FdSink(write_fd, owned=True), LIBRARY)
    size = pixfmt.frame_bytes(spec.format, spec.size)
    frames = []
    with os.fdopen(read_fd, "rb", buffering=0) as pipe:
        for index in range(count):
            producer.sink.write_frame(producer._render(index, index))
            frames.append(np.frombuffer(pipe.read(size), np.uint8))
    producer.stop()
    return frames, producer.source.cycle


@pytest.mark.parametrize("fmt", ["YUYV", "NV12", "RGB24"])
def test_alike_cameras_share_one_cycle_and_send_their_own_codes(fmt: str) -> None:
    spec = CameraSpec.parse(size="320x240", fps=30, format=fmt, pattern="ball")
    first, first_cycle = frames_written(1, spec, 4)
    second, second_cycle = frames_written(2, spec, 4)
    assert first_cycle is second_cycle and len(first_cycle.frames) > 1
    assert not any(frame.flags.writeable for frame in first_cycle.frames)
    for camera, frames in ((1, first), (2, second)):
        codes = [decode(pixfmt.luma(f, spec.format, spec.size)) for f in frames]
        assert [(c.camera, c.sequence) for c in codes] == [(camera, n) for n in range(4)]
    # The picture under the strip is the pattern's own, frame by frame, as rendered offline.
    alone = [frame.copy() for frame in stamped_frames(spec, LIBRARY, 4, camera=1)]  # one buffer, refilled
    strip = pixfmt.frame_bytes(spec.format, spec.size) // spec.size.height * 30
    assert all(np.array_equal(a[strip:], b[strip:]) for a, b in zip(alone, first, strict=True))


def test_a_cycle_goes_with_the_last_camera_showing_it() -> None:
    spec = CameraSpec.parse(size="320x240", fps=30, format="YUYV", pattern="zoneplate")
    _, cycle = frames_written(0, spec, 1)
    gone = weakref.ref(cycle)
    del cycle
    gc.collect()
    assert gone() is None
