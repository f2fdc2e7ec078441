"""Undoing a farm from its record alone: teardown's last step and crash recovery."""

from __future__ import annotations

import os
import signal

from ..devices import loopback, loopback_params
from ..errors import InUse
from .state import FarmRecord, farm_names


def reclaim(record: FarmRecord, *, timeout: float = 10.0) -> None:
    """Stop the farm's live processes and remove its nodes, then its state.

    Only what the record names is touched, and each thing is checked to still
    be ours (process start time, node label) first. Raises InUse (and keeps
    the record, so a later run can finish) while readers hold a node.
    """
    for proc in [record.supervisor, *record.processes]:
        if proc is not None and proc.alive():
            os.kill(proc.pid, signal.SIGKILL)
    busy = _unload_module(record, timeout) if record.module is not None else _remove_nodes(record, timeout)
    if busy:
        record.phase, record.supervisor, record.error = "stopping", None, str(busy)
        record.save()
        raise busy
    record.remove_directory()


def _unload_module(record: FarmRecord, timeout: float) -> InUse | None:
    # 0.12: the nodes go with the module, and only if it still carries our labels.
    try:
        loopback_params.unload([node.label for node in record.nodes], timeout=timeout)
    except InUse as exc:
        return exc
    record.nodes.clear()
    record.module = None
    return None


def _remove_nodes(record: FarmRecord, timeout: float) -> InUse | None:
    busy: InUse | None = None
    for node in list(record.nodes):
        if node.number is None:
            # The ADD ioctl may have succeeded after the record was written.
            found = loopback.nodes.numbers_with_label(node.label)
            node.number = found[0] if found else None
        if node.number is not None:
            try:
                loopback.remove(node.number, node.label, timeout=timeout)
            except InUse as exc:
                busy = busy or exc
                continue
        record.nodes.remove(node)
    return busy


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
