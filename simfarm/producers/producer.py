"""A camera's producer: paced frames from a source, stamped, written to a sink.

One thread per camera. The thread spends nearly all its time waiting for the
next deadline; per frame it stamps the code strip (a few hundred microseconds
at most) and writes the whole frame.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from fractions import Fraction

from ..frames.code import SEQUENCE_WRAP, FrameCode
from ..frames.stamp import Stamper
from .pacing import Pacer
from .sinks import Sink
from .sources import FrameSource


@dataclass(frozen=True)
class ProducerStats:
    """Counters of one producer; ``fps`` is measured over the last second or so."""

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
    a frame really went missing on its way; slots the producer itself could
    not serve in time are counted in ``dropped`` instead.
    """

    def __init__(self, camera: int, source: FrameSource, sink: Sink, fps: Fraction,
                 stamper: Stamper) -> None:
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
        self.sequence = 0

    def start(self) -> None:
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"producer-{self.camera}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop writing and close source and sink; safe to call twice."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.source.close()
        self.sink.close()

    def _run(self) -> None:
        pacer = Pacer(self.fps, stop=self._stop)
        try:
            while (slot := pacer.next_slot()) is not None:
                self._write_one(slot.index, slot.late, slot.skipped)
        except Exception as exc:  # surfaced through stats(); the supervisor decides
            self._error = f"{type(exc).__name__}: {exc}"

    def _write_one(self, index: int, late: bool, skipped: int) -> None:
        frame = self.source.frame(index)
        wall = time.time()
        code = FrameCode(self.camera, self.sequence % SEQUENCE_WRAP, int(wall * 1000))
        data = self.stamper.stamp(frame, code, frame_index=index, wall_time=wall,
                                  reused=self.source.reuses_buffers)
        self.sink.write_frame(data)
        with self._lock:
            self.sequence += 1
            self._written += 1
            self._late += late
            self._dropped += skipped
            self._recent.append(time.monotonic())

    def stats(self) -> ProducerStats:
        with self._lock:
            recent = list(self._recent)
            written, late, dropped = self._written, self._late, self._dropped
        fps = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 and recent[-1] > recent[0] else 0.0
        return ProducerStats(written=written, late=late, dropped=dropped, fps=round(fps, 2),
                             uptime_s=round(time.monotonic() - self._started, 3) if self._started else 0.0,
                             running=self._thread is not None and self._thread.is_alive(),
                             error=self._error)
