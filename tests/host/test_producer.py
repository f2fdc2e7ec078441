"""The numpy writer: paced, stamped whole frames into a pipe, checked by decoding them."""

from __future__ import annotations

import os
import threading
from fractions import Fraction

import numpy as np
import pytest

from simfarm.frames import pixfmt
from simfarm.frames.analysis import analyze
from simfarm.frames.code import decode
from simfarm.patterns import PatternLibrary
from simfarm.producers.build import build_producer
from simfarm.producers.pacing import Pacer, spread_phase
from simfarm.producers.sinks import FdSink
from simfarm.spec import CameraSpec


class FakeClock:
    """A clock the test moves by hand; the pacer's sleeps advance it."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_pacer_uses_absolute_deadlines_and_skips_rather_than_bunches() -> None:
    clock = FakeClock()
    pacer = Pacer(Fraction(30), clock=clock, sleep=clock.sleep)
    slots = [pacer.next_slot() for _ in range(3)]
    assert [s.index for s in slots] == [0, 1, 2]
    assert slots[2].deadline == pytest.approx(100.0 + 2 / 30)
    assert not any(s.late for s in slots)
    clock.now += 0.11  # stall: slots 3 and 4 pass unserved
    late = pacer.next_slot()
    assert late.late and late.skipped == 2 and late.index == 5
    follow = pacer.next_slot()  # back on the original grid: no drift, no burst
    assert follow.index == 6 and follow.deadline == pytest.approx(100.0 + 6 / 30)


def test_pacer_does_not_drift_over_an_hour_of_slots() -> None:
    clock = FakeClock()
    pacer = Pacer(Fraction(30000, 1001), clock=clock, sleep=clock.sleep)
    for _ in range(30 * 3600):
        slot = pacer.next_slot()
    assert slot.deadline == pytest.approx(100.0 + (30 * 3600 - 1) * 1001 / 30000, abs=1e-6)


def test_a_phased_pacer_puts_its_slots_on_the_clocks_grid_from_the_next_point() -> None:
    clock, period = FakeClock(), 1 / 30
    pacer = Pacer(Fraction(30), phase=0.25, origin=42.5, clock=clock, sleep=clock.sleep)
    slots = [pacer.next_slot() for _ in range(4)]
    assert [s.index for s in slots] == [0, 1, 2, 3] and not any(s.late for s in slots)
    assert 100.0 < slots[0].deadline <= 100.0 + period
    for slot in slots:
        grid_points = (slot.deadline - 42.5 - 0.25 * period) / period
        assert grid_points == pytest.approx(round(grid_points), abs=1e-6)


def test_a_pacers_first_deadline_is_known_before_its_first_slot_and_kept() -> None:
    clock = FakeClock()
    pacer = Pacer(Fraction(30), phase=0.25, origin=42.5, clock=clock, sleep=clock.sleep)
    first = pacer.first_deadline()  # a resumed producer counts the slots it missed up to here
    clock.now += 0.01  # time passes before the first wait: the first slot stays where it was fixed
    assert pacer.first_deadline() == first and pacer.next_slot().deadline == first


def test_cameras_phases_are_spread_over_the_period_for_any_number_of_cameras() -> None:
    for cameras in (2, 3, 5, 8, 16, 64, 256):
        phases = sorted(spread_phase(camera) for camera in range(cameras))
        gaps = [b - a for a, b in zip(phases, phases[1:])] + [1 - phases[-1] + phases[0]]
        # Evenly would be 1/N apart; no two cameras' slots fall close together.
        assert min(gaps) > 0.4 / cameras, cameras


# Pacing is held for ten seconds in one format; the others check stamping and framing.
@pytest.mark.parametrize("fmt, seconds", [("YUYV", 10), ("NV12", 2), ("MJPEG", 2)])
def test_writer_holds_pace_and_every_frame_decodes(fmt: str, seconds: int) -> None:
    spec = CameraSpec.parse(size="320x240", fps=30, format=fmt, pattern="ball")
    read_fd, write_fd = os.pipe()
    producer = build_producer(5, spec, FdSink(write_fd, owned=True), PatternLibrary())
    frames: list[bytes] = []
    size = None if fmt == "MJPEG" else pixfmt.frame_bytes(spec.format, spec.size)

    def drain() -> None:
        with os.fdopen(read_fd, "rb") as pipe:
            data = pipe.read()
        if size:
            frames.extend(data[i:i + size] for i in range(0, len(data), size))
        else:  # split JPEGs at their start-of-image markers
            starts = [i for i in range(len(data) - 2) if data[i:i + 3] == b"\xff\xd8\xff"]
            frames.extend(data[a:b] for a, b in zip(starts, starts[1:] + [len(data)]))

    reader = threading.Thread(target=drain)
    reader.start()
    producer.start()
    stopped = threading.Event()
    stopped.wait(seconds)  # the stream's own length: the pacing over it is what is under test
    producer.stop()
    stats = producer.stats()
    reader.join()

    codes = [decode(pixfmt.luma(np.frombuffer(f, np.uint8), spec.format, spec.size)) for f in frames]
    report = analyze(codes)
    assert report.undecodable == 0 and report.cameras == [5]
    cam = report.per_camera[5]
    assert cam.missing == () and cam.duplicated == () and cam.out_of_order == ()
    assert len(frames) == stats.written
    # Slots come from absolute deadlines, so written + skipped slots always
    # add up to the stream's length, and the rate seen in the codes is 30 fps
    # less exactly the slots a loaded machine made the writer skip.
    assert abs(stats.written + stats.dropped - 30 * seconds) <= 2
    assert cam.fps == pytest.approx(30 * stats.written / (stats.written + stats.dropped), rel=0.03)


def test_ffmpeg_producer_frames_carry_codes_and_ffmpeg_content() -> None:
    spec = CameraSpec.parse(size="320x240", fps=30, format="YUYV", producer="ffmpeg", source="testsrc2")
    read_fd, write_fd = os.pipe()
    producer = build_producer(2, spec, FdSink(write_fd, owned=True), PatternLibrary())
    size = pixfmt.frame_bytes(spec.format, spec.size)
    producer.start()
    with os.fdopen(read_fd, "rb") as pipe:
        frames = [pipe.read(size) for _ in range(20)]
    producer.stop()
    lumas = [pixfmt.luma(np.frombuffer(f, np.uint8), spec.format, spec.size) for f in frames]
    codes = [decode(luma) for luma in lumas]
    assert [c.sequence for c in codes] == list(range(20)) and {c.camera for c in codes} == {2}
    # testsrc2 moves: the picture below the strip changes from frame to frame
    below = slice(40, None)
    assert np.abs(lumas[0][below].astype(int) - lumas[10][below].astype(int)).mean() > 1
