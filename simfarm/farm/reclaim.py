"""Undoing a farm from its record alone: teardown's last step and crash recovery."""

from __future__ import annotations

import os
import signal

from ..devices import loopback
from ..devices.loopback import NodeBusy
from . import publishing
from .state import FarmRecord, farm_names


def reclaim(record: FarmRecord, *, timeout: float = 10.0) -> None:
    """Stop the farm's live processes and remove its nodes, then its state.

    Only what the record names is touched, and each thing is checked to still
    be ours (process start time, node label) first. Raises NodeBusy (and keeps
    the record, so a later run can finish) while readers hold a node.
    """
    for proc in [record.supervisor, *record.processes]:
        if proc is not None and proc.alive():
            os.kill(proc.pid, signal.SIGKILL)
    publishing.reclaim(record, timeout)
    busy: NodeBusy | None = None
    for node in list(record.nodes):
        if node.number is None:
            # The ADD ioctl may have succeeded after the record was written.
            found = loopback.nodes.numbers_with_label(node.label)
            node.number = found[0] if found else None
        if node.number is not None:
            try:
                loopback.remove(node.number, node.label, timeout=timeout)
            except NodeBusy as exc:
                busy = busy or exc
                continue
        record.nodes.remove(node)
    if busy:
        record.phase, record.supervisor, record.error = "stopping", None, str(busy)
        record.save()
        raise busy
    record.remove_directory()


def stale_farms() -> list[FarmRecord]:
    """Farms whose supervisor is gone (killed, crashed) but whose state remains."""
    stale = []
    for name in farm_names():
        record = FarmRecord.load(name)
        if record is None:
            continue
        if record.abandoned():
            stale.append(record)
    return stale
