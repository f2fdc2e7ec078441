"""`simfarm attach` and `detach`: a farm's webcam (any USB/IP export) plugged into this host's vhci-hcd.

What the stock `usbip attach -r` does, for machines without the `usbip`
package: import the device over TCP and hand the connected socket to
vhci-hcd's ``attach`` file; then wait for uvcvideo's node. Every attachment
made here is written to a ledger (attachments.py) and only those are ever
detached. ``watch`` keeps one attached across the farm's unplug and replug.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable, Sequence

from ...devices.kmod import kmodule
from ...devices.udev import uevents
from ...devices.usb import vhci
from ...devices.usb.usbip_protocol import SPEED_SUPER, ExportedDevice, simfarm_label
from ...devices.v4l2 import nodes
from ...errors import BadInput, EnvironmentProblem
from ...state.records import global_lock
from . import attachments
from .attachments import Attachment
from .client import import_device, list_remote

NODE_TIMEOUT = 60.0  # seconds for enumeration and uvcvideo's probing (longer under emulation)
RETRY_STEP = 0.5  # seconds added to the wait between imports while a watched export is withdrawn
RETRY_MAX = 5.0


def choose(devices: Sequence[ExportedDevice], busid: str | None = None,
           camera: str | None = None) -> ExportedDevice:
    """The export named by ``busid`` or by ``camera`` (a farm camera's label); the only one when
    neither is given. BadInput naming what there is otherwise."""
    offered = ", ".join(f"{d.busid} ({simfarm_label(d) or d.path or '-'})" for d in devices) or "none"
    if busid is not None:
        found = [d for d in devices if d.busid == busid]
    elif camera is not None:
        found = [d for d in devices if simfarm_label(d) == camera]
    else:
        found = list(devices)
        if len(found) > 1:
            raise BadInput(f"the server exports {len(found)} devices: choose one with --busid or --camera "
                           f"(exported: {offered})")
    if not found:
        wanted = f"busid {busid}" if busid is not None else f"camera {camera}" if camera else "device"
        raise BadInput(f"the server exports no {wanted} (exported: {offered})")
    return found[0]


def attach(host: str, port: int, *, busid: str | None = None, camera: str | None = None,
           timeout: float = NODE_TIMEOUT) -> Attachment:
    """Import the chosen export from ``host``:``port`` and plug it in here; returns once uvcvideo's
    capture node exists, with its by-id link."""
    device = choose(list_remote(host, port), busid, camera)
    for module in kmodule.WEBCAM_MODULES:  # the host controller, and the driver that makes the node
        kmodule.ensure(module)
    connection, imported = import_device(host, port, device.busid)
    with connection, global_lock():  # a free port is chosen, then taken: one process at a time
        vhci_port = vhci.free_port(imported.speed >= SPEED_SUPER)
        watch = uevents.Watch("usb", "video4linux")
        # The kernel takes its own reference to the socket: ours closes when this block ends.
        vhci.attach(vhci_port, connection.fileno(), imported.speed, imported.busnum << 16 | imported.devnum)
        found = watch.until(lambda: vhci.at_port(vhci_port), f"device {device.busid} on vhci-hcd port {vhci_port}",
                            timeout)
        made = Attachment(host, port, device.busid, simfarm_label(device), vhci_port, found.busid,
                          vhci.device_serial(found))
        attachments.save([*attachments.load(), made])
    try:
        node = _capture_node(found.busid, watch, timeout)
    except BaseException:  # all or nothing: a webcam without its node is unplugged again
        _release(made)
        raise
    return Attachment(**{**made.to_json(), "node": node, "by_id": _by_id(node)})


def detach(busid: str | None = None) -> list[Attachment]:
    """Unplug what `simfarm attach` plugged in: the attachments of export ``busid`` (of whichever server),
    or (None) every one. BadInput, with nothing touched, when no attachment of ``busid`` is recorded: a
    port this did not attach is never detached. Returns the attachments ended (once their nodes are gone)."""
    with global_lock():
        chosen = [a for a in attachments.load() if busid is None or a.busid == busid]
    if busid is not None and not chosen:
        raise BadInput(f"simfarm attach made no attachment of {busid} here (a port attached otherwise: "
                       "usbip detach -p PORT)")
    for attached in chosen:
        _release(attached)
    return chosen


def watch(attached: Attachment, stop: threading.Event, on_attach: Callable[[Attachment], None]) -> None:
    """Keep ``attached`` plugged in until ``stop`` is set, then detach it: whenever its port goes away (the
    farm unplugged the webcam, ending the import), import it again as soon as it is offered (retrying
    in growing steps) and call ``on_attach`` with the new attachment."""
    current: Attachment | None = attached
    delay = RETRY_STEP
    while not stop.is_set():
        if current is not None and _still_ours(current):
            stop.wait(RETRY_STEP)
            continue
        if current is not None:
            _release(current)  # its port is gone already: only the ledger's entry is left
            current = None
        try:
            current = attach(attached.host, attached.port, busid=attached.busid)
        except (BadInput, EnvironmentProblem):  # not offered again yet (withdrawn, or the farm restarting)
            stop.wait(delay)
            delay = min(delay + RETRY_STEP, RETRY_MAX)
            continue
        delay = RETRY_STEP
        on_attach(current)
    if current is not None:
        _release(current)


def _capture_node(local_busid: str, watch: uevents.Watch, timeout: float) -> str:
    """uvcvideo's capture node of the device at ``local_busid``, once it exists."""
    return watch.until(lambda: nodes.usb_capture_node(local_busid), f"a capture node for USB device {local_busid}",
                       timeout)


def _by_id(node: str) -> str | None:
    """The node's /dev/v4l/by-id link, once udev has made it (udev's rules run after the kernel's event)."""
    subprocess.run(["udevadm", "settle", "--timeout=30"], check=False, capture_output=True)
    return nodes.link_to(node, "/dev/v4l/by-id")


def _still_ours(attached: Attachment) -> bool:
    """Whether ``attached``'s port still holds the device it was given (a port freed and taken by another
    device is not ours)."""
    found = vhci.at_port(attached.vhci_port)
    return found is not None and found.busid == attached.local_busid and vhci.device_serial(found) == attached.serial


def _release(attached: Attachment) -> None:
    """Unplug ``attached`` while its port still holds its device, and strike it from the ledger."""
    with global_lock():
        if _still_ours(attached):
            watch = uevents.Watch("video4linux")
            vhci.detach(attached.vhci_port)
            vhci.wait_nodes_gone(attached.local_busid, watch)
        attachments.save([a for a in attachments.load() if a != attached])
