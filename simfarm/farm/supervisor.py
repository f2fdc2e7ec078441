"""The farm supervisor: the background process that owns a farm's cameras.

Started by `provision` (CLI or API) with the farm's record already on disk.
It creates the nodes, feeds them, answers on the control socket, and on
stop (request, SIGTERM, SIGINT) or any failure while starting, removes
everything it made. Readiness goes back to the provisioner through an
inherited pipe; if the provisioner has gone, starting is abandoned.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass

from ..devices import loopback, nodes
from ..errors import BadInput, SimfarmError
from ..patterns import PatternLibrary
from ..producers.build import build_producer
from ..producers.producer import Producer
from ..producers.sinks import FdSink
from ..spec import CameraSpec
from .control import SOCKET, ControlServer
from .reclaim import reclaim
from .state import FarmRecord, NodeRecord, ProcessId, global_lock


@dataclass
class _Camera:
    index: int
    spec: CameraSpec
    node: NodeRecord
    producer: Producer | None = None


def camera_label(farm: str, index: int) -> str:
    return f"simfarm-{farm}-{index}"


class Supervisor:
    def __init__(self, record: FarmRecord) -> None:
        self.record = record
        spec = record.spec
        self.library = PatternLibrary(spec.get("patterns_dirs", ()))
        self.cameras = [
            _Camera(i, CameraSpec.parse(**cam), NodeRecord(i, camera_label(record.name, i)))
            for i, cam in enumerate(spec["cameras"])
        ]
        self.requested_numbers: list[int] | None = spec.get("nodes")
        self.stop_requested = threading.Event()
        self.stop_timeout = 10.0
        self.started = time.time()
        self._control: ControlServer | None = None

    def start(self) -> None:
        """Create and feed every camera; on failure the caller calls shutdown()."""
        with global_lock():
            for cam in self.cameras:
                self.record.nodes.append(cam.node)
                self.record.save()  # before the ioctl, so a crash mid-call is recoverable
                wanted = self.requested_numbers[cam.index] if self.requested_numbers else -1
                cam.node.number = loopback.create(cam.node.label, wanted)
                self.record.save()
        for cam in self.cameras:
            assert cam.node.number is not None
            fd = nodes.open_output(cam.node.number, cam.spec.format, cam.spec.size, cam.spec.fps)
            cam.producer = build_producer(cam.index, cam.spec, FdSink(fd, owned=True), self.library)
            cam.producer.start()
        self._control = ControlServer(self.record.directory / SOCKET, self.handle)
        self.record.phase = "running"
        self.record.save()

    def handle(self, request: dict) -> dict:
        op = request.get("op")
        if op == "status":
            return self.status()
        if op == "stop":
            self.stop_timeout = float(request.get("timeout", self.stop_timeout))
            self.stop_requested.set()
            return {"stopping": True}
        raise BadInput(f"unknown op {op!r} (known: status, stop)")

    def status(self) -> dict:
        cameras = []
        for cam in self.cameras:
            stats = cam.producer.stats() if cam.producer else None
            state = "starting" if stats is None else (
                "error" if stats.error else "streaming" if stats.running else "stopped")
            cameras.append({"camera": cam.index, "label": cam.node.label,
                            "device": nodes.node_path(cam.node.number) if cam.node.number is not None else None,
                            "state": state, "spec": cam.spec.to_json(),
                            **(stats.to_json() if stats else {})})
        return {"farm": self.record.name, "phase": self.record.phase,
                "supervisor_pid": os.getpid(), "state_dir": str(self.record.directory),
                "started_at": self.started, "cameras": cameras}

    def shutdown(self) -> None:
        """Stop producers, remove nodes, delete state (kept if a node stays busy)."""
        self.record.phase = "stopping"
        self.record.save()
        if self._control:
            self._control.close()
        for cam in self.cameras:
            if cam.producer:
                cam.producer.stop()
        self.record.supervisor = None  # we are the one reclaiming: do not kill ourselves
        with global_lock():
            reclaim(self.record, timeout=self.stop_timeout)


def _tell(fd: int, message: dict) -> None:
    os.write(fd, json.dumps(message).encode() + b"\n")
    os.close(fd)


def main(argv: list[str]) -> int:
    name, ready_fd = argv[0], int(argv[1])
    record = FarmRecord.load(name)
    if record is None:
        print(f"supervisor: no record for farm {name!r}", file=sys.stderr)
        return 1
    record.supervisor = ProcessId.me()
    record.save()
    supervisor = Supervisor(record)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: supervisor.stop_requested.set())
    try:
        supervisor.start()
        _tell(ready_fd, {"ok": True})
    except (SimfarmError, OSError) as exc:
        code = exc.exit_code if isinstance(exc, SimfarmError) else 1
        print(f"supervisor: start failed: {exc}", file=sys.stderr, flush=True)
        try:
            supervisor.shutdown()
        finally:
            try:
                _tell(ready_fd, {"ok": False, "error": str(exc), "exit_code": code})
            except OSError:
                pass  # the provisioner has gone; the rollback above is all that matters
        return code
    print(f"supervisor: farm {name} running with {len(supervisor.cameras)} cameras", flush=True)
    supervisor.stop_requested.wait()
    try:
        supervisor.shutdown()
    except SimfarmError as exc:
        print(f"supervisor: teardown incomplete: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
