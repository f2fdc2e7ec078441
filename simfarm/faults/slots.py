"""The producer's side of faults: a plan per paced slot, and the writer that carries it out.

Per slot the producer asks its camera's :class:`~simfarm.faults.FaultSet`
for a :class:`SlotPlan` and hands it to a :class:`SlotWriter`, which renders,
damages, repeats, holds back or skips frames as planned and says how many
sequence numbers the slot used. The FaultSet has already recorded what the
plan does to which sequence numbers, so the two must stay in step: every
plan is served exactly once, in order.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from fractions import Fraction

import numpy as np

from .transforms import Corruption


@dataclass(frozen=True)
class SlotPlan:
    """What one slot does. At most one of ``freeze``, ``release``, ``drop`` and ``hold`` is set.

    - ``emit`` False (stall): nothing is written and no sequence number used.
    - ``freeze``: the bytes written last go out again; no sequence number used.
    - ``release``: the frame held back by the previous ``hold`` goes out; no sequence number used.
    - ``drop``: the next sequence number is used and its frame never written.
    - ``hold`` (reorder): frame n is rendered and kept for the next slot,
      frame n+1 is rendered and written now: two sequence numbers used.
    - ``copies``: how many times the fresh frame goes out back to back (2: duplicate).
    - ``corrupt``: applied to the fresh frame written in this slot (a copy of it).
    - ``delay_s``: wait this long before rendering, so the code's send time is the real one.
    - ``fps``: the rate to pace at from now on; None means the camera's own.
    - ``keep``: keep a copy of what this slot writes (a later freeze or tear
      needs it). Only plans made while faults are in force ask for it, so a
      fault-free stream costs no copying.
    """

    emit: bool = True
    freeze: bool = False
    release: bool = False
    drop: bool = False
    hold: bool = False
    copies: int = 1
    corrupt: Corruption | None = None
    delay_s: float = 0.0
    fps: Fraction | None = None
    keep: bool = False

    # Cached: the producer asks several times per slot, and NORMAL serves most slots.
    @cached_property
    def consumed(self) -> int:
        """Sequence numbers this slot uses."""
        if not self.emit or self.freeze or self.release:
            return 0
        return 2 if self.hold else 1

    @cached_property
    def writes(self) -> int:
        """Frames this slot writes."""
        if not self.emit or self.drop:
            return 0
        return 1 if self.freeze or self.release or self.hold else self.copies


# The plan of a slot with no fault in force: shared, since most slots are like this.
NORMAL = SlotPlan()


class SlotWriter:
    """Carries out plans for one camera; keeps the last frame written when asked, and the one held back.

    ``write`` sends one frame; ``wait`` sleeps for a jitter delay. Keeping a
    frame means copying it: a ring frame's code strip is overwritten in place
    by the next stamp, so a reference would not do.
    """

    def __init__(self, write: Callable[[np.ndarray], object],
                 wait: Callable[[float], object] = time.sleep) -> None:
        self._write = write
        self._wait = wait
        self._previous: np.ndarray | None = None
        self._held: np.ndarray | None = None

    def serve(self, plan: SlotPlan, sequence: int, render: Callable[[int], np.ndarray]) -> int:
        """Carry out ``plan`` for a slot whose next sequence number is ``sequence``; return the numbers used.

        ``render(n)`` returns the stamped frame for sequence ``n`` (``sequence``
        or ``sequence + 1``), as the producer would write it without faults.
        """
        if plan is NORMAL:  # no fault in force, as for most slots: one fresh frame, nothing kept
            self._previous = None
            self._write(render(sequence))
            return 1
        if plan.writes and plan.delay_s > 0:
            self._wait(plan.delay_s)
        if plan.freeze:
            if self._previous is None:
                raise RuntimeError("freeze planned with no frame kept to repeat")
            self._write(self._previous)
        elif plan.release:
            if self._held is None:
                raise RuntimeError("release planned with no frame held back")
            self._send(self._held, 1, keep=plan.keep)
            self._held = None
        elif plan.writes:
            frame = render(sequence)
            if plan.hold:
                self._held = frame.copy()
                frame = render(sequence + 1)
            if plan.corrupt is not None:
                frame = plan.corrupt(frame, self._previous)
            self._send(frame, plan.copies, keep=plan.keep)
        return plan.consumed

    def reset(self) -> None:
        """Forget the last and the held frame (after a format change they no longer fit)."""
        self._previous = self._held = None

    def _send(self, frame: np.ndarray, copies: int, *, keep: bool) -> None:
        for _ in range(copies):
            self._write(frame)
        if not keep:
            self._previous = None
        elif self._previous is not None and self._previous.shape == frame.shape:
            np.copyto(self._previous, frame)
        else:
            self._previous = frame.copy()
