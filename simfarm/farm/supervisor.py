"""The farm supervisor: the background process that owns a farm's cameras.

Started by `provision` (CLI or API) with the farm's record already on disk.
It has the farm's backend (simfarm.backends) make the cameras and feeds them,
answers on the control socket, and on stop (request, SIGTERM, SIGINT) or any
failure while starting, removes everything it made. Readiness goes back to the provisioner through an
inherited pipe; if the provisioner has gone, starting is abandoned.

Control operations (JSON lines, see control.py for the framing); every reply
is ``{"ok": true, ...}`` or ``{"ok": false, "error": ..., "exit_code": 2|1}``,
exit code 2 for bad input, in which case nothing was changed:

    {"op": "status"}
        -> farm, backend, phase, supervisor_pid, state_dir, started_at, cameras: [{camera,
           label, device, state, spec, written, fps, late, dropped, uptime_s,
           running, error, held_by, faults: [fault JSON]}]  (state: streaming,
           unplugging while an unplug waits for the readers in held_by, unplugged, ...;
           a vivid camera: metadata_device, state ready, disconnected, or reconnecting
           while the readers in held_by keep it from coming back, no counters);
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

import json
import os
import signal
import sys
import threading
import time
from typing import cast

from .. import backends
from ..errors import BadInput, SimfarmError
from ..faults import FaultHandle, FaultLog, FaultSpec, Role
from . import readiness
from .control import SOCKET, ControlServer
from .live import LiveCamera
from .publishing import Publisher
from .reclaim import reclaim
from .scenario_run import Router, run_scenario
from .state import FAULT_LOG, FarmRecord, ProcessId, global_lock


class Supervisor:
    def __init__(self, record: FarmRecord) -> None:
        self.record = record
        self.backend = backends.get(record.backend)
        self.router = Router(FaultLog.open(record.directory / FAULT_LOG))
        self.cameras = self.backend.cameras(record, self.router)
        self.devices = self.backend.device_faults(self.record, self.router)
        # Set when every fault is cleared or the farm stops: scenarios' device steps stop.
        self._scenarios_cancel = threading.Event()
        self.stop_requested = threading.Event()
        self.stop_timeout = 10.0
        self.started = time.time()
        self._control: ControlServer | None = None
        self.publisher: Publisher | None = None

    def start(self) -> None:
        """Create and feed every camera; on failure the caller calls shutdown()."""
        self.backend.create(self.record, self.cameras)
        if plan := self.record.spec.get("publish"):
            # Publishing is refused at provision for backends other than loopback, whose frames carry codes.
            published = cast(list[LiveCamera], self.cameras) if plan.get("camera_paths", True) else []
            readiness.check_frames(published, coded=True)
            self.publisher = Publisher.start(plan, self.record, published, self.router)
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
        if op == "fault":
            spec = FaultSpec.from_mapping({**_mapping(request, "params"), "kind": request.get("kind")},
                                          duration=request.get("for"))
            return self.inject(self.camera(request.get("camera")), spec, fault_id=request.get("id"),
                               timeout=float(request.get("timeout", 10.0)))
        if op == "clear":
            return {"cleared": [handle.id for handle in self.clear(request)]}
        if op == "faults":
            return {"faults": [h.to_json() for cam in self.cameras for h in cam.active_faults()]}
        if op == "scenario":
            # Only cameras fed by producers run frame-level faults; check_backend refuses them elsewhere first.
            cameras = cast(list[LiveCamera], self.cameras)
            return run_scenario(str(request.get("path")), request.get("seed"), request.get("log"), cameras,
                                self.router, lambda cam, event: self.inject(cam, event.spec, fault_id=event.fault_id),
                                self._scenarios_cancel, check=self.check_backend)
        raise BadInput(f"unknown op {op!r} (known: status, stop, fault, clear, faults, scenario)")

    def camera(self, index: object) -> backends.SupervisedCamera:
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(self.cameras):
            raise BadInput(f"no camera {index!r} in farm {self.record.name} (cameras 0..{len(self.cameras) - 1})")
        return self.cameras[index]

    def check_backend(self, cam: backends.SupervisedCamera, spec: FaultSpec) -> None:
        """Refuse a kind ``cam``'s backend cannot do, naming the one that can."""
        spec.info.require_backend(self.backend.name, f"camera {cam.index} of farm {self.record.name}")

    def inject(self, cam: backends.SupervisedCamera, spec: FaultSpec, *, fault_id: str | None = None,
               timeout: float = 10.0) -> dict:
        """Put ``spec`` in force on ``cam``; returns the fault's JSON."""
        self.check_backend(cam, spec)
        if spec.device_level:
            return self.devices.apply(cam, spec, fault_id=fault_id, timeout=timeout)
        if spec.role is Role.STREAM:
            if self.publisher is None or not self.publisher.publishes(cam):
                raise BadInput(f"{spec.kind} is a stream fault, and farm {self.record.name} does not publish "
                               "its cameras (provision it with --publish)")
            return self.publisher.inject(cast(LiveCamera, cam), spec, fault_id=fault_id)  # loopback: checked above
        if fault_id is not None and fault_id in cam.device_faults:
            raise BadInput(f"camera {cam.index} already has a fault {fault_id!r}")
        # Frame-level faults are for backends whose producers write every frame (checked above).
        return cast(backends.ProducedCamera, cam).faults.add(spec, fault_id=fault_id).to_json()

    def clear(self, request: dict) -> list[FaultHandle]:
        if request.get("all"):
            self._scenarios_cancel.set()
            self._scenarios_cancel = threading.Event()
            handles = [h for cam in self.cameras for h in cam.active_faults()]
        else:
            cam = self.camera(request.get("camera"))
            handles = cam.active_faults()
            if (wanted := request.get("id")) is not None:
                handles = [h for h in handles if h.id == wanted]
                if not handles:
                    raise BadInput(f"camera {cam.index} has no fault {wanted!r} in force")
        for handle in handles:
            handle.clear()
        return handles

    def status(self) -> dict:
        return {"farm": self.record.name, "backend": self.backend.name, "phase": self.record.phase,
                "supervisor_pid": os.getpid(), "state_dir": str(self.record.directory),
                "started_at": self.started, **({"publish": self.publisher.status()} if self.publisher else {}),
                "cameras": [{**cam.status(), **(self.publisher.camera_status(cast(LiveCamera, cam))
                                                  if self.publisher and self.publisher.publishes(cam) else {})}
                            for cam in self.cameras]}

    def shutdown(self) -> None:
        """Stop producers, remove nodes, delete state (kept if a node stays busy)."""
        self.record.phase = "stopping"
        self.record.save()
        if self._control:
            self._control.close()
        self._scenarios_cancel.set()
        if self.publisher:
            self.publisher.close()  # first: its FFmpegs hold the nodes open
        self.devices.close(self.cameras)
        for cam in self.cameras:
            cam.stop_stream(final=True)
        self.router.farm_log.close()
        self.record.supervisor = None  # we are the one reclaiming: do not kill ourselves
        with global_lock():
            reclaim(self.record, timeout=self.stop_timeout)


def _mapping(request: dict, key: str) -> dict:
    value = request.get(key) or {}
    if not isinstance(value, dict):
        raise BadInput(f"{key} must be a JSON object, not {value!r}")
    return value


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
