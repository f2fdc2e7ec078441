"""The cameras one process runs, and the requests on them.

A farm's supervisor runs its cameras itself, or spreads them over worker
processes (workers.py), each of which runs its share here. Requests
(control.py framing; see supervisor.py for the reply shapes):

    fault    {"camera": 0, "kind": ..., "params": ..., "for": ..., "id": ..., "timeout": ...}
    clear    {"camera": 0, "id": ...} | {"camera": 0} | {"all": true}
    faults   every fault in force
    scenario {"path": ..., "seed": ..., "log": ..., "farm_cameras": [...]}
    status   {"cameras": [camera status]}

Frame-level faults act where the camera's producer runs, so they live here;
so do device-level ones, which stop and restart that producer.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, cast

from .. import backends
from ..backends.device_faults import DeviceFaults
from ..backends.live import LiveCamera
from ..errors import BadInput
from ..faults import FaultHandle, FaultSpec, Role
from .scenario_run import Router, run_scenario

if TYPE_CHECKING:
    from .publishing import Publisher  # set by a publishing supervisor, which imports it

CAMERA_OPS = ("fault", "clear", "faults", "scenario")


class CameraHost:
    """``cameras`` (all of the farm's, or a worker's share) run by this process.

    ``farm`` names the farm in messages; ``publisher`` is set by a supervisor
    that publishes (its cameras then run in the supervisor itself).
    """

    def __init__(self, farm: str, backend: backends.Backend, cameras: list[backends.SupervisedCamera],
                 router: Router, devices: DeviceFaults) -> None:
        self.farm = farm
        self.backend = backend
        self.cameras = cameras
        self.router = router
        self.devices = devices
        self.publisher: Publisher | None = None
        self._by_index = {cam.index: cam for cam in cameras}
        # Set when every fault is cleared or the farm stops: scenarios' device steps stop.
        self._scenarios_cancel = threading.Event()

    def handle(self, request: dict) -> dict:
        """Carry out one of CAMERA_OPS (or status)."""
        op = request.get("op")
        if op == "status":
            return {"cameras": self.status()}
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
                                self._scenarios_cancel, check=self.check_backend,
                                farm_cameras=request.get("farm_cameras"))
        raise BadInput(f"unknown op {op!r} (known: status, stop, fault, clear, faults, scenario)")

    def camera(self, index: object) -> backends.SupervisedCamera:
        if isinstance(index, bool) or not isinstance(index, int) or index not in self._by_index:
            raise BadInput(f"no camera {index!r} in farm {self.farm} (cameras 0..{len(self.cameras) - 1})")
        return self._by_index[index]

    def check_backend(self, cam: backends.SupervisedCamera, spec: FaultSpec) -> None:
        """Refuse a kind ``cam``'s backend cannot do, naming the one that can."""
        spec.info.require_backend(self.backend.name, f"camera {cam.index} of farm {self.farm}")

    def inject(self, cam: backends.SupervisedCamera, spec: FaultSpec, *, fault_id: str | None = None,
               timeout: float = 10.0) -> dict:
        """Put ``spec`` in force on ``cam``; returns the fault's JSON."""
        self.check_backend(cam, spec)
        if spec.device_level:
            return self.devices.apply(cam, spec, fault_id=fault_id, timeout=timeout)
        if spec.role is Role.STREAM:
            if self.publisher is None or not self.publisher.publishes(cam):
                raise BadInput(f"{spec.kind} is a stream fault, and farm {self.farm} does not publish "
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

    def status(self) -> list[dict]:
        publisher = self.publisher
        return [{**cam.status(), **(publisher.camera_status(cast(LiveCamera, cam))
                                    if publisher and publisher.publishes(cam) else {})}
                for cam in self.cameras]

    def close(self) -> None:
        """Stop every producer, logging device faults as stopped; the nodes stay (the supervisor reclaims)."""
        self._scenarios_cancel.set()
        if self.publisher:
            self.publisher.close()  # first: its FFmpegs hold the nodes open
        self.devices.close(self.cameras)
        for cam in self.cameras:
            cam.stop_stream(final=True)


def _mapping(request: dict, key: str) -> dict:
    value = request.get(key) or {}
    if not isinstance(value, dict):
        raise BadInput(f"{key} must be a JSON object, not {value!r}")
    return value
