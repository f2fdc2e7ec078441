"""Reading frames back from a capture node with plain read(2).

read(2) needs no buffer negotiation, but it still makes this process the
node's one streaming reader: v4l2loopback (>= 0.14) gives the capture
stream to one opener at a time, and a second one gets EBUSY, whether it
reads or maps buffers, as a real webcam in use does.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Iterator

import numpy as np
from linuxpy.video import device as v4l2

from ..errors import EnvironmentProblem
from ..frames import pixfmt
from ..frames.video import LumaFrame
from ..spec import PixelFormat, Size
from . import nodes


def read_luma(path: str, *, count: int, timeout: float = 5.0) -> Iterator[LumaFrame]:
    """Yield the luma of ``count`` frames from ``path``; a frame not seen within ``timeout`` s raises."""
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        fmt = v4l2.get_format(fd, v4l2.BufferType.VIDEO_CAPTURE)
        size = Size(fmt.width, fmt.height)
        pixel_format = PixelFormat.from_fourcc(int(fmt.pixel_format))
        for _ in range(count):
            data = _read_frame(fd, max(fmt.size, 1), timeout, path)
            yield LumaFrame(pixfmt.luma(np.frombuffer(data, np.uint8), pixel_format, size),
                            time.time() * 1000)
    finally:
        os.close(fd)


# v4l2loopback's poll() does not report readability to read(2) readers
# (it does for streaming readers), so a missing frame is retried at this
# interval: short beside any frame period.
RETRY_S = 0.005


def _read_frame(fd: int, size: int, timeout: float, path: str) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return os.read(fd, size)
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise EnvironmentProblem(f"no frame from {path} within {timeout:g} s") from None
            time.sleep(RETRY_S)
        except OSError as error:
            if error.errno != errno.EBUSY:
                raise
            holders = [pid for pid in nodes.holders(path) if pid != os.getpid()]
            raise EnvironmentProblem(f"{path} is streamed by another reader (pids {holders}); "
                                     "v4l2loopback lets one reader stream a node at a time",
                                     "read the camera's stream elsewhere (its RTSP URL when it is published)") from None
