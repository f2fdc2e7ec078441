"""The fault log: JSON lines, one when a fault starts acting and one when it ends.

Every line carries ``event`` (``start`` or ``end``), ``fault`` (its id),
``camera``, ``kind``, ``params`` and ``for_s`` (when timed), and the moment as
``wall`` (Unix seconds) and ``sequence`` (the camera's next sequence number
then). An ``end`` line adds ``reason`` (duration, frames, cleared, stopped,
format), ``frames`` (frames or slots acted on), ``started`` (the start moment,
null for a fault cleared before it began) and ``touched``: the sequence
numbers acted on as inclusive ``[first, last]`` runs. Keys are sorted, so two
runs of the same scenario against an injected clock give identical files,
and against real time files that differ only in ``wall``.

Scenario run logs add ``scenario`` (a camera's origin), ``refused`` (a step
the farm refused, with ``error``; ``sequence`` null) and a last line ``done``
once every fault of the run has ended.

One log serves every camera of a farm (writes are serialised) and any runner:
a FaultSet reports its own faults, the supervisor its device-level ones.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TextIO

from .handle import FaultHandle, Mark


class FaultLog:
    """A :class:`~simfarm.faults.handle.FaultListener` writing JSON lines to ``stream``."""

    def __init__(self, stream: TextIO, *, owned: bool = False) -> None:
        self._stream = stream
        self._owned = owned
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: str | Path) -> FaultLog:
        """Append to ``path`` (line-buffered, so a crash loses at most the line being written)."""
        return cls(open(path, "a", buffering=1, encoding="utf-8"), owned=True)

    def fault_started(self, handle: FaultHandle) -> None:
        self._write("start", handle, handle.started)

    def fault_ended(self, handle: FaultHandle) -> None:
        record = handle.to_json()
        self._write("end", handle, handle.ended, started=record["started"], reason=record["reason"],
                    frames=record["frames"], touched=record["touched"])

    def note(self, line: dict[str, Any]) -> None:
        """Write a line of another kind (a scenario's origin, a refused step)."""
        text = json.dumps(line, sort_keys=True)
        with self._lock:
            self._stream.write(text + "\n")
            self._stream.flush()

    @property
    def closed(self) -> bool:
        return self._stream.closed

    def close(self) -> None:
        if self._owned:
            self._stream.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def _write(self, event: str, handle: FaultHandle, moment: Mark | None, **extra: Any) -> None:
        self.note({"event": event, "fault": handle.id, "camera": handle.camera, **handle.spec.to_json(),
                   **(moment.to_json() if moment else {"wall": None, "sequence": None}), **extra})


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """Every line of a fault log, parsed."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
