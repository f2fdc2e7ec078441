"""An exporting farm's USB/IP server (``--usbip-listen``): its webcams offered to other machines.

The supervisor starts it before any webcam is offered (a bind failure fails
the provision, rolling everything back) and closes it first at shutdown (no
listener is left, every import ends). The catalog is asked afresh on every
request: a webcam the farm unplugged is withdrawn from it
(simfarm.backends.uvc.export), a replugged one is listed again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from ..backends.base import SupervisedCamera
from ..backends.uvc.backend import UvcCamera
from ..backends.uvc.export import WebcamExport
from ..listen import endpoint
from ..publishers.usbip.server import UsbipServer


class FarmExports:
    """The USB/IP server of ``cameras`` (a uvc farm's, every one exported), as ``options`` (the farm
    record's ``usbip``: listen, allow) say."""

    def __init__(self, options: dict, cameras: Sequence[SupervisedCamera]) -> None:
        self._exports = [export for cam in cameras if (export := cast(UvcCamera, cam).export) is not None]
        self.server = UsbipServer(options["listen"], options["allow"], catalog=self._offered)

    def _offered(self) -> list[WebcamExport]:
        return [export for export in self._exports if export.offered]

    def start(self) -> None:
        """Listen (EnvironmentProblem when the address cannot be bound)."""
        self.server.start()

    def close(self) -> None:
        self.server.close()

    @property
    def listen(self) -> str:
        """The address and port listened on, ``ADDR:PORT`` (``[ADDR]:PORT`` for IPv6): the port bound
        when port 0 asked for a free one."""
        return endpoint(*self.server.address)

    def annotate(self, cameras: list[dict]) -> None:
        """Complete each exported camera's ``usbip`` status (its busid and counters) with the server's
        view: state offered, imported or withdrawn (unplugged), peer, since, and the listen address."""
        found = {status.busid: status for status in self.server.status()}
        for cam in cameras:
            if (usbip := cam.get("usbip")) is not None:
                status = found.get(usbip["busid"])
                usbip.update(state=status.state if status else "withdrawn", peer=status.peer if status else None,
                             since=status.since if status else None, listen=self.listen)
