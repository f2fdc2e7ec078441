"""Resetting a USB device from the host side, as `usbreset` does: USBDEVFS_RESET on its usbfs node.

The kernel resets the device's port and re-addresses it; interface drivers
without reset hooks (uvcvideo has none) are unbound and bound again, so a
webcam's video nodes go and come back while the USB device itself stays.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from ...errors import EnvironmentProblem
from ..v4l2 import sysfs

USBDEVFS_RESET = 0x5514  # _IO('U', 20)
_USB = Path("/sys/bus/usb/devices")


def reset(busid: str) -> None:
    """Reset the USB device at ``busid`` (e.g. 1-2); returns once its drivers are bound again."""
    bus, dev = sysfs.read(_USB / busid / "busnum"), sysfs.read(_USB / busid / "devnum")
    if bus is None or dev is None:
        raise EnvironmentProblem(f"no USB device {busid} to reset (unplugged?)")
    path = f"/dev/bus/usb/{int(bus):03d}/{int(dev):03d}"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            fcntl.ioctl(fd, USBDEVFS_RESET, 0)
        finally:
            os.close(fd)
    except OSError as exc:
        raise EnvironmentProblem(f"cannot reset USB device {busid} through {path}: {exc.strerror}") from None
