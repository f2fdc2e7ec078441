"""vhci-hcd, the USB/IP host controller: plugging a device's socket into a port, finding it, unplugging it.

A port is found by its device's serial, so a port holding someone else's
device is never detached.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ...errors import EnvironmentProblem
from ..udev import uevents
from ..v4l2 import nodes, sysfs

VHCI = Path("/sys/devices/platform/vhci_hcd.0")
USB_DEVICES = Path("/sys/bus/usb/devices")
_VDEV_ST_NULL = 4  # a port's state when nothing is attached


@dataclass(frozen=True)
class Attachment:
    port: int  # vhci-hcd's port number, as `usbip port` and `usbip detach -p` count them
    busid: str  # the device on the host side, e.g. 3-1


def attach(port: int, fd: int, speed: int, devid: int | None = None) -> None:
    """Plug the device answering at the other end of stream socket ``fd`` into ``port``; enumeration follows.

    ``devid`` is what vhci-hcd puts in each URB's header: an imported device's busnum << 16 | devnum
    (its server checks it); a device of our own, which ignores it, gets one made from the port."""
    if devid is None:
        devid = (0x100 + port) << 16 | 2
    try:
        (VHCI / "attach").write_text(f"{port} {fd} {devid} {speed}")
    except OSError as exc:
        raise EnvironmentProblem(f"vhci-hcd refused port {port}: {exc.strerror}") from None


def detach(port: int) -> None:
    """Unplug whatever is on vhci-hcd ``port`` (the caller checked it is ours)."""
    try:
        (VHCI / "detach").write_text(str(port))
    except OSError as exc:
        if exc.errno != errno.EINVAL:  # EINVAL: the port is free already
            raise EnvironmentProblem(f"vhci-hcd would not detach port {port}: {exc.strerror}") from None


def find(serial: str) -> Attachment | None:
    """The vhci-hcd port whose device has ``serial``; None when none has."""
    for fields in _ports():
        busid = fields[-1]
        if busid != "0-0" and sysfs.read(USB_DEVICES / busid / "serial") == serial:
            return Attachment(int(fields[1]), busid)
    return None


def at_port(port: int) -> Attachment | None:
    """What is attached to vhci-hcd ``port`` (its device's busid on this host); None when it is free."""
    for fields in _ports():
        if int(fields[1]) == port and int(fields[2]) != _VDEV_ST_NULL and fields[-1] != "0-0":
            return Attachment(port, fields[-1])
    return None


def device_serial(attachment: Attachment) -> str | None:
    """The serial of the device on ``attachment``'s port, as this host enumerated it."""
    return sysfs.read(USB_DEVICES / attachment.busid / "serial")


def free_ports(super_speed: bool = True) -> list[int]:
    """The free SuperSpeed (or high-speed) ports of vhci-hcd, as its status files number them."""
    hub = "ss" if super_speed else "hs"
    return [int(port) for kind, port, state, *_ in _ports() if kind == hub and int(state) == _VDEV_ST_NULL]


def free_port(super_speed: bool = True) -> int:
    if free := free_ports(super_speed):
        return free[0]
    raise EnvironmentProblem(f"no free {'SuperSpeed' if super_speed else 'high-speed'} vhci-hcd port")


def _ports() -> Iterator[list[str]]:
    """Each port's line of the status files of every vhci-hcd, split: hub, port, state, ..., busid."""
    for status in sorted(VHCI.parent.glob("vhci_hcd.*/status*")):
        for line in (sysfs.read(status) or "").splitlines()[1:]:
            yield line.split()


def wait_nodes_gone(busid: str, watch: uevents.Watch, timeout: float = 60.0) -> None:
    """Until the video nodes of the USB device at ``busid`` are gone, watched by ``watch`` (started before
    the detach): the kernel handles a disconnect in its own time, after vhci-hcd let go of the port, and
    a caller that detached must not see the nodes still there, or their numbers not yet free."""
    watch.until(lambda: None if nodes.usb_video_nodes(busid) else True, f"the nodes of USB device {busid} to go",
                timeout)

