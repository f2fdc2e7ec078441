"""The uvc backend: each camera a USB webcam on the virtual USB bus, driven by uvcvideo.

Each camera is a userspace USB device (simfarm.devices.usb.usbip_device) that
the supervisor plugs into a vhci-hcd port: the kernel enumerates it, udev
names it by its USB identity, and uvcvideo makes a capture node and a
metadata node, as for any webcam. What the webcam is comes from a camera
profile (simfarm.backends.uvc.profiles); its serial is the camera's label
(``simfarm-<farm>-<index>``), which is how everything simfarm plugged in is
told from devices it did not make. The reader chooses format, size and rate
among the profile's; a producer starts in them at each STREAMON, and the
camera's sequence numbers, faults and controls carry over from stream to
stream. The camera's spec is the stream simfarm's own checks ask for.

Nothing outlives the supervisor by itself: the device is the supervisor's
end of a socket pair whose other end vhci-hcd holds, so when the supervisor
dies, vhci-hcd sees the connection close and unplugs the device. Teardown
and reclaim still detach every port whose device carries one of the farm's
serials, in case the kernel has not yet.

With ``usbip`` in the farm's spec (``--usbip-listen``), the webcams are not
plugged in here: each is an export (export.py) of the USB/IP server the
supervisor runs (simfarm.farm.usbip_exports), and another machine's kernel
imports it and makes its nodes. Unplug then withdraws the export (ending its
import), replug offers it again.

Device-level faults: unplug (the device is detached: a streaming reader gets
ENODEV, udev removes the nodes), replug and re-enumeration (the same serial
comes back, possibly on other node numbers), bus reset (the host resets the
port: the device stays, uvcvideo's nodes go and come back).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

from ...devices.kmod import kmodule
from ...devices.udev import uevents
from ...devices.usb import usbdevfs, vhci
from ...devices.usb.profile import Profile
from ...devices.v4l2 import nodes
from ...devices.v4l2.frame_waits import WEBCAM_FIRST_FRAME_S
from ...errors import BadInput, EnvironmentProblem
from ...faults import FaultHandle, FaultListener, FaultSet, FaultSpec, Mark
from ...patterns import PatternLibrary
from ...producers.producer import Producer
from ...producers.progress import Progress, ProgressCell
from ...spec import CameraSpec
from ...state.records import FarmRecord, NodeRecord, global_lock
from ..base import NodePaths, SupervisedCamera, camera_label, checked_patterns
from ..device_faults import DeviceFaults
from . import profiles
from .export import WebcamExport
from .webcam import UsbWebcam

DEFAULT_PROFILE = "generic-720p"


class UvcCamera(NodePaths):
    """One webcam: its USB device, its frame feed and faults, and the nodes uvcvideo made."""

    def __init__(self, index: int, spec: CameraSpec, node: NodeRecord, library: PatternLibrary,
                 listener: FaultListener, export_from: str | None = None) -> None:
        self.index = index
        self.spec = spec
        self.node = node
        self.library = library
        self.faults = FaultSet(index, spec.format, spec.size, spec.fps, listener=listener)
        self.device_faults: dict[str, FaultHandle] = {}
        profile = profiles.load(spec.profile or DEFAULT_PROFILE, node.label)
        self.webcam = UsbWebcam(index, profile, library, spec.pattern, faults=self.faults)
        # ``export_from``: the farm whose USB/IP server offers this webcam (None: it is plugged in here).
        self.export = WebcamExport(self.webcam.usb, export_from, index) if export_from else None
        self.exported = self.export is not None

    @property
    def plugged(self) -> bool:
        return self.export.offered if self.export is not None else self.node.number is not None

    @property
    def producer(self) -> Producer | None:
        """The producer of the stream a reader has committed to; None while nobody streams."""
        return self.webcam.feed.producer

    def track(self, progress: ProgressCell, resume: Progress | None) -> None:
        self.webcam.feed.track(progress, resume)

    def plug(self) -> None:
        """Attach the webcam and record the nodes uvcvideo gave it (exported: offer it)."""
        if self.export is not None:
            self.export.offer()
            return
        self.webcam.plug()
        self._record_nodes()

    def reset(self) -> None:
        """Reset the webcam's USB port; uvcvideo binds again, with new nodes, before this returns."""
        if self.export is not None:
            raise BadInput(f"camera {self.index} is exported over USB/IP: its port is on the importing machine")
        found = self.webcam.attachment
        if found is None:
            raise EnvironmentProblem(f"camera {self.index} ({self.node.label}) is not on the USB bus")
        usbdevfs.reset(found.busid)
        self._record_nodes()

    def _record_nodes(self) -> None:
        found = self.webcam.attachment
        capture = nodes.usb_capture_node(found.busid) if found else None
        if found is None or capture is None:
            raise EnvironmentProblem(f"camera {self.index} ({self.node.label}) has no capture node on the USB bus")
        self.node.number = _number(capture)
        self.node.metadata = _number(nodes.usb_capture_node(found.busid, index=1))

    def unplug(self) -> None:
        if self.export is not None:
            self.export.withdraw()  # the importer's node goes: its cable was pulled
            return
        self.webcam.unplug()
        self.node.number = self.node.metadata = None

    def mark(self) -> Mark:
        return Mark(time.time(), self.webcam.feed.sequence)

    def active_faults(self) -> list[FaultHandle]:
        return [*self.device_faults.values(), *self.faults.active()]

    def stop_stream(self, *, final: bool = False) -> None:
        """``final``: the farm is stopping: unplug (which ends any stream) and end the faults."""
        if final:
            self.unplug()
            self.faults.close()

    def status(self) -> dict:
        feed = self.webcam.feed
        producer = feed.producer
        stats = producer.stats() if producer else None
        error = (stats.error if stats else None) or feed.error or self.webcam.usb.error
        state = "unplugged" if not self.plugged else "error" if error else "streaming" if stats else "idle"
        profile = self.webcam.profile
        found = self.webcam.attachment if self.plugged else None
        return {"camera": self.index, "label": self.node.label, "device": self.device,
                "metadata_device": self.metadata_device, "state": state,
                "spec": (feed.stream or self.spec).to_json(), **(stats.to_json() if stats else {}), "error": error,
                "controls": self.webcam.picture.values(),
                "usb": {"vendor_id": f"{profile.vendor_id:04x}", "product_id": f"{profile.product_id:04x}",
                        "serial": profile.serial, "profile": profile.name, "dropped": self.webcam.usb.dropped,
                        "busid": found.busid if found else None, "port": found.port if found else None},
                **({"usbip": {"busid": self.export.device.busid, **self.export.counters()}} if self.export else {}),
                "faults": [handle.to_json() for handle in self.active_faults()]}


def _number(path: str | None) -> int | None:
    return int(path.removeprefix("/dev/video")) if path else None


class UvcDeviceFaults(DeviceFaults[UvcCamera]):
    """unplug, replug and reenumerate (the USB device leaves the bus and comes back), and bus-reset
    (the host resets its port: the device stays, uvcvideo binds again)."""

    def _start(self, cam: UvcCamera, spec: FaultSpec, timeout: float) -> dict:
        if spec.kind == "replug":
            unplugged = next((h for h in cam.device_faults.values() if h.kind == "unplug"), None)
            if unplugged is None:
                raise BadInput(f"camera {cam.index} is plugged in: unplug it first")
            self.end(cam, unplugged, "replugged")
            return {"device": cam.device}
        if not cam.plugged:
            raise BadInput(f"camera {cam.index} is already unplugged")
        removed = cam.device
        if spec.kind == "bus-reset":
            cam.reset()
            self._save()
            return {"removed": removed, "device": cam.device}
        self._unplug(cam)
        if spec.kind == "unplug":
            return {"removed": removed}
        self._plug(cam)  # reenumerate
        return {"removed": removed, "device": cam.device}

    def _undo(self, cam: UvcCamera, handle: FaultHandle) -> None:
        self._plug(cam)  # only unplug is timed

    def _unplug(self, cam: UvcCamera) -> None:
        cam.unplug()
        self._save()

    def _plug(self, cam: UvcCamera) -> None:
        _plug(cam, self._save)


class UvcBackend:
    name = "uvc"
    start_s = WEBCAM_FIRST_FRAME_S  # plugging in: enumeration and uvcvideo's probing

    def default_spec(self, settings: Mapping[str, object]) -> CameraSpec:
        """The profile's first stream: its first format, size and rate, as a webcam defaults to."""
        name = str(settings.get("profile") or DEFAULT_PROFILE)
        first = profiles.find(name).formats[0]
        return CameraSpec(size=first.sizes[0].size, fps=first.sizes[0].rates[0], format=first.format, profile=name)

    def preflight(self, specs: Sequence[CameraSpec], numbers: Sequence[int] | None, *,
                  exported: bool = False) -> None:
        if numbers:
            raise BadInput("the uvc backend cannot choose node numbers (uvcvideo numbers its own nodes)")
        for index, spec in enumerate(specs):
            if spec.producer != "numpy":
                raise BadInput(f"camera {index}: the uvc backend feeds patterns (producer numpy), not {spec.producer}")
            _check_offered(index, spec, profiles.find(spec.profile or DEFAULT_PROFILE))
        if exported:
            return  # the importers' kernels enumerate them
        for module in kmodule.WEBCAM_MODULES:
            kmodule.ensure(module)
        if (free := len(vhci.free_ports())) < len(specs):
            raise EnvironmentProblem(f"vhci-hcd has {free} free SuperSpeed ports and {len(specs)} uvc cameras "
                                     "need one each", "tear down other uvc farms, or provision fewer cameras")

    def cameras(self, record: FarmRecord, listener: FaultListener) -> list[SupervisedCamera]:
        specs = [CameraSpec.parse(**cam) for cam in record.spec["cameras"]]
        library = checked_patterns(record, specs)
        export_from = record.name if record.spec.get("usbip") else None
        return [UvcCamera(i, spec, NodeRecord(i, camera_label(record.name, i)), library, listener, export_from)
                for i, spec in enumerate(specs)]

    def create(self, record: FarmRecord, cameras: list[SupervisedCamera]) -> None:
        self.make_nodes(record, cameras)
        self.start_cameras(cameras, record.save)

    def make_nodes(self, record: FarmRecord, cameras: Sequence[SupervisedCamera]) -> None:
        """Every camera recorded by its serial, before it is plugged in (so a crash mid-enumeration is
        recoverable). The device itself is plugged in by the process that will run it (start_cameras):
        its end of vhci-hcd's socket and the thread answering it live there."""
        for cam in cameras:
            if (found := vhci.find(cam.node.label)) is not None:
                raise EnvironmentProblem(f"a USB device with serial {cam.node.label} is on vhci-hcd port "
                                         f"{found.port} already, and it is not this farm's")
        record.nodes.extend(cam.node for cam in cameras)
        record.save()

    def start_cameras(self, cameras: Sequence[SupervisedCamera], save: Callable[[], None]) -> None:
        """Plug each webcam in; returns once uvcvideo has made every capture node."""
        for cam in cameras:
            assert isinstance(cam, UvcCamera)
            _plug(cam, save)

    def recover(self, record: FarmRecord, cameras: Sequence[SupervisedCamera]) -> None:
        """The dead worker answered its webcams' USB devices: vhci-hcd unplugs each once it sees the
        socket close. Any it has not yet unplugged is detached here, its nodes gone, so that the new
        worker plugs it in again (a replug, as after a hub reset) and finds its own nodes."""
        for cam in cameras:
            if (found := vhci.find(cam.node.label)) is not None:
                watch = uevents.Watch("video4linux")
                vhci.detach(found.port)
                vhci.wait_nodes_gone(found.busid, watch)
            cam.node.number = cam.node.metadata = None

    def device_faults(self, record: FarmRecord, listener: FaultListener,
                      save: Callable[[], None] | None = None) -> UvcDeviceFaults:
        return UvcDeviceFaults(save or record.save, listener)

    def release(self, record: FarmRecord, timeout: float) -> None:
        """Detach every port whose device carries one of the farm's serials (a pulled cable waits for
        no reader: readers get ENODEV)."""
        for node in list(record.nodes):
            if (found := vhci.find(node.label)) is not None:
                watch = uevents.Watch("video4linux")
                vhci.detach(found.port)
                vhci.wait_nodes_gone(found.busid, watch)  # a pulled cable waits for no reader: no timeout of theirs
            record.nodes.remove(node)


def _plug(cam: UvcCamera, save: Callable[[], None]) -> None:
    with global_lock():  # vhci-hcd ports are chosen free, then taken: one process at a time
        cam.plug()
        save()


def _check_offered(index: int, spec: CameraSpec, profile: Profile) -> None:
    for fmt in profile.formats:
        for frame in fmt.sizes:
            if (fmt.format, frame.size) == (spec.format, spec.size) and spec.fps in frame.rates:
                return
    offers = "; ".join(f"{fmt.format.name} {frame.size}@{'/'.join(map(str, frame.rates))}"
                       for fmt in profile.formats for frame in fmt.sizes)
    raise BadInput(f"camera {index}: profile {profile.name} offers no {spec.format.name} {spec.size}@{spec.fps} "
                   f"(it offers {offers})")
