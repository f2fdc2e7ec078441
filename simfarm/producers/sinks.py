"""Where a producer's frames go: anything with a file descriptor.

A v4l2loopback output node, a pipe and a regular file all take whole frames
through write(2); a short write (pipes) is continued until the frame is out,
so a consumer never sees half a frame.
"""

from __future__ import annotations

import fcntl
import os
import stat
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
        self._sized = False

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> FdSink:
        return cls(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644),
                   owned=True)

    def write_frame(self, frame: np.ndarray) -> None:
        if not self._sized:
            self._fit_pipe(frame.nbytes)
        written = os.write(self.fd, frame)
        if written < frame.nbytes:  # a pipe took part of it: the rest follows
            view = memoryview(frame).cast("B")[written:]
            while view:
                view = view[os.write(self.fd, view):]

    def _fit_pipe(self, frame_bytes: int) -> None:
        """Grow a pipe to hold a whole frame: one write, one wakeup of the reader.

        A 64 KiB default pipe splits a VGA frame into ten blocking writes,
        which costs the writer more CPU than everything else it does.
        """
        self._sized = True
        if stat.S_ISFIFO(os.fstat(self.fd).st_mode):
            try:
                limit = int(open("/proc/sys/fs/pipe-max-size").read())
                fcntl.fcntl(self.fd, fcntl.F_SETPIPE_SZ, min(frame_bytes, limit))
            except OSError:
                pass  # a smaller pipe still works, only with more wakeups

    def close(self) -> None:
        if self._owned and self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
