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
from ..v4l2 import sysfs

VHCI = Path("/sys/devices/platform/vhci_hcd.0")
_USB = Path("/sys/bus/usb/devices")
_VDEV_ST_NULL = 4  # a port's state when nothing is attached


@dataclass(frozen=True)
class Attachment:
    port: int  # vhci-hcd's port number, as `usbip port` and `usbip detach -p` count them
    busid: str  # the device on the host side, e.g. 3-1


def attach(port: int, fd: int, speed: int) -> None:
    """Plug the device answering at the other end of stream socket ``fd`` into ``port``; enumeration follows."""
    try:
        (VHCI / "attach").write_text(f"{port} {fd} {(0x100 + port) << 16 | 2} {speed}")
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
        if busid != "0-0" and sysfs.read(_USB / busid / "serial") == serial:
            return Attachment(int(fields[1]), busid)
    return None


def free_ports() -> list[int]:
    """The free SuperSpeed ports of vhci-hcd, as its status files number them."""
    return [int(port) for hub, port, state, *_ in _ports() if hub == "ss" and int(state) == _VDEV_ST_NULL]


def free_port() -> int:
    if free := free_ports():
        return free[0]
    raise EnvironmentProblem("no free SuperSpeed vhci-hcd port")


def _ports() -> Iterator[list[str]]:
    """Each port's line of the status files of every vhci-hcd, split: hub, port, state, ..., busid."""
    for status in sorted(VHCI.parent.glob("vhci_hcd.*/status*")):
        for line in (sysfs.read(status) or "").splitlines()[1:]:
            yield line.split()
