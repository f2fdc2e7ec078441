"""Undoing a farm from its record alone: teardown's last step and crash recovery."""

from __future__ import annotations

import os

from ..errors import InUse
from ..state.records import FarmRecord, farm_names


def reclaim(record: FarmRecord, *, timeout: float = 10.0) -> None:
    """Stop the farm's live processes and remove its nodes (and module), then its state.

    Only what the record names is touched, and each thing is checked to still
    be ours (process start time, node label) first. Raises InUse (and keeps
    the record, so a later run can finish) while readers hold a node.
    """
    # Imported here: commands that find nothing to reclaim need neither a backend nor signal;
    # only a farm that publishes has processes in sessions of their own (a managed MediaMTX and
    # its hooks) or paths on a server, and only it needs the MediaMTX client (seconds of a
    # teardown under emulation).
    import signal

    from .. import backends

    for proc in [record.supervisor, *record.processes]:
        if proc is not None and proc.alive():
            os.kill(proc.pid, signal.SIGKILL)
    if record.spec.get("publish"):
        from . import publishing

        publishing.reclaim(record, timeout)
    try:
        backends.get(record.backend).release(record, timeout)
    except InUse as busy:
        record.phase, record.supervisor, record.error = "stopping", None, str(busy)
        record.save()
        raise
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
