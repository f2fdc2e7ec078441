"""Publishing: snapshots and recordings of a camera streamed through MediaMTX keep its codes.

Skipped, with the reason, where no ``mediamtx`` binary exists.
"""

from __future__ import annotations

import time

import pytest

from simfarm import Camera, decode
from simfarm.publishers.mediamtx import MediaMTX
from simfarm.pytest_plugin import publish

from .codes import gray_frames, size_of

pytestmark = [pytest.mark.hil, pytest.mark.mediamtx]


@pytest.mark.simfarm(cameras=1, publish=True)
def test_snapshot_over_rtsp_carries_the_cameras_code(simfarm_camera: Camera, simfarm_stream: MediaMTX) -> None:
    frame, = gray_frames(simfarm_stream.rtsp_url(publish.path_name(simfarm_camera)), 1, size_of(simfarm_camera))
    code = decode(frame)
    assert code is not None and code.camera == simfarm_camera.index


@pytest.mark.simfarm(cameras=1, publish=True, record=True)
def test_recording_holds_the_cameras_frames_in_order(simfarm_camera: Camera, simfarm_stream: MediaMTX) -> None:
    directory = simfarm_stream.files.recordings
    deadline = time.monotonic() + 60
    # A segment is complete once a newer one has started. The first one opens with the publisher's first
    # capture, which can be a newer frame (FFmpeg holds its first buffer while probing the node, and
    # v4l2loopback writes on into held buffers), so the second is read.
    while len(segments := sorted(directory.rglob("*.mp4"))) < 3:
        assert time.monotonic() < deadline, f"no second finished recording segment in {directory}"
        time.sleep(0.5)
    codes = [decode(f) for f in gray_frames(str(segments[1]), 10, size_of(simfarm_camera))]
    ours = [c.sequence for c in codes if c is not None and c.camera == simfarm_camera.index]
    assert ours and ours == sorted(ours)
