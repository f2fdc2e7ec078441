"""The farm supervisor: the background process that owns a farm's cameras.

Started by `provision` (CLI or API) with the farm's record already on disk.
It has the farm's backend (simfarm.backends) make the cameras and feeds them,
answers on the control socket, and on stop (request, SIGTERM, SIGINT) or any
failure while starting, removes everything it made. Readiness goes back to the provisioner through an
inherited pipe once every camera has delivered its own frames (readiness.py), so the provisioner
needs none of what reading them takes; if the provisioner has gone, starting is abandoned.

Control operations (JSON lines, see control.py for the framing); every reply
is ``{"ok": true, ...}`` or ``{"ok": false, "error": ..., "exit_code": 2|1}``,
exit code 2 for bad input, in which case nothing was changed:

    {"op": "status"}
        -> farm, backend, phase, supervisor_pid, state_dir, started_at, cameras: [{camera,
           label, device, state, spec, written, fps, late, dropped, uptime_s,
           running, error, held_by, faults: [fault JSON]}]  (state: streaming,
           unplugging while an unplug waits for the readers in held_by, unplugged, ...;
           a vivid camera: metadata_device, state ready, disconnected, or reconnecting
           while the readers in held_by keep it from coming back, no counters; a uvc camera:
           state idle while no reader streams, metadata_device, controls, usb {vendor_id,
           product_id, serial, profile, busid, port, dropped: frames the host had not yet
           taken the last one for}; an exported webcam (--usbip-listen, state unplugged while
           withdrawn) adds usbip {busid, state offered|imported|withdrawn, peer, since, frames,
           bytes, listen} and the farm usbip {listen});
           a farm serving metrics (--metrics-listen) adds metrics {listen};
           a farm with worker processes adds workers [{worker, pid, cameras, error}] (error:
           why it died) and per camera worker (a dead worker's cameras: state error);
           a publishing farm adds publish {managed, api, rtsp (base URL), pid, version, log, recordings}
           and per camera path, rtsp_url, proxy_url, available, readers,
           publisher_restarts, toxics (see publishing.py)
    {"op": "stop", "timeout": 10}
    {"op": "fault", "camera": 0, "kind": "drop", "params": {"frames": 10},
     "for": "1s" | seconds | null, "id": null, "timeout": 10}
        -> the fault's JSON: fault (its id), camera, kind, params, for_s,
           started, ended, reason, frames, touched; device-level kinds add
           what was observed: unplug ``removed`` and ``held_by`` (pids that
           held the node while the unplug waited), replug ``device``,
           resize/reformat ``spec``, disconnect ``readers``, kick ``kicked`` (session
           ids). ``timeout`` is how long an unplug waits for readers to close the
           node. A kind the camera's backend cannot do is refused (exit code 2), as
           are stream faults (kick, publisher-loss, ...) on a farm that does not publish.
    {"op": "clear", "camera": 0, "id": "c0.3"} | {"op": "clear", "camera": 0} | {"op": "clear", "all": true}
        -> cleared: [fault ids]   (clearing an unplug plugs the camera in again;
           clearing all also cancels the device steps of running scenarios)
    {"op": "faults"} -> faults: [fault JSON of every fault not yet ended]
    {"op": "scenario", "path": "/abs/file.yaml", "seed": 3 | null, "log": "/abs/out.jsonl" | null}
        -> scenario, seed, events, origins {camera: sequence}, duration_s, log;
           returns once the scenario is scheduled (see scenario_run.py)

Every fault's start and end go to ``faults.jsonl`` in the farm's state directory.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, cast

from .. import backends
from ..backends.live import LiveCamera
from ..errors import SimfarmError
from ..faults import FaultLog
from ..state.records import FAULT_LOG, FarmRecord, ProcessId, amend_record, global_lock
from . import readiness
from .control import SOCKET, ControlServer, tell
from .host import CameraHost
from .reclaim import reclaim
from .scenario_run import Router
from .workers import WorkerPool

# Imported where a farm publishes, exports or serves metrics: the MediaMTX client, the fault proxy, the
# USB/IP server and prometheus-client cost every other farm's start.
if TYPE_CHECKING:
    from ..publishers.metrics import MetricsServer
    from .publishing import Publisher
    from .usbip_exports import FarmExports


class Supervisor:
    def __init__(self, record: FarmRecord) -> None:
        self.record = record
        self.backend = backends.get(record.backend)
        self.router = Router(FaultLog.open(record.directory / FAULT_LOG))
        self.cameras = self.backend.cameras(record, self.router)
        # Provisioning gives workers only to loopback and uvc farms that do not publish
        # (farm.Farm.provision): their backends are WorkerBackends, their cameras produced.
        self.workers = int(record.spec.get("workers") or 0)
        self.host: CameraHost | WorkerPool = (
            WorkerPool(record, cast(backends.WorkerBackend, self.backend),
                       cast(list[backends.ProducedCamera], self.cameras), self.router) if self.workers else
            CameraHost(record.name, self.backend, self.cameras, self.router,
                       self.backend.device_faults(record, self.router)))
        self.stop_requested = threading.Event()
        self.stop_timeout = 10.0
        self.started = time.time()
        self._control: ControlServer | None = None
        self.publisher: Publisher | None = None
        self.exports: FarmExports | None = None
        self.metrics: MetricsServer | None = None

    def start(self, *, private_fds: tuple[int, ...] = ()) -> None:
        """Create and feed every camera and check that each delivers its own frames; on failure the
        caller calls shutdown().

        ``private_fds`` are closed in worker processes (the provisioner's readiness pipe, whose
        end of file tells the provisioner that the supervisor has died).
        """
        if usbip := self.record.spec.get("usbip"):
            from .usbip_exports import FarmExports

            # Listening first: an address that cannot be bound fails the farm before any webcam is made.
            # Provisioning gives an exporting farm no workers: its webcams run here.
            self.exports = FarmExports(usbip, self.cameras)
            self.exports.start()
        if metrics := self.record.spec.get("metrics"):
            from ..listen import parse_address
            from ..publishers.metrics import MetricsServer

            # Bound now, served once the workers are forked (a fork copies no thread).
            address = parse_address(metrics["listen"], "metrics listen address", None)
            self.metrics = MetricsServer(address, self.status)
        if isinstance(self.host, WorkerPool):
            self.host.start(self.workers, private_fds)  # forks: before this process starts any thread
        else:
            self.backend.create(self.record, self.cameras)
        # Here rather than in the provisioner, which would have to import numpy and linuxpy to read
        # frames; and before a publisher takes a node (v4l2loopback streams to one reader at a time).
        # An exported webcam has no node here: its frames are read on the machine that imports it.
        readiness.check_frames([cam for cam in self.cameras if not cam.exported], self.backend.name)
        if plan := self.record.spec.get("publish"):
            from .publishing import Publisher

            # Publishing is refused at provision for backends other than loopback and for workers.
            assert isinstance(self.host, CameraHost)
            published = cast(list[LiveCamera], self.cameras) if plan.get("camera_paths", True) else []
            self.publisher = self.host.publisher = Publisher.start(plan, self.record, published, self.router)
        if self.metrics:
            self.metrics.start()
        self._control = ControlServer(self.record.directory / SOCKET, self.handle)
        self._set_phase("running")

    def handle(self, request: dict) -> dict:
        op = request.get("op")
        if op == "status":
            return self.status()
        if op == "stop":
            self.stop_timeout = float(request.get("timeout", self.stop_timeout))
            self.stop_requested.set()
            return {"stopping": True}
        return self.host.handle(request)

    def status(self) -> dict:
        workers = {"workers": self.host.summary()} if isinstance(self.host, WorkerPool) else {}
        cameras = self.host.status()
        if self.exports:
            self.exports.annotate(cameras)
        return {"farm": self.record.name, "backend": self.backend.name, "phase": self.record.phase,
                "supervisor_pid": os.getpid(), "state_dir": str(self.record.directory),
                "started_at": self.started, **({"publish": self.publisher.status()} if self.publisher else {}),
                **({"usbip": {"listen": self.exports.listen}} if self.exports else {}),
                **({"metrics": {"listen": self.metrics.listen}} if self.metrics else {}),
                **workers, "cameras": cameras}

    def shutdown(self) -> None:
        """Stop producers, remove nodes, delete state (kept if a node stays busy)."""
        self._set_phase("stopping")
        if self._control:
            self._control.close()
        if self.metrics:
            self.metrics.close()
        if self.exports:
            self.exports.close()  # first: no new import while the webcams stop, and every import ends
        self.host.close()
        self.router.farm_log.close()
        # Workers write the nodes they replug into the record on disk: that copy is the one to reclaim.
        record = FarmRecord.load(self.record.name) or self.record
        record.supervisor = None  # we are the one reclaiming: do not kill ourselves
        with global_lock():
            reclaim(record, timeout=self.stop_timeout)

    def _set_phase(self, phase: str) -> None:
        self.record.phase = phase
        amend_record(self.record.name, lambda record: setattr(record, "phase", phase))


def main(argv: list[str]) -> int:
    name, ready_fd = argv[0], int(argv[1])
    record = FarmRecord.load(name)
    if record is None:
        print(f"supervisor: no record for farm {name!r}", file=sys.stderr)
        return 1
    record.supervisor = ProcessId.me()
    record.save()
    supervisor: Supervisor | None = None
    try:
        # Making the cameras checks what provisioning left to the supervisor (a camera's pattern,
        # which needs the pattern library and so numpy): bad input is refused before anything is made.
        supervisor = Supervisor(record)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_, stop=supervisor.stop_requested: stop.set())
        supervisor.start(private_fds=(ready_fd,))
        tell(ready_fd, {"ok": True})
    except (SimfarmError, OSError) as exc:
        code = exc.exit_code if isinstance(exc, SimfarmError) else 1
        print(f"supervisor: start failed: {exc}", file=sys.stderr, flush=True)
        try:
            if supervisor is not None:  # else nothing was made: the provisioner removes the record
                supervisor.shutdown()
        finally:
            try:
                tell(ready_fd, {"ok": False, "error": str(exc), "exit_code": code})
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
    exit_code = main(sys.argv[1:])
    # What the farm owned is reclaimed and every log line written (the fault logs flush each one):
    # nothing is left for the interpreter's finalisation (numpy's, OpenCV's, the threads'), which
    # teardown would otherwise wait for.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(exit_code)
