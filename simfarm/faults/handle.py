"""A running fault as its owner sees it: identity, start and end, and exactly what it touched.

Handles of frame-level faults are made and updated by a :class:`FaultSet`;
the supervisor makes its own for device-level faults and marks their start
and end itself, so every fault reaches the log in the same shape.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from .catalogue import FaultSpec


@dataclass(frozen=True)
class Mark:
    """When something happened: Unix wall time, and the camera's next sequence number then."""

    wall: float
    sequence: int | None  # None when no stream was running (a device-level fault on a removed node)

    def to_json(self) -> dict[str, Any]:
        return {"wall": round(self.wall, 6), "sequence": self.sequence}


class FaultListener(Protocol):
    """Told when a fault starts acting and when it ends (from the thread where that happened)."""

    def fault_started(self, handle: FaultHandle) -> None: ...

    def fault_ended(self, handle: FaultHandle) -> None: ...


class FaultHandle:
    """One fault on one camera.

    ``started.sequence`` is the first sequence number the fault could act on
    and ``ended.sequence`` the first it had no part in, so its span is the
    half-open range between them. ``touched`` lists exactly the sequence
    numbers it acted on (reduced modulo 2**32, as decoded): for drop the
    missing ones, for duplicate the repeated ones, for reorder the ones held
    back, for freeze the one repeated, for content faults the damaged ones.
    Stall and pacing faults touch no particular frame: their span says it
    all. ``frames`` counts the frames (slots, for stall and fps) it acted on.
    """

    def __init__(self, fault_id: str, camera: int, spec: FaultSpec,
                 on_clear: Callable[[FaultHandle], None]) -> None:
        self.id = fault_id
        self.camera = camera
        self.spec = spec
        self.started: Mark | None = None
        self.ended: Mark | None = None
        self.end_reason: str | None = None  # duration, frames, cleared, stopped, format
        self.frames = 0
        # Runs of consecutive sequence numbers, [first, last]: a long fault
        # stays a few numbers rather than one entry per frame.
        self._runs: list[list[int]] = []
        self._on_clear = on_clear

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def active(self) -> bool:
        return self.started is not None and self.ended is None

    @property
    def touched(self) -> list[int]:
        return [sequence for first, last in list(self._runs) for sequence in range(first, last + 1)]

    @property
    def touched_runs(self) -> list[tuple[int, int]]:
        return [(first, last) for first, last in list(self._runs)]

    def clear(self) -> None:
        """End the fault now (reason ``cleared``); a no-op once it has ended."""
        self._on_clear(self)

    def mark_started(self, mark: Mark) -> None:
        self.started = mark

    def mark_ended(self, mark: Mark, reason: str) -> None:
        self.ended, self.end_reason = mark, reason

    def record(self, sequence: int | None) -> None:
        """Count one frame acted on, and the sequence number it touched (None: no particular one)."""
        self.frames += 1
        if sequence is None:
            return
        if self._runs and self._runs[-1][1] + 1 == sequence:
            self._runs[-1][1] = sequence
        elif not self._runs or self._runs[-1][1] != sequence:  # freeze repeats one number
            self._runs.append([sequence, sequence])

    def to_json(self) -> dict[str, Any]:
        return {"fault": self.id, "camera": self.camera, **self.spec.to_json(),
                "started": self.started.to_json() if self.started else None,
                "ended": self.ended.to_json() if self.ended else None,
                "reason": self.end_reason, "frames": self.frames,
                "touched": [list(run) for run in self.touched_runs]}

    def __repr__(self) -> str:
        return f"<FaultHandle {self.id} camera {self.camera}: {self.spec}>"
