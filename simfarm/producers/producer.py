"""A camera's producer: paced frames from a source, stamped, written to a sink.

One thread per camera. The thread spends nearly all its time waiting for the
next deadline; per frame it stamps the code strip (a few hundred microseconds
at most) and writes the whole frame.

Faults act per slot: the camera's :class:`~simfarm.faults.FaultSet` plans each
slot and a :class:`~simfarm.faults.SlotWriter` carries the plan out. The slot
time it plans with is the stream clock, which advances one period per slot
served: a duration covers an exact number of frame slots, and a fault
scheduled some time ahead starts on the same slot, even when the producer
fell behind and the pacer skipped slots (counted in ``dropped``). With no
fault in force the plan is the shared ``NORMAL`` one, decided without a lock,
and the writer keeps no copies: the fault-free path costs a few attribute
checks more than a bare stamp-and-write.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from fractions import Fraction
from functools import partial

import numpy as np

from ..faults import FaultSet, SlotWriter
from ..frames.code import SEQUENCE_WRAP, FrameCode
from ..frames.stamp import Stamper
from .pacing import PROCESS_ORIGIN, Pacer, spread_phase
from .progress import Progress, ProgressCell
from .sinks import Sink
from .sources import FrameSource


@dataclass(frozen=True)
class ProducerStats:
    """Counters of one producer; ``fps`` is measured over the last second or so.

    ``written`` counts frames written (a duplicate counts twice), ``late``
    slots served late and ``dropped`` slots the producer could not serve in
    time. Frames a drop fault withholds are not in ``dropped``: the fault log
    names them.
    """

    written: int
    late: int
    dropped: int
    fps: float
    uptime_s: float
    running: bool
    error: str | None

    def to_json(self) -> dict:
        return asdict(self)


class Producer:
    """Writes ``source`` frames to ``sink`` at ``fps``, each carrying its code.

    Sequence numbers count written frames, so a consumer sees a gap only where
    a frame really went missing on its way (or a drop fault withheld it);
    slots the producer itself could not serve in time are counted in
    ``dropped`` instead.

    ``faults`` is the camera's FaultSet; it outlives a producer that is
    replaced to renegotiate the format, as do the sequence number and the
    stream clock, which a replacement continues from ``sequence`` and ``clock``.

    ``progress`` is the camera's cell of a worker farm's ProgressBoard, noted
    after each slot. ``resume`` is what a dead worker's producer last noted
    there: this one carries on from it as if that producer had lived on and
    missed every slot since (numbered, and counted in ``dropped``), so a
    reader sees a gap in the codes where the camera was down, not a reset.
    """

    def __init__(self, camera: int, source: FrameSource, sink: Sink, fps: Fraction,
                 stamper: Stamper, *, faults: FaultSet | None = None, sequence: int = 0,
                 clock: float = 0.0, progress: ProgressCell | None = None, resume: Progress | None = None) -> None:
        self.camera = camera
        self.source = source
        self.sink = sink
        self.fps = Fraction(fps)
        self.stamper = stamper
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._written = self._late = self._dropped = 0
        self._recent: deque[float] = deque(maxlen=int(self.fps) * 2 + 2)
        self._started = 0.0
        self._error: str | None = None
        self.sequence = sequence
        self.clock = clock  # the stream clock at the next slot, in seconds
        self.faults = faults if faults is not None else FaultSet(camera, stamper.fmt, stamper.size, self.fps)
        # Set once the first frame is out (or the thread failed before): readers can open the node.
        self.first_frame = threading.Event()
        # Calls to make in the producer thread at the top of the next slot (see at_next_slot).
        self._calls: list[Callable[[float, int], object]] = []
        self._progress = progress
        self._resume = resume

    def start(self) -> None:
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"producer-{self.camera}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0, *, final: bool = True) -> None:
        """Stop writing and close source and sink; safe to call twice.

        ``final`` False keeps the faults in force, for a replacement producer
        (after a format change or a replug) to carry on with.
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._progress is not None:
            # Stopped, not dead: the next producer (after the worker dies) numbers on from here with no slot
            # missed, as a stream started later does (an unplugged node, a webcam nobody streams, make none).
            with self._lock:
                self._progress.note(math.inf, self.sequence, self._written, self._late, self._dropped, self.clock)
        self.source.close()
        self.sink.close()
        if final:
            self.faults.close()

    def at_next_slot(self, call: Callable[[float, int], object]) -> None:
        """Call ``call(slot_time, sequence)`` in the producer thread before the next slot is planned.

        A scenario starts from there, so its faults line up with the slot
        grid and their sequence numbers repeat from run to run.
        """
        with self._lock:
            self._calls.append(call)

    def _run(self) -> None:
        pacer = Pacer(self.fps, stop=self._stop, phase=spread_phase(self.camera), origin=PROCESS_ORIGIN)
        writer = SlotWriter(self.sink.write_frame)
        paced: Fraction | None = None  # the rate a fps fault imposes, None: our own
        if self._resume is not None:
            self._carry_on(self._resume, pacer.first_deadline(), pacer.period)
        progress = self._progress
        # The stream clock is base + served * period, restarted at each change of rate so it does not drift.
        base, served, period = self.clock, 0, pacer.period
        try:
            while (slot := pacer.next_slot()) is not None:
                now = base + served * period
                if self._calls:
                    self._run_calls(now)
                plan = self.faults.on_slot(self.sequence, now)
                if plan.fps != paced:
                    paced = plan.fps
                    pacer.set_fps(paced or self.fps)
                    base, served, period = now, 0, pacer.period
                served += 1
                self.clock = base + served * period
                used = writer.serve(plan, self.sequence % SEQUENCE_WRAP, partial(self._render, slot.index))
                with self._lock:
                    self.sequence += used
                    self._written += plan.writes
                    self._late += slot.late
                    self._dropped += slot.skipped
                    if plan.writes:
                        self._recent.append(time.monotonic())
                    if progress is not None:
                        progress.note(slot.deadline, self.sequence, self._written, self._late, self._dropped,
                                      self.clock)
                if plan.writes and not self.first_frame.is_set():
                    self.first_frame.set()
        except Exception as exc:  # surfaced through stats(); the supervisor decides
            self._error = f"{type(exc).__name__}: {exc}"
        finally:
            self.first_frame.set()

    def _carry_on(self, last: Progress, first: float, period: float) -> None:
        """Continue from ``last``, counting the slots between it and our ``first`` as missed.

        A worker's producers share the supervisor's slot grid (PROCESS_ORIGIN),
        so the slots in between are a whole number of periods. A ``last`` noted
        by a producer that was stopped (its deadline infinite) missed none.
        """
        missed = max(0, round((first - last.deadline) / period) - 1) if math.isfinite(last.deadline) else 0
        self.sequence = last.sequence + missed
        self.clock = last.clock + missed * period
        self._written, self._late, self._dropped = last.written, last.late, last.dropped + missed

    def _run_calls(self, now: float) -> None:
        with self._lock:
            calls, self._calls = self._calls, []
        for call in calls:
            call(now, self.sequence % SEQUENCE_WRAP)

    def _render(self, index: int, sequence: int) -> np.ndarray:
        """The stamped frame of slot ``index`` for ``sequence``, sent now (after any jitter delay)."""
        frame = self.source.frame(index)
        wall = time.time()
        code = FrameCode(self.camera, sequence % SEQUENCE_WRAP, int(wall * 1000))
        return self.stamper.stamp(frame, code, frame_index=index, wall_time=wall,
                                  reused=self.source.reuses_buffers, content=self.source.content)

    def stats(self) -> ProducerStats:
        with self._lock:
            recent = list(self._recent)
            written, late, dropped = self._written, self._late, self._dropped
        fps = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 and recent[-1] > recent[0] else 0.0
        return ProducerStats(written=written, late=late, dropped=dropped, fps=round(fps, 2),
                             uptime_s=round(time.monotonic() - self._started, 3) if self._started else 0.0,
                             running=self._thread is not None and self._thread.is_alive(),
                             error=self._error)
