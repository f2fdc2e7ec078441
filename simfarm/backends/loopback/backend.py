"""The loopback backend: v4l2loopback nodes fed by simfarm's producers.

Nodes are added at run time through the control device (>= 0.13), or all
made by loading the module (0.12). This module is what provisioning,
teardown and reclaim need (checks, nodes, release) and loads no producer:
the cameras (backends.live) and their device-level faults (faults)
are imported by the supervisor when it makes them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from ...devices.loopback import nodes as loopback_nodes, params as loopback_params
from ...devices.loopback.control import DEFAULT_MAX_BUFFERS
from ...devices.v4l2 import nodes
from ...devices.v4l2.frame_waits import FIRST_WRITE_S
from ...errors import InUse
from ...spec import CameraSpec
from ...state.records import FarmRecord, NodeRecord, amend_record, global_lock
from ..base import SupervisedCamera, camera_label, checked_patterns

if TYPE_CHECKING:
    from ...faults import FaultListener
    from .faults import LoopbackDeviceFaults


def ring(record: FarmRecord) -> int:
    """How many frame buffers each of the farm's nodes has (farm file: loopback_buffers)."""
    return int(record.spec.get("loopback_buffers") or DEFAULT_MAX_BUFFERS)


class LoopbackBackend:
    name = "loopback"
    start_s = FIRST_WRITE_S

    def default_spec(self, settings: Mapping[str, object]) -> CameraSpec:
        return CameraSpec()

    def preflight(self, specs: Sequence[CameraSpec], numbers: Sequence[int] | None, *,
                  exported: bool = False) -> None:
        if loopback_nodes.choose_mode() is loopback_nodes.Mode.PARAMETERS:
            loopback_params.check(len(specs))

    def cameras(self, record: FarmRecord, listener: FaultListener) -> list[SupervisedCamera]:
        from ..live import LiveCamera

        specs = [CameraSpec.parse(**cam) for cam in record.spec["cameras"]]
        library = checked_patterns(record, specs)
        return [LiveCamera(i, spec, NodeRecord(i, camera_label(record.name, i)), library, listener)
                for i, spec in enumerate(specs)]

    def create(self, record: FarmRecord, cameras: list[SupervisedCamera]) -> None:
        self.make_nodes(record, cameras)
        self.start_cameras(cameras, record.save)

    def make_nodes(self, record: FarmRecord, cameras: Sequence[SupervisedCamera]) -> None:
        """Every camera's node, recorded before it is made; no producer yet (start_cameras)."""
        requested: list[int] | None = record.spec.get("nodes")
        with global_lock():
            # Asked again here, under the lock: the module may have come or gone since preflight.
            if loopback_nodes.choose_mode() is loopback_nodes.Mode.CONTROL:
                for cam in cameras:
                    record.nodes.append(cam.node)
                    record.save()  # before the ioctl, so a crash mid-call is recoverable
                    cam.node.number = loopback_nodes.create(cam.node.label, requested[cam.index] if requested else -1,
                                                            ring(record))
                    record.save()
            else:
                record.nodes.extend(cam.node for cam in cameras)
                record.module = loopback_params.MODULE
                record.save()  # before loading, so a crash mid-load is recoverable
                numbers = loopback_params.load([cam.node.label for cam in cameras],
                                               requested[:len(cameras)] if requested else None, ring(record))
                for cam, number in zip(cameras, numbers):
                    cam.node.number = number
                record.save()

    def start_cameras(self, cameras: Sequence[SupervisedCamera], save: Callable[[], None]) -> None:
        """A producer on each camera's node; returns once each has written its first frame."""
        from ..live import LiveCamera

        for cam in cameras:
            assert isinstance(cam, LiveCamera)
            cam.start_stream()

    def recover(self, record: FarmRecord, cameras: Sequence[SupervisedCamera]) -> None:
        """The nodes outlive the worker (made here); one that it had unplugged (a device fault) is made
        again, as a replug would, since the fault ended with the worker."""
        unplugged = [cam for cam in cameras if cam.node.number is None]
        if not unplugged:
            return
        with global_lock():
            for cam in unplugged:
                cam.node.number = loopback_nodes.create(cam.node.label)
        made = {cam.index: cam.node.number for cam in unplugged}
        amend_record(record.name, lambda disk: [setattr(node, "number", made[node.camera])
                                                for node in disk.nodes if node.camera in made])

    def device_faults(self, record: FarmRecord, listener: FaultListener,
                      save: Callable[[], None] | None = None) -> LoopbackDeviceFaults:
        from .faults import LoopbackDeviceFaults

        # Asked at each fault: create() decides, after this is made, whether the module is ours (0.12).
        return LoopbackDeviceFaults(save or record.save, listener, hotplug=lambda: record.module is None,
                                    max_buffers=ring(record))

    def release(self, record: FarmRecord, timeout: float) -> None:
        if record.module is not None:
            # 0.12: the nodes go with the module, and only while it still carries our labels.
            loopback_params.unload([node.label for node in record.nodes], timeout=timeout)
            record.nodes.clear()
            record.module = None
            return
        busy: InUse | None = None
        for node in list(record.nodes):
            if node.number is None or nodes.card_label(node.number) != node.label:
                # The ADD ioctl may have succeeded after the record was written, or a replug in a
                # worker process gave the node another number than this copy of the record holds.
                found = nodes.numbers_with_label(node.label)
                node.number = found[0] if found else None
            if node.number is not None:
                try:
                    loopback_nodes.remove(node.number, node.label, timeout=timeout)
                except InUse as exc:
                    busy = busy or exc
                    continue
            record.nodes.remove(node)
        if busy:
            raise busy
