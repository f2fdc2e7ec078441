"""A webcam offered to other machines over USB/IP: the Export a farm's USB/IP server hands importers.

An exported webcam is not plugged into the farm's own vhci-hcd: its device
loop runs on the TCP connection of whoever imports it (a stock `usbip attach`,
or `simfarm attach`), and the importer's kernel makes its nodes. The server
itself is the farm's (simfarm.farm.usbip_exports): this module needs none of
it. The record's path ends in the camera's label, so an importer can choose
a webcam by label as well as by busid.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Mapping

from ...devices.usb.usbip_device import UsbipWebcamDevice, descriptors
from ...devices.usb.usbip_protocol import SPEED_SUPER, ExportedDevice, device_from_descriptors, simfarm_path

BUSNUM = 1  # the bus the exports' busids name: "1-<camera index + 1>"


class WebcamExport:
    """Camera ``index``'s USB device as an Export: its record, its device loop on an importer's
    connection, and whether it is offered (an unplugged webcam is withdrawn)."""

    def __init__(self, usb: UsbipWebcamDevice, farm: str, index: int) -> None:
        self.usb = usb
        devnum = index + 1
        self._device = device_from_descriptors(*descriptors(usb.profile), busid=f"{BUSNUM}-{devnum}",
                                               path=simfarm_path(farm, usb.profile.serial), busnum=BUSNUM,
                                               devnum=devnum, speed=SPEED_SUPER)
        self._lock = threading.Lock()
        self._connection: socket.socket | None = None
        self.offered = False

    @property
    def device(self) -> ExportedDevice:
        return self._device

    def serve(self, connection: socket.socket) -> None:
        with self._lock:
            if not self.offered:  # withdrawn while the server was still handing it over
                return
            self._connection = connection
        try:
            self.usb.serve(connection)
            self.usb.wait()
        finally:
            with self._lock:
                self._connection = None

    def counters(self) -> Mapping[str, int]:
        return {"frames": self.usb.frames_sent, "bytes": self.usb.bytes_sent}

    def offer(self) -> None:
        self.offered = True

    def withdraw(self) -> None:
        """No longer listed nor importable; an import in progress ends as a pulled cable does (the
        importer's vhci-hcd sees its connection close and removes the device). Returns once the device
        loop has stopped."""
        with self._lock:
            self.offered = False
            if self._connection is not None:
                try:
                    self._connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # the importer went first: nothing left to wake
        self.usb.wait()
