"""Where a producer's frames go: anything with a file descriptor.

A v4l2loopback output node, a pipe and a regular file all take whole frames
through write(2); a short write (pipes) is continued until the frame is out,
so a consumer never sees half a frame.
"""

from __future__ import annotations

import os
from typing import Protocol

import numpy as np


class Sink(Protocol):
    def write_frame(self, frame: np.ndarray) -> None: ...
    def close(self) -> None: ...


class FdSink:
    """Writes whole frames to a file descriptor; owns it when ``owned``."""

    def __init__(self, fd: int, *, owned: bool = False) -> None:
        self.fd = fd
        self._owned = owned

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> FdSink:
        return cls(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644),
                   owned=True)

    def write_frame(self, frame: np.ndarray) -> None:
        view = memoryview(frame).cast("B")
        while view:
            view = view[os.write(self.fd, view):]

    def close(self) -> None:
        if self._owned and self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
