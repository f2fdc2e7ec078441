"""What a stream of decoded frame codes says about its delivery.

Input: observations in arrival order, each a :class:`FrameCode` (or None for a
frame that did not decode), optionally paired with its receive time in ms of
the Unix wall clock: ``analyze((decode(f), received_ms) for f in frames)``.

Definitions (per camera; all sequence numbers are reported modulo 2**32):

- ``received``: frames of this camera that decoded, duplicates included.
- ``missing``: sequence numbers never seen that lie between the lowest and
  highest seen. Frames lost before the first or after the last one received
  cannot be told apart from frames never sent, so they are not reported.
- ``duplicated``: sequence numbers seen more than once; ``duplicate_frames``
  counts the extra copies.
- ``out_of_order``: in arrival order, frames whose sequence number is lower
  than one already seen and which were not seen before (a repeat is a
  duplicate, not a reordering).
- ``fps``: the sender's rate by its own clock: sequence numbers covered by
  the distinct frames received, divided by their send-time span.
- ``fps_received``: frames received per second of receive time.
- ``jitter_ms``: population standard deviation of the send interval per
  sequence step between consecutive distinct frames (sequence order): how
  evenly the sender paced its frames.
- ``jitter_ms_received``: population standard deviation of the intervals
  between consecutive arrivals: how evenly the frames arrived.
- ``latency_ms``: receive time minus send time of every frame with a receive
  time, as nearest-rank percentiles (p50, p95) and the maximum; the p-th
  percentile is the smallest latency with at least p % of latencies at or
  below it, so it is always an observed value.

Sequence numbers and send times wrap (2**32 frames, ``TIME_WRAP`` ms); both
are unwrapped in arrival order, which is right as long as consecutive
arrivals of a camera are less than half a wrap apart.

The whole-stream report adds ``undecodable`` (frames with no code) and counts
every frame in ``received``; its ``missing``, ``duplicated`` and
``out_of_order`` are always dicts from camera id to that camera's list, even
for a single camera, so their shape never depends on the input. Its ``fps``
values are the sum over cameras (the farm's total rate), its jitters the worst
camera's, and its latencies are pooled over all frames.
"""

from __future__ import annotations

import math
from itertools import pairwise
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from .code import SEQUENCE_WRAP, FrameCode, elapsed_ms

Observation = FrameCode | None | tuple[FrameCode | None, float | None]


@dataclass(frozen=True)
class Latency:
    """Latency percentiles in ms (nearest rank) and the maximum."""

    p50: float
    p95: float
    max: float

    @classmethod
    def of(cls, latencies: Sequence[float]) -> Latency | None:
        if not latencies:
            return None
        ordered = sorted(latencies)
        return cls(_nearest_rank(ordered, 50), _nearest_rank(ordered, 95), ordered[-1])


@dataclass(frozen=True)
class CameraReport:
    """Delivery of one camera's frames (see the module docstring for definitions)."""

    camera: int
    received: int
    missing: tuple[int, ...]
    duplicated: tuple[int, ...]
    duplicate_frames: int
    out_of_order: tuple[int, ...]
    fps: float | None
    fps_received: float | None
    jitter_ms: float | None
    jitter_ms_received: float | None
    latency_ms: Latency | None

    def to_json(self) -> dict:
        data = asdict(self)
        for name in ("missing", "duplicated", "out_of_order"):
            data[name] = list(data[name])
        return data


@dataclass(frozen=True)
class Report:
    """Delivery of a whole stream: totals plus one :class:`CameraReport` per camera."""

    received: int
    undecodable: int
    per_camera: dict[int, CameraReport]
    fps: float | None
    fps_received: float | None
    jitter_ms: float | None
    jitter_ms_received: float | None
    latency_ms: Latency | None

    @property
    def decoded(self) -> int:
        return self.received - self.undecodable

    @property
    def cameras(self) -> list[int]:
        return sorted(self.per_camera)

    @property
    def missing(self) -> dict[int, list[int]]:
        return {cam: list(r.missing) for cam, r in sorted(self.per_camera.items())}

    @property
    def duplicated(self) -> dict[int, list[int]]:
        return {cam: list(r.duplicated) for cam, r in sorted(self.per_camera.items())}

    @property
    def duplicate_frames(self) -> int:
        return sum(r.duplicate_frames for r in self.per_camera.values())

    @property
    def out_of_order(self) -> dict[int, list[int]]:
        return {cam: list(r.out_of_order) for cam, r in sorted(self.per_camera.items())}

    def to_json(self) -> dict:
        """A JSON-ready dict; camera ids become string keys, as JSON requires."""
        def by_camera(values: dict[int, list[int]]) -> dict[str, list[int]]:
            return {str(cam): value for cam, value in values.items()}

        return {
            "received": self.received, "decoded": self.decoded, "undecodable": self.undecodable,
            "cameras": self.cameras, "missing": by_camera(self.missing),
            "duplicated": by_camera(self.duplicated), "duplicate_frames": self.duplicate_frames,
            "out_of_order": by_camera(self.out_of_order),
            "fps": self.fps, "fps_received": self.fps_received,
            "jitter_ms": self.jitter_ms, "jitter_ms_received": self.jitter_ms_received,
            "latency_ms": asdict(self.latency_ms) if self.latency_ms else None,
            "per_camera": {str(cam): r.to_json() for cam, r in sorted(self.per_camera.items())},
        }


@dataclass(frozen=True)
class _Arrival:
    sequence: int  # unwrapped
    sent_ms: float  # unwrapped
    received_ms: float | None
    latency_ms: float | None


def analyze(observations: Iterable[Observation]) -> Report:
    """Report on ``observations`` (codes or ``(code, received_ms)`` pairs, in arrival order)."""
    received = undecodable = 0
    codes: dict[int, list[tuple[FrameCode, float | None]]] = defaultdict(list)
    for observation in observations:
        code, received_ms = observation if isinstance(observation, tuple) else (observation, None)
        received += 1
        if code is None:
            undecodable += 1
        else:
            codes[code.camera].append((code, received_ms))
    arrivals = {camera: _unwrap(seen) for camera, seen in codes.items()}
    per_camera = {camera: _camera_report(camera, seen) for camera, seen in arrivals.items()}
    reports = per_camera.values()
    latencies = [a.latency_ms for seen in arrivals.values() for a in seen if a.latency_ms is not None]
    return Report(
        received=received, undecodable=undecodable, per_camera=per_camera,
        fps=_sum_known(r.fps for r in reports),
        fps_received=_sum_known(r.fps_received for r in reports),
        jitter_ms=_max_known(r.jitter_ms for r in reports),
        jitter_ms_received=_max_known(r.jitter_ms_received for r in reports),
        latency_ms=Latency.of(latencies),
    )


def _unwrap(seen: list[tuple[FrameCode, float | None]]) -> list[_Arrival]:
    """One camera's codes with sequence and send time unwrapped, each relative to the previous arrival."""
    arrivals: list[_Arrival] = []
    last = seen[0][0]
    sequence, sent_ms = last.sequence, float(last.time_ms)
    for code, received_ms in seen:
        sequence += (code.sequence - last.sequence + SEQUENCE_WRAP // 2) % SEQUENCE_WRAP - SEQUENCE_WRAP // 2
        sent_ms += elapsed_ms(last.time_ms, code.time_ms)
        latency = code.latency_ms(received_ms) if received_ms is not None else None
        arrivals.append(_Arrival(sequence, sent_ms, received_ms, latency))
        last = code
    return arrivals


def _camera_report(camera: int, arrivals: list[_Arrival]) -> CameraReport:
    counts = Counter(a.sequence for a in arrivals)
    out_of_order: list[int] = []
    seen: set[int] = set()
    highest = arrivals[0].sequence
    for a in arrivals:
        if a.sequence not in seen and a.sequence < highest:
            out_of_order.append(a.sequence)
        seen.add(a.sequence)
        highest = max(highest, a.sequence)
    distinct = sorted(counts)
    missing = [s for low, high in pairwise(distinct) for s in range(low + 1, high)]
    first_sent: dict[int, float] = {}
    for a in arrivals:
        first_sent.setdefault(a.sequence, a.sent_ms)
    sent = [(s, first_sent[s]) for s in distinct]  # (sequence, send time) of each distinct frame
    timed = [a.received_ms for a in arrivals if a.received_ms is not None]
    return CameraReport(
        camera=camera,
        received=len(arrivals),
        missing=_wrapped(missing),
        duplicated=_wrapped(s for s in distinct if counts[s] > 1),
        duplicate_frames=sum(n - 1 for n in counts.values()),
        out_of_order=_wrapped(out_of_order),
        fps=_rate(sent[-1][0] - sent[0][0], sent[-1][1] - sent[0][1]),
        fps_received=_rate(len(timed) - 1, max(timed) - min(timed)) if timed else None,
        jitter_ms=_spread([(t1 - t0) / (s1 - s0) for (s0, t0), (s1, t1) in pairwise(sent)]),
        jitter_ms_received=_spread([t1 - t0 for t0, t1 in pairwise(timed)]),
        latency_ms=Latency.of([a.latency_ms for a in arrivals if a.latency_ms is not None]),
    )


def _wrapped(sequences: Iterable[int]) -> tuple[int, ...]:
    return tuple(s % SEQUENCE_WRAP for s in sequences)


def _rate(frames: int, span_ms: float) -> float | None:
    return frames * 1000 / span_ms if frames > 0 and span_ms > 0 else None


def _spread(intervals: list[float]) -> float | None:
    return statistics.pstdev(intervals) if intervals else None


def _nearest_rank(ordered: Sequence[float], percent: float) -> float:
    return ordered[max(math.ceil(percent / 100 * len(ordered)) - 1, 0)]


def _sum_known(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _max_known(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None
