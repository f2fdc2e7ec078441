"""A loopback farm whose nodes are pipes: a real supervisor, with no kernel.

``PipeNodes`` stands in for v4l2loopback in the process that uses it (the
fault tests run a supervisor in their own process with it). Run as a
script, ``python3 pipe_farm.py NAME READY_FD``, this module is the
supervisor process of farm NAME, as `simfarm provision` would start it: for
tests that drive a farm with the simfarm command, as a user's shell does,
and tear it down (which ends the supervisor's process).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from simfarm.backends import live
from simfarm.devices.loopback import nodes as loopback_nodes
from simfarm.farm import supervisor
from simfarm.frames import pixfmt
from simfarm.frames.code import FrameCode, decode
from simfarm.spec import CameraSpec, PixelFormat, Size
from simfarm.state.records import FarmRecord

SIZE = Size(320, 240)
ROOT = Path(__file__).resolve().parents[2]


class PipeNodes:
    """Stands in for v4l2loopback: each camera's node is a pipe whose frames a thread keeps."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.frames: dict[int, list[np.ndarray]] = {}
        self._threads: list[threading.Thread] = []
        # The loopback module the backend and device faults both call.
        monkeypatch.setattr(loopback_nodes, "choose_mode", lambda: loopback_nodes.Mode.CONTROL)
        monkeypatch.setattr(loopback_nodes, "create", lambda label, number=-1, max_buffers=4: 200 + int(label[-1]))
        monkeypatch.setattr(live.nodes, "open_output", self.open_output)
        # A pipe has one reader, the thread that keeps its frames: the supervisor's own check of its
        # cameras' frames (read back from their nodes) is for the VM tier.
        monkeypatch.setattr(supervisor.readiness, "check_frames", lambda cameras, backend: None)

    def open_output(self, number: int, fmt: PixelFormat, size: Size, fps: object) -> int:
        read_end, write_end = os.pipe()
        frames = self.frames.setdefault(number - 200, [])
        frame_bytes = pixfmt.frame_bytes(fmt, size)
        thread = threading.Thread(target=self._drain, args=(read_end, frame_bytes, frames), daemon=True)
        thread.start()
        self._threads.append(thread)
        return write_end

    @staticmethod
    def _drain(fd: int, frame_bytes: int, frames: list[np.ndarray]) -> None:
        with os.fdopen(fd, "rb") as pipe:
            while data := pipe.read(frame_bytes):
                frames.append(np.frombuffer(data, np.uint8)[:SIZE.width * SIZE.height].reshape(SIZE.height, SIZE.width))

    def codes(self, camera: int) -> list[FrameCode | None]:
        return [decode(frame) for frame in list(self.frames[camera])]


def make_record(name: str, cameras: int = 2) -> FarmRecord:
    """The record `provision` writes before it starts the supervisor: ``cameras`` small GREY cameras."""
    record = FarmRecord(name=name, spec={"cameras": [CameraSpec(size=SIZE, format=PixelFormat.GREY).to_json()]
                                         * cameras})
    record.directory.mkdir(parents=True)
    record.save()
    return record


@contextlib.contextmanager
def farm_process(name: str) -> Iterator[subprocess.Popen]:
    """Farm ``name`` supervised by a process of its own, running until it is torn down (or this ends)."""
    ready_read, ready_write = os.pipe()
    proc = subprocess.Popen([sys.executable, __file__, name, str(ready_write)], pass_fds=(ready_write,),
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    os.close(ready_write)
    try:
        with os.fdopen(ready_read) as ready:
            reply = json.loads(ready.readline() or '{"ok": false, "error": "the supervisor died"}')
        assert reply["ok"], reply
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()  # SIGTERM: the supervisor stops and reclaims, as at teardown
        proc.wait(timeout=30)


def _main(name: str, ready_fd: int) -> int:
    PipeNodes(pytest.MonkeyPatch())
    make_record(name)
    return supervisor.main([name, str(ready_fd)])


if __name__ == "__main__":
    code = _main(sys.argv[1], int(sys.argv[2]))
    sys.stdout.flush()
    os._exit(code)  # as the supervisor does: no wait for the pipe threads or the interpreter's finalisation
