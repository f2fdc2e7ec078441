"""Publishing a test's cameras through MediaMTX (RTSP, optionally recorded)."""

from __future__ import annotations

import functools
from pathlib import Path

from .. import binaries
from ..errors import EnvironmentProblem
from ..farm.farm import Camera
from ..publishers.mediamtx import MediaMTX, RecordOptions, find_binary, v4l2_publish_argv

# Short segments so a test sees a finished recording file within seconds.
RECORD = RecordOptions(segment_seconds=1)


@functools.cache
def missing_reason() -> str | None:
    """Why publishing cannot work here (no mediamtx binary), or None."""
    try:
        find_binary()
    except EnvironmentProblem as exc:
        return f"simfarm: publishing needs MediaMTX: {exc}"
    return None


def path_name(camera: Camera) -> str:
    """The MediaMTX path a camera is published at: ``cam<index>``."""
    return f"cam{camera.index}"


def start(cameras: list[Camera], workdir: Path, *, record: bool) -> MediaMTX:
    """A server publishing every camera (H.264 over RTSP), returned once all are available."""
    ffmpeg = binaries.require("ffmpeg")
    # A keyframe a second: a snapshot or a new segment waits at most that long for a picture.
    paths = {path_name(cam): v4l2_publish_argv(cam.device, gop=max(1, round(cam.spec.fps)), ffmpeg=ffmpeg)
             for cam in cameras}
    server = MediaMTX.start(workdir, paths, record=RECORD if record else None)
    try:
        for name in paths:
            server.wait_available(name)
    except BaseException:
        server.stop()
        raise
    return server
