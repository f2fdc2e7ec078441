"""The ledger of what `simfarm attach` plugged into this host's vhci-hcd: what `simfarm detach` may unplug.

One JSON file in simfarm's state directory, changed under the global lock.
Each entry names the vhci-hcd port and the serial of the device this host
enumerated on it, so a port that has since been freed and taken by someone
else's device (a stock `usbip attach`, another farm) is never detached.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

from ...state.records import state_root

LEDGER = "usbip-attached.json"


@dataclass(frozen=True)
class Attachment:
    """A remote webcam attached here: whose it is, where it landed, what it became."""

    host: str
    port: int  # the server's TCP port
    busid: str  # the server's busid
    label: str | None  # the camera's label, when the server's record carries one (a simfarm farm's does)
    vhci_port: int
    local_busid: str  # the device on this host's USB bus, e.g. 3-1
    serial: str | None
    # What uvcvideo and udev made of it: not part of its identity (the ledger is written before they exist).
    node: str | None = field(default=None, compare=False)
    by_id: str | None = field(default=None, compare=False)

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def load() -> list[Attachment]:
    """Every attachment recorded (the caller holds the global lock to change them)."""
    try:
        entries = json.loads((state_root() / LEDGER).read_text())
    except (OSError, ValueError):
        return []
    return [Attachment(**entry) for entry in entries]


def save(attachments: list[Attachment]) -> None:
    path = state_root() / LEDGER
    if not attachments:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([a.to_json() for a in attachments], indent=1))
    os.replace(tmp, path)
