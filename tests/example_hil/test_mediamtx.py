"""Publishing: snapshots and recordings of a camera streamed through MediaMTX keep its codes.

Skipped, with the reason, where no ``mediamtx`` binary exists.
"""

from __future__ import annotations

import subprocess
import time

import numpy as np
import pytest

from simfarm import Camera, decode
from simfarm.publishers.mediamtx import MediaMTX
from simfarm.pytest_plugin import publish

pytestmark = [pytest.mark.hil, pytest.mark.mediamtx]


def gray_frames(source: str, count: int, size: tuple[int, int]) -> np.ndarray:
    """``count`` frames of an RTSP URL or a file, as luma, via FFmpeg."""
    args = ["-rtsp_transport", "tcp"] if source.startswith("rtsp://") else []
    out = subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", *args, "-i", source,
                          "-frames:v", str(count), "-f", "rawvideo", "-pix_fmt", "gray", "-"],
                         capture_output=True, timeout=60, check=True).stdout
    return np.frombuffer(out, np.uint8).reshape(-1, size[1], size[0])


def size_of(cam: Camera) -> tuple[int, int]:
    return cam.spec.size.width, cam.spec.size.height


@pytest.mark.simfarm(cameras=1, publish=True)
def test_snapshot_over_rtsp_carries_the_cameras_code(simfarm_camera: Camera, simfarm_stream: MediaMTX) -> None:
    frame, = gray_frames(simfarm_stream.rtsp_url(publish.path_name(simfarm_camera)), 1, size_of(simfarm_camera))
    code = decode(frame)
    assert code is not None and code.camera == simfarm_camera.index


@pytest.mark.simfarm(cameras=1, publish=True, record=True)
def test_recording_holds_the_cameras_frames_in_order(simfarm_camera: Camera, simfarm_stream: MediaMTX) -> None:
    directory = simfarm_stream.files.recordings
    deadline = time.monotonic() + 30
    # A segment is complete once a newer one has started.
    while len(segments := sorted(directory.rglob("*.mp4"))) < 2:
        assert time.monotonic() < deadline, f"no finished recording segment in {directory}"
        time.sleep(0.5)
    codes = [decode(f) for f in gray_frames(str(segments[0]), 10, size_of(simfarm_camera))]
    ours = [c.sequence for c in codes if c is not None and c.camera == simfarm_camera.index]
    assert ours and ours == sorted(ours)
