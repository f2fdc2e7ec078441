"""The on-disk record of each farm: what it owns, who supervises it.

A farm's record is the ownership ledger. Every node and process is written
here (atomically) as soon as it exists, before anything else can fail, so
whoever finds the record later — teardown, or any command after a crash —
can remove exactly what simfarm made and nothing else.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import NamedTuple

from ..errors import BadInput
from ..procfs import stat_fields

FARM_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,15}$")
RECORD = "farm.json"
# The supervisor's log of faults starting and ending (JSON lines), beside the record.
FAULT_LOG = "faults.jsonl"
# Held while one process of a farm changes its record (see amend_record).
RECORD_LOCK = "record.lock"
# The records below are plain classes, not dataclasses: every CLI command
# reads them, and importing dataclasses (it imports inspect) costs a fifth of
# Python's own start-up.


def state_root() -> Path:
    """Where farms are recorded: $SIMFARM_STATE_DIR, /run/simfarm for root, else per user."""
    if env := os.environ.get("SIMFARM_STATE_DIR"):
        return Path(env)
    if os.geteuid() == 0:
        return Path("/run/simfarm")
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return Path(runtime, "simfarm") if runtime else Path(f"/tmp/simfarm-{os.geteuid()}")


def check_farm_name(name: str) -> str:
    if not FARM_NAME.match(name):
        raise BadInput(f"farm name {name!r} must be 1-16 of a-z 0-9 _ - (starting alphanumeric)")
    return name


class ProcessId(NamedTuple):
    """A pid plus its kernel start time, so a recycled pid is never mistaken for ours."""

    pid: int
    start_ticks: int

    @classmethod
    def of(cls, pid: int) -> ProcessId | None:
        ticks = _start_ticks(pid)
        return None if ticks is None else cls(pid, ticks)

    @classmethod
    def me(cls) -> ProcessId:
        own = cls.of(os.getpid())
        assert own is not None
        return own

    def alive(self) -> bool:
        return _start_ticks(self.pid) == self.start_ticks


def _start_ticks(pid: int) -> int | None:
    fields = stat_fields(pid)
    return None if fields is None else int(fields[19])


class NodeRecord(SimpleNamespace):
    """One node this farm created. ``label`` is checked again before removal."""

    camera: int
    label: str
    number: int | None  # None while the ADD ioctl is in flight
    metadata: int | None  # vivid: the camera's metadata node

    def __init__(self, camera: int, label: str, number: int | None = None, metadata: int | None = None) -> None:
        super().__init__(camera=camera, label=label, number=number, metadata=metadata)


class FarmRecord(SimpleNamespace):
    name: str
    spec: dict
    backend: str
    phase: str  # starting | running | stopping | failed
    supervisor: ProcessId | None
    provisioner: ProcessId | None  # the process running `provision`, while starting
    nodes: list[NodeRecord]
    processes: list[ProcessId]
    # A kernel module this farm loaded and must unload (vivid; v4l2loopback 0.12,
    # whose nodes come with it), recorded before loading it.
    module: str | None
    error: str | None

    def __init__(self, name: str, spec: dict, backend: str = "loopback", phase: str = "starting",
                 supervisor: ProcessId | None = None, provisioner: ProcessId | None = None,
                 nodes: list[NodeRecord] | None = None, processes: list[ProcessId] | None = None,
                 module: str | None = None, error: str | None = None) -> None:
        super().__init__(name=name, spec=spec, backend=backend, phase=phase, supervisor=supervisor,
                         provisioner=provisioner, nodes=nodes or [], processes=processes or [], module=module,
                         error=error)

    @property
    def directory(self) -> Path:
        return farm_dir(self.name)

    def save(self) -> None:
        path = self.directory / RECORD
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=1))
        os.replace(tmp, path)

    def to_json(self) -> dict:
        sup, prov = self.supervisor, self.provisioner
        return {**vars(self), "supervisor": sup and sup._asdict(), "provisioner": prov and prov._asdict(),
                "nodes": [vars(n) for n in self.nodes], "processes": [p._asdict() for p in self.processes]}

    @classmethod
    def load(cls, name: str) -> FarmRecord | None:
        try:
            data = json.loads((farm_dir(name) / RECORD).read_text())
        except (OSError, ValueError):
            return None
        sup, prov = data.pop("supervisor"), data.pop("provisioner")
        return cls(supervisor=ProcessId(**sup) if sup else None,
                   provisioner=ProcessId(**prov) if prov else None,
                   nodes=[NodeRecord(**n) for n in data.pop("nodes")],
                   processes=[ProcessId(**p) for p in data.pop("processes")], **data)

    def abandoned(self) -> bool:
        """No live process looks after this farm any more."""
        if self.supervisor is not None and self.supervisor.alive():
            return False
        starting = self.phase == "starting" and self.provisioner is not None
        return not (starting and self.provisioner.alive())

    def remove_directory(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def amend_record(name: str, change: Callable[[FarmRecord], None]) -> FarmRecord | None:
    """Apply ``change`` to farm ``name``'s record on disk, under the farm's record lock.

    A farm with worker processes has several writers, each keeping its own
    part (the supervisor the phase, a worker its cameras' nodes): a plain
    save of one process's copy would undo what another wrote meanwhile.
    Returns the record as saved (None when there is none any more).
    """
    with open(farm_dir(name) / RECORD_LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
        record = FarmRecord.load(name)
        if record is not None:
            change(record)
            record.save()
        return record


def farm_dir(name: str) -> Path:
    return state_root() / "farms" / name


def farm_names() -> list[str]:
    base = state_root() / "farms"
    return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []


@contextlib.contextmanager
def global_lock() -> Iterator[None]:
    """Serialises node creation and reclaiming across every simfarm process."""
    root = state_root()
    root.mkdir(parents=True, exist_ok=True, mode=0o755)
    with open(root / "lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
