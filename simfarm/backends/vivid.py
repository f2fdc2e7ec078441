"""The vivid backend: cameras that are instances of the kernel's vivid test driver.

vivid draws its own frames (its test pattern generator), so a vivid camera
has no producer and no frame codes; its spec is the format its capture node
presents until a reader sets another. What vivid gives that v4l2loopback
cannot: a metadata node beside each capture node, discrete sizes and rates
in several formats, a true disconnect under an open reader, and driver-level
errors, all driven through vivid's controls (see simfarm.devices.vivid).

The farm owns the module: it records that before loading it, loads it with
one instance per camera, and unloads it at teardown (or at reclaim, after a
crash). While any vivid is loaded, by another farm or anyone else, a vivid
farm is refused.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence

from ..devices.v4l2 import nodes
from ..devices.vivid import driver as vivid
from ..errors import BadInput, EnvironmentProblem
from ..faults import FaultHandle, FaultListener, FaultSpec, Mark
from ..spec import CameraSpec, Size
from ..state.records import FarmRecord, NodeRecord, farm_names, global_lock
from .base import NodePaths, SupervisedCamera
from .device_faults import DeviceFaults

MAX_INSTANCES = 64  # vivid's n_devs limit (VIVID_MAX_DEVS)

# Settings that stay in force until the fault ends (then back to 0): kind -> control, value from params.
_SETTINGS: dict[str, tuple[vivid.Control, Callable[[dict], int]]] = {
    "drop-buffers": (vivid.Control.PERCENT_DROPPED, lambda params: params["percent"]),
    "wrap-sequence": (vivid.Control.WRAP_SEQUENCE, lambda params: 1),
    "wrap-timestamp": (vivid.Control.WRAP_TIMESTAMP, lambda params: 1 if params["bits"] == 64 else 2),
}
# One-shot injections: pressing the button arms the driver for its next buffer or ioctl.
_BUTTONS = {
    "buffer-error": vivid.Control.BUFFER_ERROR,
    "reqbufs-error": vivid.Control.REQBUFS_ERROR,
    "qbuf-error": vivid.Control.QBUF_ERROR,
    "streamon-error": vivid.Control.STREAMON_ERROR,
    "fatal-error": vivid.Control.FATAL_ERROR,
}


class VividCamera(NodePaths):
    """One vivid instance: its capture node (``node.number``) and metadata node (``node.metadata``)."""

    def __init__(self, index: int, spec: CameraSpec) -> None:
        self.index = index
        self.spec = spec
        self.node = NodeRecord(index, f"vivid-{index:03d}-vid-cap")  # instance N is camera N: we load them all
        self.device_faults: dict[str, FaultHandle] = {}
        # The supervisor's own fd while a disconnect is in force: vivid reconnects when the
        # last fd on the instance closes, so holding one keeps it disconnected without readers.
        self.held_fd: int | None = None

    def mark(self) -> Mark:
        """Now; no sequence number: vivid numbers buffers per reader's stream, out of our sight."""
        return Mark(time.time(), None)

    def active_faults(self) -> list[FaultHandle]:
        return list(self.device_faults.values())

    def stop_stream(self, *, final: bool = False) -> None:
        """Nothing to stop: vivid draws frames only while a reader streams, and no reader is ours."""

    def readers(self) -> list[int]:
        """Pids other than ours holding either node open."""
        paths = [path for path in (self.device, self.metadata_device) if path]
        return [pid for pid in nodes.holders(*paths) if pid != os.getpid()]

    def status(self) -> dict:
        disconnected = self.held_fd is not None
        # Cleared, but vivid reconnects only once every reader has closed its fd.
        reconnecting = not disconnected and self.node.number is not None and not vivid.connected(self.node.number)
        state = "disconnected" if disconnected else "reconnecting" if reconnecting else "ready"
        return {"camera": self.index, "label": self.node.label, "device": self.device,
                "metadata_device": self.metadata_device, "state": state, "spec": self.spec.to_json(),
                "held_by": self.readers() if reconnecting else None,
                "faults": [handle.to_json() for handle in self.active_faults()]}


class VividDeviceFaults(DeviceFaults[VividCamera]):
    """vivid's faults, each a control of the camera's instance, set through its capture node."""

    def _start(self, cam: VividCamera, spec: FaultSpec, timeout: float) -> dict:
        number = cam.node.number
        assert number is not None
        if cam.held_fd is not None or not vivid.connected(number):
            raise BadInput(f"camera {cam.index} is disconnected: clear the disconnect and close its readers first")
        if spec.kind == "disconnect":
            if setting := next((h for h in cam.device_faults.values() if h.kind in _SETTINGS), None):
                # A disconnected vivid takes no control, so the setting could not be undone.
                raise BadInput(f"camera {cam.index} has {setting.kind} in force ({setting.id}): clear it first")
            fd = vivid.open_node(number)
            try:
                vivid.press(fd, vivid.Control.DISCONNECT)
            except EnvironmentProblem:
                os.close(fd)
                raise
            cam.held_fd = fd
            return {"readers": cam.readers()}
        if button := _BUTTONS.get(spec.kind):
            vivid.set_control(number, button)
            return {}
        if taken := next((h for h in cam.device_faults.values() if h.kind == spec.kind), None):
            raise BadInput(f"camera {cam.index} already has {spec.kind} in force ({taken.id}): clear it first")
        control, value = _SETTINGS[spec.kind]
        vivid.set_control(number, control, value(dict(spec.params)))
        return {}

    def _undo(self, cam: VividCamera, handle: FaultHandle) -> None:
        if handle.kind == "disconnect":
            self._let_go(cam)
        else:
            assert cam.node.number is not None
            vivid.set_control(cam.node.number, _SETTINGS[handle.kind][0], 0)

    @staticmethod
    def _let_go(cam: VividCamera) -> None:
        if cam.held_fd is not None:
            os.close(cam.held_fd)
            cam.held_fd = None

    def close(self, cameras: list[VividCamera]) -> None:
        """Also let go of held nodes, so the module can unload."""
        super().close(cameras)
        for cam in cameras:
            self._let_go(cam)


class VividBackend:
    name = "vivid"

    def default_spec(self, settings: Mapping[str, object]) -> CameraSpec:
        return CameraSpec(size=Size(640, 360))  # vivid's own default size; it offers 640x480 only up to 25 fps

    def preflight(self, specs: Sequence[CameraSpec], numbers: Sequence[int] | None, *,
                  exported: bool = False) -> None:
        if numbers:
            raise BadInput("the vivid backend cannot choose node numbers (vivid numbers its own nodes)")
        if len(specs) > MAX_INSTANCES:
            raise BadInput(f"the vivid backend makes at most {MAX_INSTANCES} cameras (vivid's instances), "
                           f"not {len(specs)}")
        plain = CameraSpec()
        if any((s.pattern, s.producer, s.source) != (plain.pattern, plain.producer, plain.source) for s in specs):
            raise BadInput("the vivid backend draws its own test pattern: pattern, producer and source do not apply")
        refuse_if_loaded()

    def cameras(self, record: FarmRecord, listener: FaultListener) -> list[SupervisedCamera]:
        return [VividCamera(i, CameraSpec.parse(**cam)) for i, cam in enumerate(record.spec["cameras"])]

    def create(self, record: FarmRecord, cameras: list[SupervisedCamera]) -> None:
        with global_lock():
            refuse_if_loaded()
            record.module = vivid.MODULE
            record.nodes = [cam.node for cam in cameras]
            record.save()  # before loading, so a crash mid-load is recoverable
            try:
                instances = vivid.load(len(cameras))
            except vivid.AlreadyLoaded:
                record.module = None  # someone else's, loaded since we looked: not ours to unload
                record.save()
                raise
            for cam, instance in zip(cameras, instances, strict=True):
                cam.node.number, cam.node.metadata = instance.capture, instance.metadata
            record.save()
        for cam in cameras:
            assert cam.node.number is not None
            vivid.configure(cam.node.number, cam.spec)

    def device_faults(self, record: FarmRecord, listener: FaultListener) -> VividDeviceFaults:
        return VividDeviceFaults(record.save, listener)

    def release(self, record: FarmRecord, timeout: float) -> None:
        if record.module is not None:
            vivid.unload(timeout=timeout)
            record.module = None
        record.nodes.clear()


def refuse_if_loaded() -> None:
    """vivid's instances are fixed at load: a farm can only use a vivid it loads itself."""
    if not vivid.loaded():
        return
    owner = next((name for name in farm_names() if (rec := FarmRecord.load(name)) and rec.module == vivid.MODULE),
                 None)
    if owner is not None:
        raise EnvironmentProblem(f"vivid is already loaded by farm {owner}: one vivid farm at a time",
                                 f"simfarm teardown --farm {owner}")
    raise vivid.AlreadyLoaded()
