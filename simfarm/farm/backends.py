"""How a farm's cameras come to exist and go again: one implementation per backend.

Provisioning, the supervisor, teardown and crash recovery ask the backend
named in the farm's record; nothing else in the farm knows which one runs.
A backend checks a request before anything is made, makes the cameras,
carries out its device-level faults, and removes exactly what the record
names (every node and module is recorded before it is made).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ..devices import loopback, loopback_params, nodes
from ..errors import InUse
from ..faults import FaultHandle, FaultListener, Mark
from ..patterns import PatternLibrary
from ..spec import CameraSpec, parse_backend
from .device_faults import DeviceFaults, LoopbackDeviceFaults
from .live import LiveCamera
from .state import FarmRecord, NodeRecord, global_lock
from .vivid_farm import VividBackend


class SupervisedCamera(Protocol):
    """A camera as the supervisor runs it, whichever backend made it."""

    index: int
    spec: CameraSpec
    node: NodeRecord
    device_faults: dict[str, FaultHandle]

    @property
    def device(self) -> str | None: ...

    def mark(self) -> Mark: ...

    def active_faults(self) -> list[FaultHandle]: ...

    def stop_stream(self, *, final: bool = False) -> None: ...

    def status(self) -> dict: ...


class Backend(Protocol):
    name: str
    # What a camera is when the request does not say (vivid does not offer loopback's 640x480@30).
    default_spec: CameraSpec

    def preflight(self, specs: Sequence[CameraSpec], numbers: Sequence[int] | None) -> None:
        """Refuse, before anything is made, what this backend cannot provide here."""

    def cameras(self, record: FarmRecord, listener: FaultListener) -> list[SupervisedCamera]:
        """The farm's cameras, not yet made."""

    def create(self, record: FarmRecord, cameras: list[SupervisedCamera]) -> None:
        """Make every camera's nodes and start them; the caller undoes it all on failure."""

    def device_faults(self, record: FarmRecord, listener: FaultListener) -> DeviceFaults:
        """Carries out this backend's device-level faults (saving ``record`` as nodes change)."""

    def release(self, record: FarmRecord, timeout: float) -> None:
        """Remove every node (and module) ``record`` names that is still ours, dropping each from it.

        Raises InUse, the rest done, while readers hold something open.
        """


class LoopbackBackend:
    """v4l2loopback nodes fed by simfarm's producers: added at run time through
    the control device (>= 0.13), or all made by loading the module (0.12)."""

    name = "loopback"
    default_spec = CameraSpec()

    def preflight(self, specs: Sequence[CameraSpec], numbers: Sequence[int] | None) -> None:
        if loopback.choose_mode() is loopback.Mode.PARAMETERS:
            loopback_params.check(len(specs))

    def cameras(self, record: FarmRecord, listener: FaultListener) -> list[SupervisedCamera]:
        library = PatternLibrary(record.spec.get("patterns_dirs", ()))
        return [LiveCamera(i, CameraSpec.parse(**cam), NodeRecord(i, camera_label(record.name, i)), library,
                           listener) for i, cam in enumerate(record.spec["cameras"])]

    def create(self, record: FarmRecord, cameras: list[SupervisedCamera]) -> None:
        requested: list[int] | None = record.spec.get("nodes")
        with global_lock():
            # Asked again here, under the lock: the module may have come or gone since preflight.
            if loopback.choose_mode() is loopback.Mode.CONTROL:
                for cam in cameras:
                    record.nodes.append(cam.node)
                    record.save()  # before the ioctl, so a crash mid-call is recoverable
                    cam.node.number = loopback.create(cam.node.label, requested[cam.index] if requested else -1)
                    record.save()
            else:
                record.nodes.extend(cam.node for cam in cameras)
                record.module = loopback_params.MODULE
                record.save()  # before loading, so a crash mid-load is recoverable
                numbers = loopback_params.load([cam.node.label for cam in cameras],
                                               requested[:len(cameras)] if requested else None)
                for cam, number in zip(cameras, numbers):
                    cam.node.number = number
                record.save()
        for cam in cameras:
            assert isinstance(cam, LiveCamera)
            cam.start_stream()

    def device_faults(self, record: FarmRecord, listener: FaultListener) -> DeviceFaults:
        # Asked at each fault: create() decides, after this is made, whether the module is ours (0.12).
        return LoopbackDeviceFaults(record.save, listener, hotplug=lambda: record.module is None)

    def release(self, record: FarmRecord, timeout: float) -> None:
        if record.module is not None:
            # 0.12: the nodes go with the module, and only while it still carries our labels.
            loopback_params.unload([node.label for node in record.nodes], timeout=timeout)
            record.nodes.clear()
            record.module = None
            return
        busy: InUse | None = None
        for node in list(record.nodes):
            if node.number is None:
                # The ADD ioctl may have succeeded after the record was written.
                found = nodes.numbers_with_label(node.label)
                node.number = found[0] if found else None
            if node.number is not None:
                try:
                    loopback.remove(node.number, node.label, timeout=timeout)
                except InUse as exc:
                    busy = busy or exc
                    continue
            record.nodes.remove(node)
        if busy:
            raise busy


def camera_label(farm: str, index: int) -> str:
    return f"simfarm-{farm}-{index}"


def get(name: str) -> Backend:
    """The backend called ``name`` (see simfarm.spec.BACKENDS)."""
    backends: dict[str, Backend] = {"loopback": LoopbackBackend(), "vivid": VividBackend()}
    return backends[parse_backend(name)]
