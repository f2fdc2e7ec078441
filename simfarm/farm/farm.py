"""The public Farm API: provision cameras, look at them, tear them down.

The CLI is a thin layer over this module. A farm is run by a supervisor
process (see supervisor.py) so it outlives the command that made it; this
module only starts, queries and stops supervisors, and cleans up after
dead ones.
"""

from __future__ import annotations

import json
import os
import select
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from ..devices.v4l2 import nodes
from ..errors import BadInput, EnvironmentProblem, InUse, SimfarmError
from ..state.records import FAULT_LOG, FarmRecord, ProcessId, check_farm_name, farm_names, global_lock
from . import control
from .reclaim import reclaim, stale_farms

# What only provisioning, snapshots, recordings and reading frames back need
# (numpy, OpenCV, linuxpy, the MediaMTX client, the backends) is imported in
# the functions that use it: status, fault and teardown load none of it. So
# are subprocess and the camera specs (dataclasses, fractions, enum), which
# cost status and teardown half of Python's own start-up.
if TYPE_CHECKING:
    import subprocess

    import numpy as np

    from ..frames.code import FrameCode
    from ..publishers.mediamtx.recordings import Segment
    from ..spec import CameraSpec
    from .publish_plan import PublishOptions

LOG = "supervisor.log"
# Supervisors this process started: reaped at teardown, so a long-lived
# caller (a test session) does not collect zombies.
_CHILDREN: dict[int, subprocess.Popen] = {}


class Camera:
    """One camera of a running farm."""

    __slots__ = ("farm", "index", "spec", "label", "number", "metadata")

    def __init__(self, farm: Farm, index: int, spec: CameraSpec, label: str, number: int,
                 metadata: int | None = None) -> None:
        self.farm, self.index, self.spec, self.label, self.number, self.metadata = (
            farm, index, spec, label, number, metadata)

    def __repr__(self) -> str:
        return f"<Camera {self.index} of farm {self.farm.name}: {self.device} {self.label}>"

    @property
    def device(self) -> str:
        """The node path, e.g. ``/dev/video3``."""
        return nodes.node_path(self.number)

    @property
    def metadata_device(self) -> str | None:
        """The metadata node beside the capture node (a vivid camera's, as a UVC webcam has); None for loopback."""
        return nodes.node_path(self.metadata) if self.metadata is not None else None

    @property
    def by_id(self) -> str | None:
        """The stable link: the simfarm udev rule's (when installed) for loopback, the system's own
        ``usb-<manufacturer>_<product>_<serial>`` for a uvc webcam; None for vivid, which has none."""
        if self.farm.backend == "uvc":
            return nodes.link_to(self.device, "/dev/v4l/by-id")
        return f"/dev/v4l/by-id/{self.label}-video-index0" if self.farm.backend == "loopback" else None

    def stats(self) -> dict:
        """Live counters from the supervisor: frames written, fps, late, dropped, uptime, faults."""
        return self.farm.status()["cameras"][self.index]

    def inject(self, kind: str, *, for_: str | float | None = None, timeout: float = 10.0,
               **params: Any) -> Fault:
        """Put a fault in force now: ``cam.inject("drop", frames=10)``, ``cam.inject("resize", size="320x240")``.

        ``for_`` is its duration (``"1s"``, seconds); ``timeout`` how long an
        unplug waits for readers to close the node. Parameters are checked
        here first, so a mistake raises BadInput without asking the farm.
        Use the result as a context manager to clear the fault on leaving::

            with cam.inject("freeze", for_="1s"):
                ...
        """
        from ..faults.catalogue import FaultSpec  # here: status and teardown need no fault catalogue

        spec = FaultSpec.build(kind, params, for_)
        spec.info.require_backend(self.farm.backend, f"camera {self.index} of farm {self.farm.name}")
        info = self.farm.request({"op": "fault", "camera": self.index, "kind": spec.kind,
                                  "params": spec.to_json()["params"], "for": spec.duration_s,
                                  "timeout": timeout}, timeout=timeout + 30)
        return Fault(self, info)

    @property
    def rtsp_url(self) -> str:
        """Where readers get this camera's stream (a publishing farm's MediaMTX path)."""
        return self._published("rtsp_url")

    @property
    def proxy_url(self) -> str:
        """The same stream through the camera's TCP fault proxy (latency, bandwidth, reset, timeout)."""
        return self._published("proxy_url")

    def snapshot(self, *, timeout: float | None = None) -> tuple[np.ndarray, FrameCode | None]:
        """One decoded frame from the camera's RTSP path: (BGR numpy image, the frame code it carries).

        ``timeout``: seconds to wait for a picture (default ``frames.snapshot.SNAPSHOT_TIMEOUT_S``).
        """
        from ..frames.snapshot import SNAPSHOT_TIMEOUT_S, grab
        return grab(self.rtsp_url, timeout=SNAPSHOT_TIMEOUT_S if timeout is None else timeout)

    def recordings(self) -> list[Segment]:
        """This camera's recording segments, oldest first (see :meth:`Farm.recordings`)."""
        from ..publishers.mediamtx.recordings import list_segments
        from .publish_plan import path_name, recordings_dir
        return list_segments(recordings_dir(self.farm.state_dir), path_name(self.label))

    def _published(self, key: str) -> str:
        value = self.stats().get(key)
        if value is None:
            raise BadInput(f"farm {self.farm.name} does not publish (provision it with --publish)")
        return str(value)

    def faults(self) -> list[dict]:
        """The JSON of this camera's faults in force (see ``FaultHandle.to_json``)."""
        return self.stats()["faults"]

    def clear_faults(self) -> list[str]:
        """Clear every fault on this camera; returns their ids."""
        return self.farm.request({"op": "clear", "camera": self.index})["cleared"]


class Fault:
    """A fault put in force by :meth:`Camera.inject`; ``info`` is its JSON as the supervisor replied."""

    def __init__(self, camera: Camera, info: dict) -> None:
        self.camera = camera
        self.info = info

    @property
    def id(self) -> str:
        return self.info["fault"]

    def clear(self) -> None:
        """End the fault now (plugging an unplugged camera in again); a no-op once it has ended."""
        if self.info.get("reason") is not None:
            return  # instantaneous (replug): it ended as it started
        try:
            self.camera.farm.request({"op": "clear", "camera": self.camera.index, "id": self.id})
        except BadInput:
            pass  # it ended already (duration, frames)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.clear()

    def __repr__(self) -> str:
        return f"<Fault {self.id} on camera {self.camera.index}: {self.info['kind']} {self.info['params']}>"


class Farm:
    """A running farm; use ``Farm.provision(...)`` (a context manager) or ``Farm.attach(name)``."""

    def __init__(self, record: FarmRecord) -> None:
        from ..spec import CameraSpec
        self.name = record.name
        self.backend = record.backend
        self.state_dir = record.directory
        self.supervisor_pid = record.supervisor.pid if record.supervisor else None
        self.cameras = [
            Camera(self, node.camera, CameraSpec.parse(**record.spec["cameras"][node.camera]),
                   node.label, node.number, node.metadata)
            for node in record.nodes if node.number is not None
        ]

    # -- making one -------------------------------------------------------
    @classmethod
    def provision(cls, cameras: int | Sequence[CameraSpec] = 1, *, name: str = "default",
                  spec: CameraSpec | None = None, nodes: Sequence[int] | None = None,
                  patterns_dirs: Sequence[str] = (), timeout: float = 60.0, backend: str = "loopback",
                  publish: PublishOptions | None = None, workers: int | None = None,
                  usbip_listen: str | None = None, usbip_allow: Sequence[str] = (),
                  metrics_listen: str | None = None, loopback_buffers: int | None = None) -> Farm:
        """Create the cameras, start feeding them, and return once every one
        delivers frames carrying its own code (``backend="vivid"``: once every
        one delivers a frame; with ``publish``, once every camera's MediaMTX
        path is available too). All or nothing: on failure everything made so
        far is removed (vivid: unloaded) before the error is raised.

        ``workers``: how many processes write the frames (default: one per
        core, at most one per camera; 0: the supervisor itself). Only loopback
        and uvc farms that do not publish have workers.

        ``usbip_listen`` (``[ADDR][:PORT]``, uvc only): the webcams are not plugged in here but offered
        by a USB/IP server on that address to other machines (``usbip_allow``: the networks that may
        list and import them; loopback alone by default); they run in the supervisor (no workers) and
        provisioning reads no frames from them (they have no node here).

        ``metrics_listen`` (``[ADDR]:PORT``, port 0 for a free one): serve the farm's figures to
        Prometheus there (see simfarm.publishers.metrics; ``status()["metrics"]["listen"]``: the
        address bound); an address that cannot be bound fails the provision (BadInput).

        ``loopback_buffers``: frame buffers per loopback node (4..32, default 4;
        PipeWire needs 16, OpenCV at most 10: see docs/farms.md)."""
        from .. import backends
        from . import readiness
        from .worker_count import worker_count
        impl = backends.get(backend)
        specs = list(cameras) if not isinstance(cameras, int) else [spec or impl.default_spec({})] * cameras
        _validate(name, specs, nodes, patterns_dirs, impl.name)
        if loopback_buffers is not None:
            _check_loopback_buffers(loopback_buffers, impl.name)
        if publish and impl.name != "loopback":  # a webcam's reader picks its format: one reader per node
            raise BadInput(f"publishing needs the loopback backend, not {impl.name}")
        usbip = _usbip_spec(impl.name, usbip_listen, usbip_allow)
        metrics = _metrics_spec(metrics_listen)
        only_supervisor = (f"the {impl.name} backend" if impl.name == "vivid" else "publishing" if publish else
                           "a farm exporting over USB/IP" if usbip else None)
        workers = worker_count(workers, len(specs), in_supervisor=only_supervisor)
        plan = publish.resolve() if publish else None  # no MediaMTX: fail before any device exists
        reclaim_stale()
        impl.preflight(specs, nodes, exported=usbip is not None)
        record = FarmRecord(name=name, backend=impl.name, provisioner=ProcessId.me(), spec={
            "cameras": [s.to_json() for s in specs],
            "nodes": list(nodes) if nodes else None,
            "patterns_dirs": [str(Path(d).resolve()) for d in patterns_dirs], "publish": plan,
            "workers": workers, "usbip": usbip, "metrics": metrics,
            "loopback_buffers": loopback_buffers})
        with global_lock():
            if FarmRecord.load(name) is not None:
                raise BadInput(f"farm {name!r} already exists (simfarm teardown --farm {name})")
            record.directory.mkdir(parents=True)
            record.save()
        # The supervisor checks every camera's frames before it answers (see readiness.py).
        wait = timeout + readiness.longest_s(impl.name, len(specs))
        if plan:
            from .publish_plan import START_S  # here: what publishes nothing needs no MediaMTX client
            wait += START_S
        try:
            _start_supervisor(record, wait)
        except BaseException:
            _undo(name)
            raise
        return cls(FarmRecord.load(name) or record)

    @classmethod
    def attach(cls, name: str = "default") -> Farm:
        """The running farm called ``name``."""
        record = FarmRecord.load(check_farm_name(name))
        if record is None or record.abandoned():
            raise BadInput(f"no running farm named {name!r}")
        return cls(record)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.teardown()

    # -- using one --------------------------------------------------------
    def request(self, message: dict, *, timeout: float = 30.0) -> dict:
        """Send one control request to the supervisor (see control.py for the protocol)."""
        return control.request(self.state_dir / control.SOCKET, message, timeout=timeout)

    def status(self) -> dict:
        """The supervisor's report, each camera with its ``by_id`` link (None when it has none, or is unplugged)."""
        report = self.request({"op": "status"})
        # The supervisor does not know the links: udev makes them, and a uvc webcam's follows each replug.
        links = {cam.index: cam.by_id for cam in self.cameras}
        for cam in report["cameras"]:
            cam["by_id"] = links.get(cam["camera"])
        return report

    def teardown(self, *, timeout: float = 10.0) -> None:
        teardown(self.name, timeout=timeout)

    def environment(self) -> dict[str, str]:
        """What a service or script needs to find this farm, as environment variables (``simfarm env``).

        ``SIMFARM_FARM``, ``SIMFARM_BACKEND``, ``SIMFARM_FARM_DIR`` (the farm's
        own directory), ``SIMFARM_DEVICES`` (space-separated nodes), per
        camera index I ``SIMFARM_CAMERA_I_DEVICE``, ``_LABEL``, ``_BY_ID``,
        ``_METADATA_DEVICE``, ``_RTSP_URL`` and ``_PROXY_URL`` (those it has),
        and with a MediaMTX ``SIMFARM_MEDIAMTX_API_URL``, ``_API_PORT``,
        ``_RTSP_URL`` (base URL of its paths) and ``_RTSP_PORT``. None of
        these is a variable simfarm reads, so a shell that evals them still
        finds the farm with every command.
        """
        status = self.status()
        env = {"SIMFARM_FARM": self.name, "SIMFARM_BACKEND": self.backend, "SIMFARM_FARM_DIR": str(self.state_dir),
               "SIMFARM_DEVICES": " ".join(cam.device for cam in self.cameras)}
        for cam in self.cameras:
            published = status["cameras"][cam.index]
            for key, value in (("DEVICE", cam.device), ("LABEL", cam.label), ("BY_ID", cam.by_id),
                               ("METADATA_DEVICE", cam.metadata_device), ("RTSP_URL", published.get("rtsp_url")),
                               ("PROXY_URL", published.get("proxy_url"))):
                if value is not None:
                    env[f"SIMFARM_CAMERA_{cam.index}_{key}"] = str(value)
        if publish := status.get("publish"):
            env.update({"SIMFARM_MEDIAMTX_API_URL": publish["api"], "SIMFARM_MEDIAMTX_RTSP_URL": publish["rtsp"],
                        "SIMFARM_MEDIAMTX_RTSP_PORT": str(publish["rtsp_port"])})
            if publish["api_port"] is not None:
                env["SIMFARM_MEDIAMTX_API_PORT"] = str(publish["api_port"])
        return env

    def camera(self, index: int) -> Camera:
        """Camera ``index`` (its place in the farm, not in ``cameras``, which
        leaves out cameras that are unplugged right now)."""
        for cam in self.cameras:
            if cam.index == index:
                return cam
        raise BadInput(f"farm {self.name} has no camera {index} right now (unplugged, or out of range)")

    def reload(self) -> Farm:
        """The farm as its record says now: node numbers change when a camera is unplugged and replugged."""
        return Farm.attach(self.name)

    def faults(self) -> list[dict]:
        """Every fault in force on the farm, as JSON."""
        return self.request({"op": "faults"})["faults"]

    def clear_faults(self) -> list[str]:
        """Clear every fault (and the device steps of running scenarios); returns their ids."""
        return self.request({"op": "clear", "all": True})["cleared"]

    def recordings(self, camera: int | None = None) -> list[Segment]:
        """Recording segments (``--record``) of every camera, or of camera ``camera``; by camera, oldest first.

        Each has ``path``, ``file``, ``start``, ``size`` and ``complete``
        (False for the segment MediaMTX is still writing). They live in the
        farm's state directory, so teardown removes them: copy what you keep.
        """
        from ..publishers.mediamtx.recordings import list_segments
        from .publish_plan import recordings_dir

        if camera is not None:
            return self.camera(camera).recordings()
        return list_segments(recordings_dir(self.state_dir))

    @property
    def fault_log(self) -> Path:
        """The farm's fault log: a JSON line when each fault starts and ends (see simfarm.faults.log)."""
        return self.state_dir / FAULT_LOG

    def run_scenario(self, path: str | Path, seed: int | None = None, *, log: str | Path | None = None) -> dict:
        """Start the scenario file ``path`` on this farm, ``seed`` overriding the file's.

        Returns once it is scheduled, with ``origins``: each camera's sequence
        number at the scenario's start. ``log`` gets the run's own fault log.
        """
        return self.request({"op": "scenario", "path": str(Path(path).resolve()), "seed": seed,
                             "log": str(Path(log).resolve()) if log else None})

    def verify_frames(self, frames: int = 3) -> None:
        """Read ``frames`` frames back from every camera and check they carry its codes, in order.

        vivid draws frames without codes: there a frame read is all that is checked;
        a uvc webcam is streamed in the camera's spec. Raises EnvironmentProblem
        naming the first camera that does not. On a publishing farm the
        publishers hold the nodes: check their streams instead.
        """
        from . import readiness

        readiness.check_frames(self.cameras, self.backend, frames=frames)


def _validate(name: str, specs: list[CameraSpec], numbers: Sequence[int] | None,
              patterns_dirs: Sequence[str], backend: str) -> None:
    """What can be checked without the pattern library (the supervisor checks patterns: backends.base)."""
    from ..spec import MAX_CAMERAS

    check_farm_name(name)
    if backend != "uvc" and any(cam.profile for cam in specs):
        raise BadInput(f"a camera profile describes a USB webcam (--backend uvc), not a {backend} camera")
    if not 1 <= len(specs) <= MAX_CAMERAS:
        raise BadInput(f"cameras must be 1..{MAX_CAMERAS}, not {len(specs)}")
    if numbers is not None:
        if len(numbers) < len(specs) or len(set(numbers)) != len(numbers):
            raise BadInput(f"need {len(specs)} distinct node numbers, got {list(numbers)}")
        for number in numbers[:len(specs)]:
            if not 0 <= number < 256:
                raise BadInput(f"node number {number} is out of range 0..255")
            if os.path.exists(nodes.node_path(number)):
                raise BadInput(f"{nodes.node_path(number)} is already taken")


def _usbip_spec(backend: str, listen: str | None, allow: Sequence[str]) -> dict | None:
    """What the farm record keeps of the USB/IP options, checked (None: the farm exports nothing)."""
    if listen is None:
        if allow:
            raise BadInput("usbip-allow needs usbip-listen")
        return None
    if backend != "uvc":
        raise BadInput(f"usbip-listen exports USB webcams (--backend uvc), not {backend} cameras")
    from ..publishers.usbip.server import parse_allow, parse_listen  # here: only an exporting farm needs it

    parse_listen(listen)
    parse_allow(allow)
    return {"listen": listen, "allow": list(allow)}


def _metrics_spec(listen: str | None) -> dict | None:
    """What the farm record keeps of ``--metrics-listen``, checked (None: no metrics endpoint)."""
    if listen is None:
        return None
    from ..listen import parse_address

    parse_address(listen, "metrics listen address", None)
    return {"listen": listen}
def _check_loopback_buffers(value: int, backend: str) -> None:
    from ..devices.loopback.control import check_max_buffers

    if backend != "loopback":
        raise BadInput(f"loopback buffers size a v4l2loopback node's ring, not a {backend} camera's")
    check_max_buffers(value)


def _start_supervisor(record: FarmRecord, timeout: float) -> None:
    import subprocess
    read_end, write_end = os.pipe()
    with open(record.directory / LOG, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "simfarm.farm.supervisor", record.name, str(write_end)],
                                pass_fds=(write_end,), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True)
    os.close(write_end)
    _CHILDREN[proc.pid] = proc
    with os.fdopen(read_end, "rb") as ready:
        line = ready.readline() if select.select([ready], [], [], timeout)[0] else b""
    if not line:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        raise EnvironmentProblem(f"farm supervisor did not start within {timeout:g} s: {_log_tail(record)}")
    reply = json.loads(line)
    if not reply["ok"]:
        proc.wait()
        cls = BadInput if reply.get("exit_code") == 2 else EnvironmentProblem
        raise cls(reply["error"])


def _log_tail(record: FarmRecord, lines: int = 3) -> str:
    try:
        text = (record.directory / LOG).read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return " | ".join(text[-lines:]) or "empty log"


def _undo(name: str) -> None:
    record = FarmRecord.load(name)
    if record is not None:
        with global_lock():
            reclaim(record)


def _wait_exit(pid: ProcessId, timeout: float) -> bool:
    """Wait for a process that need not be our child; True once it has gone."""
    try:
        fd = os.pidfd_open(pid.pid)
    except ProcessLookupError:
        return True
    try:
        select.select([fd], [], [], timeout)
    finally:
        os.close(fd)
    return not pid.alive()


def teardown(name: str, *, timeout: float = 10.0) -> bool:
    """Stop farm ``name`` and remove all it owns. Returns False if there was no such farm."""
    record = FarmRecord.load(check_farm_name(name))
    if record is None:
        return False
    sup = record.supervisor
    if sup is not None and sup.alive():
        try:
            control.request(record.directory / control.SOCKET, {"op": "stop", "timeout": timeout})
            _wait_exit(sup, timeout + 10)
        except SimfarmError:
            pass  # unresponsive: reclaim below kills it
    record = FarmRecord.load(name)
    if record is not None:
        with global_lock():
            reclaim(record, timeout=timeout)
    if sup is not None and (child := _CHILDREN.pop(sup.pid, None)) is not None:
        child.wait()
    return True


def teardown_all(*, timeout: float = 10.0) -> list[str]:
    """Tear down every farm recorded on this machine; returns their names."""
    names = farm_names()
    for name in names:
        teardown(name, timeout=timeout)
    return names


def reclaim_stale() -> list[str]:
    """Clean up farms whose supervisor died (SIGKILL, crash); returns their names."""
    reclaimed = []
    with global_lock():
        for record in stale_farms():
            try:
                reclaim(record)
            except InUse:
                continue  # still held open by a reader; a later command retries
            reclaimed.append(record.name)
    return reclaimed


def running_farms() -> list[str]:
    reclaim_stale()
    return farm_names()


__all__ = ["Camera", "Farm", "Fault", "reclaim_stale", "running_farms", "teardown", "teardown_all"]
