"""A loopback farm of worker processes whose nodes are FIFOs: real workers, killed and restarted, no kernel.

Run as a script, ``python3 fifo_farm.py NAME READY_FD DIRECTORY``, this
module is the supervisor process of farm NAME: two GREY cameras at 10 fps on
two workers, camera K's node the FIFO ``DIRECTORY/node-K``, which a worker
opens for writing where it would open the v4l2loopback node. While the file
``DIRECTORY/broken`` exists, opening a node fails, and so does a worker's start.

The test side reads each node with a FifoReader (a session of frames per
writer: a restarted worker opens the FIFO anew) and watches the supervisor's
log for its lines (SupervisorLog).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import IO

import numpy as np
import pytest

from simfarm.backends import live
from simfarm.devices.loopback import nodes as loopback_nodes
from simfarm.farm import supervisor
from simfarm.frames import pixfmt
from simfarm.frames.code import FrameCode, decode
from simfarm.spec import CameraSpec, PixelFormat, Size
from simfarm.state.records import FarmRecord

SPEC = CameraSpec(size=Size(320, 240), fps=Fraction(10), format=PixelFormat.GREY)
CAMERAS, WORKERS = 2, 2
ROOT = Path(__file__).resolve().parents[2]


class FifoReader:
    """Reads camera frames from a FIFO, one session per writer that opens it, until closed."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sessions: list[list[FrameCode | None]] = []
        self._changed = threading.Condition()
        self._stop = False
        os.mkfifo(path)
        self._thread = threading.Thread(target=self._read, name=f"read-{path.name}", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        size = pixfmt.frame_bytes(SPEC.format, SPEC.size)
        while not self._stop:
            with open(self.path, "rb") as fifo:  # blocks until a writer opens it
                session: list[FrameCode | None] = []
                with self._changed:
                    self.sessions.append(session)
                # A writer killed mid-frame leaves a short last read: not a frame.
                while len(data := fifo.read(size)) == size:
                    code = decode(np.frombuffer(data, np.uint8).reshape(SPEC.size.height, SPEC.size.width))
                    with self._changed:
                        session.append(code)
                        self._changed.notify_all()

    def wait_frames(self, session: int, frames: int, timeout: float = 60.0) -> list[FrameCode | None]:
        """Session ``session``'s codes once it holds ``frames`` frames (the timeout only bounds a hang)."""
        with self._changed:
            assert self._changed.wait_for(lambda: len(self.sessions) > session
                                          and len(self.sessions[session]) >= frames, timeout), self.sessions
            return list(self.sessions[session])

    def close(self) -> None:
        """Stop reading: the reader waiting for a writer is let through by one that writes nothing."""
        self._stop = True
        while self._thread.is_alive():
            with contextlib.suppress(OSError):  # ENXIO: no reader waits in open() at this instant
                os.close(os.open(self.path, os.O_WRONLY | os.O_NONBLOCK))
            self._thread.join(0.05)


class SupervisorLog:
    """The supervisor's stderr, line by line, with a wait for a line."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[bytes]) -> None:
        for raw in stream:
            with self._changed:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))
                self._changed.notify_all()

    def wait_for(self, text: str, count: int = 1, timeout: float = 60.0) -> list[str]:
        """The log's lines holding ``text``, once there are ``count`` of them."""
        def found() -> list[str]:
            return [line for line in self.lines if text in line]
        with self._changed:
            assert self._changed.wait_for(lambda: len(found()) >= count, timeout), self.lines
            return found()


@contextlib.contextmanager
def worker_farm(name: str, directory: Path) -> Iterator[tuple[subprocess.Popen, SupervisorLog, list[FifoReader]]]:
    """Farm ``name``'s supervisor process, its log, and a reader on each camera's node."""
    readers = [FifoReader(directory / f"node-{k}") for k in range(CAMERAS)]
    ready_read, ready_write = os.pipe()
    proc = subprocess.Popen([sys.executable, __file__, name, str(ready_write), str(directory)],
                            pass_fds=(ready_write,), stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    os.close(ready_write)
    assert proc.stderr is not None
    log = SupervisorLog(proc.stderr)
    try:
        with os.fdopen(ready_read) as ready:
            reply = json.loads(ready.readline() or '{"ok": false, "error": "the supervisor died"}')
        assert reply["ok"], (reply, log.lines)
        yield proc, log, readers
    finally:
        if proc.poll() is None:
            proc.terminate()  # SIGTERM: the supervisor stops its workers and reclaims, as at teardown
        proc.wait(timeout=60)
        for reader in readers:
            reader.close()


def _open_node(directory: Path, number: int, fmt: PixelFormat, size: Size, fps: object) -> int:
    if (directory / "broken").exists():
        raise OSError(errno.EIO, "node broken by the test")
    return os.open(directory / f"node-{number - 200}", os.O_WRONLY)


def _main(name: str, ready_fd: int, directory: Path) -> int:
    patch = pytest.MonkeyPatch()
    patch.setattr(loopback_nodes, "choose_mode", lambda: loopback_nodes.Mode.CONTROL)
    patch.setattr(loopback_nodes, "create", lambda label, number=-1, max_buffers=4: 200 + int(label[-1]))
    patch.setattr(live.nodes, "open_output", lambda *args: _open_node(directory, *args))
    # The test reads the frames: the supervisor's own check would be a second reader of a FIFO.
    patch.setattr(supervisor.readiness, "check_frames", lambda cameras, backend: None)
    record = FarmRecord(name=name, spec={"cameras": [SPEC.to_json()] * CAMERAS, "workers": WORKERS})
    record.directory.mkdir(parents=True)
    record.save()
    return supervisor.main([name, str(ready_fd)])


if __name__ == "__main__":
    code = _main(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]))
    sys.stderr.flush()
    os._exit(code)
