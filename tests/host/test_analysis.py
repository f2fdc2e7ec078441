"""Sequence analysis finds exactly the drops, repeats and reorderings planted in a stream."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simfarm.frames.analysis import Latency, analyze
from simfarm.frames.code import SEQUENCE_WRAP, TIME_WRAP, FrameCode, decode
from test_code_encodes import X264, clip, transcode

WALL_MS = 1_712_345_678_000  # a full Unix time in ms, far beyond TIME_WRAP


def sent(camera: int, sequence: int, period_ms: int = 33) -> FrameCode:
    """The code camera ``camera`` stamps on frame ``sequence`` at a steady frame period."""
    return FrameCode(camera, sequence, WALL_MS + sequence * period_ms)


def test_clean_stream() -> None:
    report = analyze(sent(0, s) for s in range(100))
    assert (report.received, report.decoded, report.undecodable, report.cameras) == (100, 100, 0, [0])
    assert report.missing == report.duplicated == report.out_of_order == {0: []}
    assert report.fps == pytest.approx(1000 / 33) and report.jitter_ms == 0
    assert report.fps_received is report.jitter_ms_received is report.latency_ms is None


def test_planted_drops_duplicates_and_reorders() -> None:
    arrivals = [s for s in range(100) if s not in {5, 17, 18, 50}]
    arrivals.insert(arrivals.index(20) + 1, 20)
    arrivals.insert(arrivals.index(20) + 1, 20)
    arrivals.insert(arrivals.index(60) + 1, 60)
    a, b = arrivals.index(30), arrivals.index(31)
    arrivals[a], arrivals[b] = arrivals[b], arrivals[a]
    arrivals.remove(70)
    arrivals.insert(arrivals.index(75) + 1, 70)
    camera = analyze(sent(4, s) for s in arrivals).per_camera[4]
    assert camera.missing == (5, 17, 18, 50)
    assert camera.duplicated == (20, 60) and camera.duplicate_frames == 3
    assert camera.out_of_order == (30, 70)
    assert camera.received == len(arrivals)


def test_sequence_and_time_wrap() -> None:
    first = SEQUENCE_WRAP - 10
    # Send times cross a TIME_WRAP boundary within the same ten frames.
    codes = [FrameCode(1, first + i, 9 * TIME_WRAP - 150 + 33 * i) for i in range(20) if i not in {9, 10, 13}]
    codes.insert(5, codes[4])
    camera = analyze(codes).per_camera[1]
    assert camera.missing == (SEQUENCE_WRAP - 1, 0, 3)
    assert camera.duplicated == (SEQUENCE_WRAP - 6,) and camera.out_of_order == ()
    assert camera.fps == pytest.approx(1000 / 33) and camera.jitter_ms == pytest.approx(0)


def test_several_cameras_and_undecodable_frames() -> None:
    stream: list[FrameCode | None] = []
    for s in range(30):
        stream += [sent(0, s) if s != 7 else None, sent(3, s) if s not in {2, 3} else None]
    stream += [None, sent(3, 29)]
    report = analyze(stream)
    assert (report.received, report.undecodable, report.cameras) == (62, 4, [0, 3])
    assert report.missing == {0: [7], 3: [2, 3]}
    assert report.duplicated == {0: [], 3: [29]} and report.duplicate_frames == 1
    assert report.per_camera[0].received == 29 and report.per_camera[3].received == 29
    assert report.fps == pytest.approx(2 * 1000 / 33)


def test_latency_percentiles_are_nearest_rank() -> None:
    latencies = [10 * (i + 1) for i in range(20)]  # 10..200 ms
    order = np.random.default_rng(3).permutation(20)
    # Full receive times; send times straddle a TIME_WRAP boundary.
    base = 40 * TIME_WRAP - 300
    report = analyze((FrameCode(0, int(i), base + 33 * int(i)), base + 33 * int(i) + latencies[i]) for i in order)
    assert report.latency_ms == Latency(p50=100, p95=190, max=200)
    assert report.per_camera[0].latency_ms == report.latency_ms


def test_latency_of_few_values() -> None:
    assert Latency.of([7.5]) == Latency(7.5, 7.5, 7.5)
    assert Latency.of([4, 1, 3, 2]) == Latency(2, 4, 4)
    assert Latency.of([]) is None


def test_receive_rate_and_jitter() -> None:
    received = [WALL_MS + t for t in (0, 30, 70, 100, 140)]
    report = analyze((sent(0, s), r) for s, r in enumerate(received))
    assert report.fps_received == pytest.approx(4 * 1000 / 140)
    assert report.jitter_ms_received == pytest.approx(statistics.pstdev([30, 40, 30, 40]))


def test_send_jitter_is_per_sequence_step() -> None:
    # A frame lost in transit leaves a double interval that is not the sender's fault.
    report = analyze([FrameCode(0, 0, 0), FrameCode(0, 1, 33), FrameCode(0, 3, 99), FrameCode(0, 4, 140)])
    assert report.jitter_ms == pytest.approx(statistics.pstdev([33, 33, 41]))
    assert report.fps == pytest.approx(4 * 1000 / 140)


def test_empty_and_undecodable_only_streams() -> None:
    for stream in ([], [None, None]):
        report = analyze(stream)
        assert (report.received, report.cameras, report.missing) == (len(stream), [], {})
        assert report.fps is report.jitter_ms is report.latency_ms is None


def test_json_shape() -> None:
    report = analyze([(sent(2, 0), WALL_MS + 5), (sent(2, 2), WALL_MS + 71), (None, None)])
    data = json.loads(json.dumps(report.to_json()))
    assert data["missing"] == {"2": [1]} and data["cameras"] == [2] and data["undecodable"] == 1
    assert data["latency_ms"] == {"p50": 5, "p95": 5, "max": 5}
    assert data["per_camera"]["2"]["missing"] == [1] and data["per_camera"]["2"]["fps"] == pytest.approx(1000 / 33)


@st.composite
def plans(draw: st.DrawFn) -> tuple[int, list[int], set[int], set[int], set[int]]:
    """A stream (first sequence, arrival order) and the drops, duplicates and reorders planted in it."""
    first = draw(st.sampled_from([0, SEQUENCE_WRAP - 40, draw(st.integers(0, SEQUENCE_WRAP - 1))]))
    count = draw(st.integers(2, 80))
    drops = set(draw(st.lists(st.integers(1, count - 2), max_size=count // 3))) if count > 2 else set()
    survivors = [i for i in range(count) if i not in drops]
    # Swap non-overlapping adjacent survivors; the later-numbered one then arrives late.
    swaps = sorted(set(draw(st.lists(st.integers(0, len(survivors) - 2), max_size=len(survivors) // 4))))
    late = set()
    for i in swaps:
        if not {survivors[i], survivors[i + 1]} & late and i + 1 < len(survivors):
            survivors[i], survivors[i + 1] = survivors[i + 1], survivors[i]
            late.add(survivors[i + 1])
    dups = set(draw(st.lists(st.sampled_from(survivors), max_size=count // 4)))
    arrivals = [copy for s in survivors for copy in ([s, s] if s in dups else [s])]
    return first, arrivals, drops, dups, late


@settings(derandomize=True, database=None, deadline=None, max_examples=200)
@given(plan=plans())
def test_random_plans_are_found_exactly(plan: tuple[int, list[int], set[int], set[int], set[int]]) -> None:
    first, arrivals, drops, dups, late = plan
    camera = analyze(FrameCode(9, first + i, WALL_MS + 33 * i) for i in arrivals).per_camera[9]

    def wrapped(indices: set[int]) -> tuple[int, ...]:
        return tuple((first + i) % SEQUENCE_WRAP for i in sorted(indices))

    assert camera.missing == wrapped(drops)
    assert camera.duplicated == wrapped(dups) and camera.duplicate_frames == len(dups)
    assert sorted(camera.out_of_order) == sorted(wrapped(late))


def test_planted_faults_survive_a_real_x264_stream(tmp_path: Path) -> None:
    plan = [s for s in range(24) if s not in {4, 11, 12}]
    plan.insert(plan.index(8) + 1, 8)
    a, b = plan.index(15), plan.index(16)
    plan[a], plan[b] = plan[b], plan[a]
    first = SEQUENCE_WRAP - 12
    codes = [FrameCode(5, first + s, WALL_MS + 33 * s) for s in plan]
    frames = clip(codes, 320, 240)
    green = plan.index(7)
    frames[green] = np.zeros_like(frames[green])  # Y 0 everywhere: no code at all
    decoded = [decode(f) for f in transcode(frames, tmp_path, *X264)]
    receive_times = [WALL_MS + 33 * s + 40 + i for i, s in enumerate(plan)]  # latency 40 + arrival index
    report = analyze(zip(decoded, receive_times, strict=True))
    assert report.undecodable == 1 and report.cameras == [5]
    camera = report.per_camera[5]
    assert camera.missing == tuple((first + s) % SEQUENCE_WRAP for s in (4, 7, 11, 12))
    assert camera.duplicated == ((first + 8) % SEQUENCE_WRAP,) and camera.duplicate_frames == 1
    assert camera.out_of_order == ((first + 15) % SEQUENCE_WRAP,)
    # 21 latencies, 40..61 without the green frame's 46: nearest ranks 11 and 20.
    assert report.latency_ms == Latency(p50=51, p95=60, max=61)
