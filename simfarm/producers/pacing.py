"""Absolute-deadline pacing for a stream of frames.

Frame k is due at ``start + k / fps``. Deadlines are computed from the start
each time, never accumulated, so rounding does not drift over hours. A writer
that falls more than one frame period behind skips the missed slots rather
than writing them back to back: a real camera never bunches frames.
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


class Pacer:
    """Hands out frame slots at a fixed rate; ``next_slot`` blocks until due.

    Setting ``stop`` (a threading.Event) ends the wait within STOP_LATENCY.
    """

    def __init__(self, fps: Fraction, *, stop: threading.Event | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.period = float(1 / Fraction(fps))
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

    def next_slot(self) -> Slot | None:
        """Wait for the next due slot; None once stopped."""
        if self._start is None:
            self._start = self._clock()
        deadline = self._start + self._next * self.period
        # The clock is read once per pass: the reading that ends the wait is the slot's "now".
        while (delay := deadline - (now := self._clock())) > 0 and not self._stop.is_set():
            self._sleep(min(delay, STOP_LATENCY))
        if self._stop.is_set():
            return None
        behind = int((now - deadline) / self.period)
        index = self._next + behind
        deadline = self._start + index * self.period
        self._next = index + 1
        return Slot(index, deadline, now - deadline > LATE_FRACTION * self.period, behind)
