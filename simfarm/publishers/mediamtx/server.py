"""One MediaMTX server for one farm: start on free ports, wait until ready, stop cleanly.

    server = MediaMTX.start(state_dir / "mediamtx", {"cam0": v4l2_publish_argv("/dev/video3", gop=15, ffmpeg=ffmpeg)})
    server.wait_available("cam0")
    print(server.rtsp_url("cam0"))
    server.stop()
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType

from ...errors import EnvironmentProblem
from ..ports import HOST, PortReservation, reserve_ports
from . import process
from .api import ApiClient, PathState, Unreachable
from . import versions
from .binary import Version, binary_version, find_binary
from .config import Files, Ports, RecordOptions, build_config, render
from .names import check_path_name

START_ATTEMPTS = 3  # a port can still be taken by a program that is not simfarm
POLL_SECONDS = 0.05


def require_binary(binary: str | None = None) -> tuple[str, Version]:
    """The mediamtx to run (see find_binary) and its version; EnvironmentProblem, with the remedy, when unusable.

    A version newer than any simfarm knows runs with the newest known keys, after a warning on stderr.
    """
    binary = find_binary(binary)
    return binary, versions.warn_if_newer(binary_version(binary))


class _PortTaken(Exception):
    """The server could not bind a reserved port: try again with others."""


class MediaMTX:
    """A MediaMTX server this process started, with its ports reserved until :meth:`stop`."""

    def __init__(self, proc: subprocess.Popen[bytes], files: Files, ports: Ports,
                 reservation: PortReservation, version: Version) -> None:
        self._process = proc
        self._reservation = reservation
        self.files = files
        self.ports = ports
        self.version = version
        self.api = ApiClient(f"http://{HOST}:{ports.api}")

    @classmethod
    def start(cls, workdir: Path, paths: Mapping[str, Sequence[str]], *,
              record: RecordOptions | None = None, binary: str | None = None,
              ready_timeout: float = 15.0, on_launch: Callable[[int], None] | None = None) -> MediaMTX:
        """Start a server owning ``workdir`` (config, logs, recordings) and wait until it is ready.

        ``paths`` maps each path name to the argv of its publisher (see
        hooks.v4l2_publish_argv); MediaMTX runs it from start to stop and
        restarts it whenever it exits. ``binary`` is a ``--mediamtx`` value.
        ``on_launch`` gets each server process's pid the moment it exists
        (an owner records it, so a crash between launch and ready leaks nothing).
        """
        binary, version = require_binary(binary)
        files = Files(Path(workdir).absolute())
        files.workdir.mkdir(parents=True, exist_ok=True)
        playback = bool(record and record.playback)
        env = {key: value for key, value in os.environ.items()
               if not key.startswith("MTX_")}  # MTX_<KEY> would override the config
        for _ in range(START_ATTEMPTS):
            reservation = reserve_ports(3 if playback else 2)
            ports = Ports(*reservation.ports)
            try:
                files.config.write_text(render(build_config(files, paths, ports, version=version, record=record)))
                for stale in (files.log, files.output):  # so errors are this attempt's only
                    stale.unlink(missing_ok=True)
                proc = process.launch([binary, str(files.config)], cwd=files.workdir, output=files.output, env=env)
            except BaseException:
                reservation.release()
                raise
            server = cls(proc, files, ports, reservation, version)
            try:
                if on_launch:
                    on_launch(proc.pid)
            except BaseException:
                server.stop()
                raise
            try:
                server._wait_ready(ready_timeout)
            except _PortTaken:
                continue
            return server
        raise EnvironmentProblem(f"mediamtx could not bind its ports in {START_ATTEMPTS} attempts",
                                 "find what keeps taking 127.0.0.1 ports 20000-32767 (`ss -ltnp`)")

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def api_url(self) -> str:
        """Base URL of the control API, e.g. ``http://127.0.0.1:21311`` (``/v3/...`` below it)."""
        return self.api.base_url

    @property
    def rtsp_base_url(self) -> str:
        """Where the RTSP listener is, e.g. ``rtsp://127.0.0.1:21310``: a path's URL is this + ``/name``."""
        return f"rtsp://{HOST}:{self.ports.rtsp}"

    def rtsp_url(self, path: str) -> str:
        return f"rtsp://{HOST}:{self.ports.rtsp}/{check_path_name(path)}"

    @property
    def playback_url(self) -> str | None:
        """Base URL of the playback server (``/list``, ``/get``), when recording with playback."""
        return f"http://{HOST}:{self.ports.playback}" if self.ports.playback else None

    def wait_available(self, name: str, timeout: float = 20.0) -> PathState:
        """Poll the path until a stream is available on it (its publisher is streaming)."""
        def pause() -> None:
            if self._pause():
                raise self._exited()

        return self.api.wait_available(name, timeout, pause=pause, explain=self._logs)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the server (SIGINT, SIGKILL after ``timeout``) and everything it started; free its ports."""
        try:
            process.stop(self._process, timeout=timeout)
        finally:
            self._reservation.release()

    def __enter__(self) -> MediaMTX:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()

    def _wait_ready(self, timeout: float) -> None:
        """Until the API answers: it opens after every other listener, so then all are bound."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    self.api.info()
                    return
                except Unreachable:
                    pass
                if time.monotonic() > deadline:
                    raise EnvironmentProblem(f"mediamtx not ready after {timeout:g}s\n" + self._logs())
                if self._pause():
                    if "address already in use" in self._logs():
                        raise _PortTaken()
                    raise self._exited()
        except BaseException:
            self.stop()
            raise

    def _pause(self) -> bool:
        """Wait one poll interval, cut short when the server exits: then stop (reap) it and say so."""
        if not process.wait_exit(self._process, POLL_SECONDS):
            return False
        self.stop()
        return True

    def _exited(self) -> EnvironmentProblem:
        return EnvironmentProblem(f"mediamtx exited with code {self._process.returncode}\n{self._logs()}")

    def _logs(self) -> str:
        parts = []
        for path in (self.files.log, self.files.output):
            if text := process.tail(path):
                parts.append(f"--- last lines of {path} ---\n{text}")
        return "\n".join(parts) or f"(nothing in {self.files.log} or {self.files.output})"
