"""A camera's frame-level faults: decides every slot's plan and keeps exact books.

Time is the slot clock the producer passes to :meth:`FaultSet.on_slot`:
pass the pacer's deadline, not the time of waking, so a duration covers the
same number of slots whatever the scheduler does (``for 2s`` at 30 fps is
exactly 60 slots) and a test can drive it with made-up times.

Which fault acts in a slot, when several are in force:

1. stall (nothing written; pacing faults other than fps do not act);
2. releasing a frame held back by reorder;
3. freeze: its first slot writes a fresh frame, the following ones repeat it;
4. drop, then reorder, then duplicate;
5. content faults, all of them in the order added, on the fresh frame
   written (not on a dropped, frozen or released one); a tear needs the
   previous frame, which is kept only while faults are in force, so a tear
   on a fault-free stream skips its first slot;
6. jitter (all of them: the longest delay wins) on any slot that writes;
   fps (the most recently added) on every slot.

Within one role the earliest-added fault that acts takes the slot; a fault
that did not act did not count towards its ``frames``. Random decisions come
from a generator per fault, seeded from (seed, camera, fault id), and are
drawn only when the fault is consulted, so a run repeats exactly given the
same faults at the same slot times.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np

from ..errors import BadInput
from ..frames.code import SEQUENCE_WRAP
from ..spec import PixelFormat, Size
from .catalogue import FaultSpec, Role
from .handle import FaultHandle, FaultListener, Mark
from .slots import NORMAL, SlotPlan
from .transforms import Corruption, Step, build_step

# Slot times are float sums; a duration that ends within this of a slot's
# time ends at that slot rather than one later.
_EPSILON_S = 1e-6
_SEQUENCE_ORDER = ("drop", "reorder", "duplicate")


def fault_rng(seed: int, camera: int, fault_id: str) -> np.random.Generator:
    """The generator of one fault: the same (seed, camera, id) always draws the same numbers."""
    digest = hashlib.sha256(f"{seed}/{camera}/{fault_id}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest, "big"))


@dataclass(eq=False)
class _Live:
    """A fault the set is responsible for: pending until its start, then running."""

    handle: FaultHandle
    order: int
    start: float  # slot time from which it may act; -inf: the next slot
    rng: np.random.Generator
    step: Step | None  # content faults only
    ends_at: float = math.inf
    frozen: int | None = None  # freeze only: the sequence number it repeats, once written

    @property
    def spec(self) -> FaultSpec:
        return self.handle.spec

    def chooses(self) -> bool:
        """One seeded draw against ``rate``; faults without a rate always act."""
        rate = self.spec.params.get("rate")
        return rate is None or bool(self.rng.random() < rate)


class FaultSet:
    """The frame-level faults of one camera; thread-safe (control thread adds, producer plans).

    ``fps`` is the camera's own rate (jitter is capped at half a period of
    the rate in force). ``seed`` seeds faults added without their own.
    ``listener`` (e.g. a :class:`~simfarm.faults.FaultLog`) hears every start
    and end, outside the lock.
    """

    def __init__(self, camera: int, fmt: PixelFormat, size: Size, fps: Fraction, *, seed: int = 0,
                 wall_clock: Callable[[], float] = time.time, listener: FaultListener | None = None) -> None:
        self.camera = camera
        self.fps = Fraction(fps)
        self.seed = seed
        self._fmt, self._size = fmt, size
        self._wall = wall_clock
        self._listener = listener
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._pending: list[_Live] = []  # by start time
        self._running: list[_Live] = []  # by order added
        self._by_id: dict[str, _Live] = {}  # every fault not yet ended
        self._next_sequence = 0  # the first sequence number no plan has used yet
        self._kept: int | None = None  # the frame the SlotWriter holds a copy of (see SlotPlan.keep)
        self._held: int | None = None  # held back by reorder, written in the next writing slot

    # -- control side ------------------------------------------------------

    def add(self, spec: FaultSpec, *, fault_id: str | None = None, start: float | None = None,
            seed: int | None = None) -> FaultHandle:
        """Put ``spec`` in force from the first slot at or after ``start`` (None: the next slot).

        A duration counts from that first slot, on the same slot clock.

        ``fault_id`` defaults to ``c<camera>.<n>``; ``seed`` to the set's.
        Raises BadInput for a row outside the frame or an id already in use,
        and ValueError for a device or stream fault (the supervisor's job).
        """
        if not spec.frame_level:
            raise ValueError(f"{spec.kind} is a {spec.role.value} fault: the supervisor carries it out")
        step = build_step(spec.kind, spec.params, self._fmt, self._size) if spec.role is Role.CONTENT else None
        with self._lock:
            order = next(self._ids)
            fault_id = fault_id or f"c{self.camera}.{order}"
            if fault_id in self._by_id:
                raise BadInput(f"camera {self.camera} already has a fault {fault_id!r}")
            handle = FaultHandle(fault_id, self.camera, spec, self._clear)
            rng = fault_rng(self.seed if seed is None else seed, self.camera, fault_id)
            live = _Live(handle, order, -math.inf if start is None else start, rng, step)
            bisect.insort(self._pending, live, key=lambda item: (item.start, item.order))
            self._by_id[fault_id] = live
        return handle

    def get(self, fault_id: str) -> FaultHandle | None:
        """The fault with this id, while it has not ended."""
        with self._lock:
            live = self._by_id.get(fault_id)
            return live.handle if live else None

    def active(self) -> list[FaultHandle]:
        """Faults not yet ended: running first, then pending ones by start time."""
        with self._lock:
            return [live.handle for live in self._running + self._pending]

    def close(self) -> None:
        """End every fault (reason ``stopped``): the producer is going away."""
        with self._lock:
            ended = self._end_all(self._pending + self._running, "stopped")
        self._notify([], ended)

    def set_format(self, fmt: PixelFormat, size: Size) -> None:
        """The stream was renegotiated: rebuild content faults for it, ending those that no longer fit.

        Call it between slots (from the producer thread, or while the producer
        is stopped) together with :meth:`SlotWriter.reset`: the last frame and
        any frame held back are of the old format and are dropped.
        """
        with self._lock:
            self._fmt, self._size = fmt, size
            self._kept = self._held = None
            misfits = []
            for live in self._pending + self._running:
                if live.step is not None:
                    try:
                        live.step = build_step(live.spec.kind, live.spec.params, fmt, size)
                    except BadInput:
                        misfits.append(live)
            ended = self._end_all(misfits, "format")
        self._notify([], ended)

    # -- producer side -----------------------------------------------------

    def on_slot(self, sequence: int, now: float) -> SlotPlan:
        """The plan for the slot at slot time ``now`` whose next sequence number is ``sequence``.

        Starts and ends faults due at ``now``, decides, records what the plan
        does to which sequence numbers, and ends faults whose ``frames`` are
        used up. Serve the plan with :meth:`SlotWriter.serve`, then advance
        the sequence number by ``plan.consumed``.
        """
        if not (self._pending or self._running or self._held is not None):
            # Only this thread plans, so the books need no lock while nothing is in force.
            self._kept = None
            self._next_sequence = (sequence + 1) % SEQUENCE_WRAP
            return NORMAL
        with self._lock:
            wall = self._wall()
            at = sequence % SEQUENCE_WRAP
            started = self._start_due(now, Mark(wall, at))
            ended = self._end_all([live for live in self._running if now >= live.ends_at - _EPSILON_S],
                                  "duration", Mark(wall, at))
            plan, acted = self._plan(at)
            self._next_sequence = (at + plan.consumed) % SEQUENCE_WRAP
            for live, touched in acted:
                live.handle.record(touched)
            spent = [live for live, _ in acted
                     if live.spec.frames is not None and live.handle.frames >= live.spec.frames]
            ended += self._end_all(spent, "frames", Mark(wall, self._next_sequence))
        self._notify(started, ended)
        return plan

    # -- inside the lock ---------------------------------------------------

    def _start_due(self, now: float, mark: Mark) -> list[FaultHandle]:
        started = []
        while self._pending and self._pending[0].start <= now + _EPSILON_S:
            live = self._pending.pop(0)
            live.handle.mark_started(mark)
            if live.spec.duration_s is not None:
                live.ends_at = now + live.spec.duration_s
            bisect.insort(self._running, live, key=lambda item: item.order)
            started.append(live.handle)
        return started

    def _end_all(self, lives: Iterable[_Live], reason: str, mark: Mark | None = None) -> list[FaultHandle]:
        ended = []
        for live in list(lives):
            if self._by_id.pop(live.handle.id, None) is None:
                continue  # already ended
            (self._running if live.handle.started else self._pending).remove(live)
            live.handle.mark_ended(mark or Mark(self._wall(), self._next_sequence), reason)
            ended.append(live.handle)
        return ended

    def _clear(self, handle: FaultHandle) -> None:
        with self._lock:
            live = self._by_id.get(handle.id)
            ended = self._end_all([live] if live and live.handle is handle else [], "cleared")
        self._notify([], ended)

    def _running_as(self, role: Role) -> list[_Live]:
        return [live for live in self._running if live.spec.role is role]

    def _plan(self, at: int) -> tuple[SlotPlan, list[tuple[_Live, int | None]]]:
        """This slot's plan and the faults that acted, each with the sequence number it touched."""
        acted: list[tuple[_Live, int | None]] = []
        rated = next((live for live in reversed(self._running) if live.spec.kind == "fps"), None)
        fps = rated.spec.params["value"] if rated else None
        if rated:
            acted.append((rated, None))
        if stall := next(iter(self._running_as(Role.STALL)), None):
            acted.append((stall, None))
            return SlotPlan(emit=False, fps=fps), acted
        freeze = next(iter(self._running_as(Role.FREEZE)), None)
        if self._held is not None:
            self._kept, self._held = self._held, None
            shape = SlotPlan(release=True, keep=True)
        elif freeze and freeze.frozen is not None:
            acted.append((freeze, freeze.frozen))
            shape = SlotPlan(freeze=True, keep=True)
        elif freeze:  # its first slot writes the frame the following ones repeat
            shape = self._fresh(at, None, acted)
            freeze.frozen = self._kept
            acted.append((freeze, freeze.frozen))
        else:
            action = next((live for kind in _SEQUENCE_ORDER for live in self._running
                           if live.spec.kind == kind and live.chooses()), None)
            if action:
                acted.append((action, at))
            if action and action.spec.kind == "drop":
                return SlotPlan(drop=True, fps=fps), acted
            shape = self._fresh(at, action.spec.kind if action else None, acted)
        return replace(shape, delay_s=self._delay(fps or self.fps, acted), fps=fps), acted

    def _fresh(self, at: int, kind: str | None, acted: list[tuple[_Live, int | None]]) -> SlotPlan:
        """A slot that renders: plain, duplicated or reordered, with the content faults in force."""
        fresh = (at + 1) % SEQUENCE_WRAP if kind == "reorder" else at
        steps = []
        for live in self._running_as(Role.CONTENT):
            if live.step is not None and (self._kept is not None or not live.step.needs_previous):
                steps.append((live.step, int(live.rng.integers(2**63))))
                acted.append((live, fresh))
        if kind == "reorder":
            self._held = at
        self._kept = fresh
        return SlotPlan(keep=True, hold=kind == "reorder", copies=2 if kind == "duplicate" else 1,
                        corrupt=Corruption(self._fmt, self._size, tuple(steps)) if steps else None)

    def _delay(self, fps: Fraction, acted: list[tuple[_Live, int | None]]) -> float:
        """The jitter delay of a writing slot: the longest drawn, capped at half a period."""
        delay = 0.0
        for live in self._running:
            if live.spec.kind == "jitter":
                delay = max(delay, live.rng.uniform(0, live.spec.params["ms"] / 1000))
                acted.append((live, None))
        return min(delay, float(1 / fps) / 2)

    # -- outside the lock --------------------------------------------------

    def _notify(self, started: list[FaultHandle], ended: list[FaultHandle]) -> None:
        if self._listener is None:
            return
        for handle in started:
            self._listener.fault_started(handle)
        for handle in ended:
            self._listener.fault_ended(handle)
