"""Absolute-deadline pacing for a stream of frames.

Frame k is due at ``start + k / fps``. Deadlines are computed from the start
each time, never accumulated, so rounding does not drift over hours. A writer
that falls more than one frame period behind skips the missed slots rather
than writing them back to back: a real camera never bunches frames.

Cameras do not bunch either: given a phase, a pacer puts its slots on a grid
that starts at an origin, offset by that fraction of a period, and the
cameras of one farm share an origin (:data:`PROCESS_ORIGIN`, inherited by its
forked workers) and get phases spread over the period (:func:`spread_phase`).
Their writes then take turns instead of queueing at one instant, where every
camera but the first would wait for the others' writes and come out late.
Farms have origins of their own, so camera 0 of one farm is not in step with
camera 0 of the next.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from fractions import Fraction
from typing import NamedTuple

# A frame this far past its deadline counts as late; smaller delays are
# ordinary scheduler noise.
LATE_FRACTION = 0.25
# The grid origin of this process's cameras: a supervisor's, which its forked workers inherit.
PROCESS_ORIGIN = time.monotonic()
# The golden ratio's fractional part: i * GOLDEN mod 1 spreads any number of
# cameras' phases evenly over a period without knowing how many there are.
GOLDEN = 0.6180339887498949
# Longest single sleep, so a stop request is seen within this many seconds.
# (time.sleep costs a fifth of the CPU of Event.wait(timeout), which matters
# when the whole per-frame budget is a fraction of a millisecond.)
STOP_LATENCY = 0.05


class Slot(NamedTuple):
    """One frame opportunity handed out by the pacer (a tuple: the cheapest object to make per frame)."""

    index: int  # slot number since start (skipped slots included)
    deadline: float  # monotonic seconds
    late: bool  # the pacer woke more than LATE_FRACTION of a period after the deadline
    skipped: int  # slots given up since the previous one because we were behind


def spread_phase(camera: int) -> float:
    """Camera ``camera``'s phase, a fraction of its period: cameras 0..N-1 are spread evenly."""
    return camera * GOLDEN % 1.0


class Pacer:
    """Hands out frame slots at a fixed rate; ``next_slot`` blocks until due.

    Setting ``stop`` (a threading.Event) ends the wait within STOP_LATENCY.
    ``phase`` (a fraction of a period) puts the slots on a grid of periods
    from ``origin`` (a reading of ``clock``) at that offset, the first at
    the next grid point; None: the first slot is due at once.
    """

    def __init__(self, fps: Fraction, *, stop: threading.Event | None = None, phase: float | None = None,
                 origin: float = 0.0, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.period = float(1 / Fraction(fps))
        self._phase = phase
        self._origin = origin
        self._clock = clock
        self._sleep = sleep
        self._stop = stop or threading.Event()
        self._start: float | None = None
        self._next = 0

    def set_fps(self, fps: Fraction) -> None:
        """Change the rate from the next slot on, keeping the stream continuous."""
        now = self._clock()
        self.period = float(1 / Fraction(fps))
        # The frame just written used the old period; the next is one new period on.
        self._start, self._next = now + self.period, 0

    def first_deadline(self) -> float:
        """The first slot's deadline, fixed now if it is not yet (the next grid point, or now)."""
        if self._start is None:
            self._start = now = self._clock()
            if self._phase is not None:
                offset = self._origin + self._phase * self.period
                self._start = ((now - offset) // self.period + 1) * self.period + offset
        return self._start

    def next_slot(self) -> Slot | None:
        """Wait for the next due slot; None once stopped."""
        start = self.first_deadline() if self._start is None else self._start
        deadline = start + self._next * self.period
        # The clock is read once per pass: the reading that ends the wait is the slot's "now".
        while (delay := deadline - (now := self._clock())) > 0 and not self._stop.is_set():
            self._sleep(min(delay, STOP_LATENCY))
        if self._stop.is_set():
            return None
        behind = int((now - deadline) / self.period)
        index = self._next + behind
        deadline = start + index * self.period
        self._next = index + 1
        return Slot(index, deadline, now - deadline > LATE_FRACTION * self.period, behind)
