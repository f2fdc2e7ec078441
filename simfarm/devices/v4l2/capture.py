"""Reading frames back from a capture node: read(2) on v4l2loopback, streaming on a webcam.

read(2) needs no buffer negotiation, but it still makes this process the
node's one streaming reader: v4l2loopback (>= 0.14) gives the capture
stream to one opener at a time, and a second one gets EBUSY, whether it
reads or maps buffers, as a real webcam in use does. uvcvideo offers no
read(2): a webcam is streamed with mmap buffers in a format the reader sets
(:func:`stream_luma`), as every webcam reader does.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Iterator

import numpy as np

from ...errors import BadInput, EnvironmentProblem
from ...frames import pixfmt
from ...frames.video import LumaFrame
from ...spec import CameraSpec, PixelFormat, Size
from . import nodes, ioctl
from .frame_waits import FRAME_S, WEBCAM_FIRST_FRAME_S


def read_luma(path: str, *, count: int, timeout: float = FRAME_S) -> Iterator[LumaFrame]:
    """Yield the luma of ``count`` frames from ``path``; a frame not seen within ``timeout`` s raises.

    A node without read(2) (a webcam: uvcvideo) is streamed in the format it is set to.
    """
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not _readable(fd, path):
            os.close(fd)
            fd = -1
            yield from stream_luma(path, None, count=count, timeout=timeout)
            return
        fmt = ioctl.get_format(fd, ioctl.VIDEO_CAPTURE)
        size = Size(fmt.width, fmt.height)
        pixel_format = PixelFormat.from_fourcc(fmt.fourcc)
        for _ in range(count):
            data = _read_frame(fd, max(fmt.size, 1), timeout, path)
            yield LumaFrame(pixfmt.luma(np.frombuffer(data, np.uint8), pixel_format, size),
                            time.time() * 1000)
    finally:
        if fd >= 0:
            os.close(fd)


def _readable(fd: int, path: str) -> bool:
    """Whether capture node ``path`` offers read(2); BadInput when it is no capture node at all."""
    try:
        caps = ioctl.query_capability(fd)
    except OSError:
        raise BadInput(f"{path} is not a V4L2 device") from None
    if not caps.device_caps & ioctl.CAP_VIDEO_CAPTURE:
        raise BadInput(f"{path} is not a video capture node ({caps.driver}: {caps.card}; "
                       "a webcam's metadata node, or an output node, carries no frames)")
    return bool(caps.device_caps & ioctl.CAP_READWRITE)


def luma_frames(path: str, webcam: CameraSpec | None, *, count: int,
                timeout: float | None = None, strip_only: bool = False) -> Iterator[LumaFrame]:
    """:func:`read_luma`, or for a ``webcam`` node :func:`stream_luma` in that spec; ``timeout``
    defaults to :data:`FRAME_S`, for a webcam to :data:`WEBCAM_FIRST_FRAME_S`."""
    if webcam is None:
        return read_luma(path, count=count, timeout=FRAME_S if timeout is None else timeout)
    return stream_luma(path, webcam, count=count, timeout=WEBCAM_FIRST_FRAME_S if timeout is None else timeout,
                       strip_only=strip_only)


def stream_luma(path: str, spec: CameraSpec | None, *, count: int, timeout: float = FRAME_S,
                strip_only: bool = False) -> Iterator[LumaFrame]:
    """Yield the luma of ``count`` frames streamed from ``path`` with mmap buffers, after asking for
    ``spec``'s format, size and rate (None: as the node is set); a frame not seen within ``timeout`` s
    raises, as does the device going away meanwhile (ENODEV: a webcam unplugged).

    ``strip_only``: the reader decodes only codes, so a frame may be cut to its top rows, as
    long as they hold the code strip: a simfarm MJPEG frame has only those decoded
    (jpeg_splice.top_rows), which under emulation is what lets a reader keep up with 30 fps.
    """
    try:
        yield from _stream_luma(path, spec, count, timeout, strip_only)
    except OSError as exc:
        if exc.errno != errno.ENODEV:
            raise
        raise EnvironmentProblem(f"{path} went away while being streamed (ENODEV: unplugged)") from None


def _stream_luma(path: str, spec: CameraSpec | None, count: int, timeout: float,
                 strip_only: bool) -> Iterator[LumaFrame]:
    from linuxpy.video import device as v4l2  # here: reading a loopback node needs none of it (ioctl)

    with v4l2.Device(path, blocking=False) as device:
        if spec is not None:
            device.set_format(v4l2.BufferType.VIDEO_CAPTURE, spec.size.width, spec.size.height, spec.format.value)
            device.set_fps(v4l2.BufferType.VIDEO_CAPTURE, spec.fps)
        fmt = device.get_format(v4l2.BufferType.VIDEO_CAPTURE)
        size, pixel_format = Size(fmt.width, fmt.height), PixelFormat.from_fourcc(int(fmt.pixel_format))
        with v4l2.VideoCapture(device, size=4) as stream:
            for _ in range(count):
                frame = stream.buffer.frame_reader.read(timeout)
                if frame is None:
                    raise EnvironmentProblem(f"no frame from {path} within {timeout:g} s")
                data = np.frombuffer(bytes(frame.data), np.uint8)
                yield LumaFrame(_luma(data, pixel_format, size, strip_only), time.time() * 1000)


def _luma(data: np.ndarray, fmt: PixelFormat, size: Size, strip_only: bool) -> np.ndarray:
    if strip_only and fmt is PixelFormat.MJPEG:
        from ...frames import jpeg_splice
        from ...frames.code import strip_height

        if (top := jpeg_splice.top_rows(data, strip_height(size.width))) is not None:
            jpeg, height = top
            return pixfmt.luma(jpeg, fmt, Size(size.width, height))
    return pixfmt.luma(data, fmt, size)


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
