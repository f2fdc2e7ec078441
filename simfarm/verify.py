"""`verify`: read frames from a device, a stream or a file and analyse their codes.

The source decides how frames are read: a /dev/video node with read(2)
(alongside whatever else streams from it), an rtsp:// URL or a file through
FFmpeg. Live sources stamp receive times, so latency is reported for them.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator

from .devices.v4l2 import capture
from .errors import BadInput
from .frames import video
from .frames.analysis import Report, analyze
from .frames.code import decode
from .frames.video import LumaFrame

LIVE_DEFAULT_FRAMES = 60


def frames_from(source: str, count: int | None = None, *, timeout: float = 5.0) -> Iterator[LumaFrame]:
    """The luma of each frame of ``source``; live sources read ``count`` (default 60) frames."""
    if source.startswith("rtsp://"):
        return video.read_luma(source, max_frames=count or LIVE_DEFAULT_FRAMES, live=True)
    try:
        mode = os.stat(source).st_mode
    except OSError as exc:
        raise BadInput(f"cannot read {source}: {exc.strerror}") from None
    if stat.S_ISCHR(mode):
        return capture.read_luma(source, count=count or LIVE_DEFAULT_FRAMES, timeout=timeout)
    return video.read_luma(source, max_frames=count)


def verify(source: str, count: int | None = None) -> Report:
    """Decode every frame's code and return the sequence analysis."""
    return analyze((decode(frame.luma), frame.received_ms) for frame in frames_from(source, count))
