"""Plugging a gadget back into this machine over USB/IP: the virtual UDC, usbipd, usbip attach/detach.

``usbip-vudc`` gives UDCs to bind gadgets to; ``usbipd --device`` exports
every bound, connected one on a TCP port; ``usbip attach -d UDC`` plugs it
into a ``vhci-hcd`` port, where it enumerates as a USB device (a webcam,
driven by uvcvideo). An attachment is found by its device's serial, so a
port holding someone else's device is never detached.
"""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .. import binaries
from ..errors import EnvironmentProblem
from . import kmodule, sysfs

MODULES = ("usbip_vudc", "vhci_hcd")
# usbip-vudc's UDCs are fixed when it loads (its num parameter, 1 by default).
UDCS = 16
_VHCI = Path("/sys/devices/platform")
_USB = Path("/sys/bus/usb/devices")


@dataclass(frozen=True)
class Attachment:
    port: int  # vhci-hcd's port number, as `usbip port` and `usbip detach -p` count them
    busid: str  # the device on the host side, e.g. 3-1


def load_modules() -> None:
    kmodule.ensure("vhci_hcd")
    kmodule.ensure("usbip_vudc", {"num": str(UDCS)})


def free_tcp_port() -> int:
    """A TCP port nothing listens on now, for a usbipd of our own."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_daemon(port: int, timeout: float = 30.0) -> subprocess.Popen:
    """``usbipd --device`` on ``port``, once it accepts connections.

    It listens on every IPv4 address (usbipd cannot bind one): anyone who
    reaches the port can attach the exported gadgets.
    """
    daemon = subprocess.Popen([binaries.require("usbipd"), "--device", "-4", "--tcp-port", str(port)],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              start_new_session=True)
    deadline = time.monotonic() + timeout
    # usbipd says nothing when it is ready; a connection accepted is the only sign.
    while daemon.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return daemon
        except OSError:
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
    daemon.kill()
    _, err = daemon.communicate()
    raise EnvironmentProblem(f"usbipd did not start on port {port}: {err.decode().strip() or 'timed out'}")


def attach(port: int, udc: str) -> None:
    """Plug the gadget on ``udc`` (exported by the usbipd on ``port``) in; it enumerates afterwards."""
    done = subprocess.run([binaries.require("usbip"), "--tcp-port", str(port), "attach", "-r", "127.0.0.1",
                           "-d", udc], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise EnvironmentProblem(f"usbip attach {udc} failed: {done.stderr.strip()}")


def find(serial: str) -> Attachment | None:
    """The vhci-hcd port whose device has ``serial``; None when none has."""
    for status in sorted(_VHCI.glob("vhci_hcd.*/status*")):
        for line in status.read_text().splitlines()[1:]:
            fields = line.split()
            busid = fields[-1]
            if busid != "0-0" and sysfs.read(_USB / busid / "serial") == serial:
                return Attachment(int(fields[1]), busid)
    return None


def detach(serial: str) -> bool:
    """Unplug the device with ``serial`` from vhci-hcd; False when it is not attached."""
    found = find(serial)
    if found is None:
        return False
    done = subprocess.run([binaries.require("usbip"), "detach", "-p", str(found.port)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0 and find(serial) is not None:
        raise EnvironmentProblem(f"usbip detach -p {found.port} failed: {done.stderr.strip()}")
    return True

