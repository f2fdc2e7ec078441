"""Frame-level faults driven by a producer loop in miniature.

The loop does what the producer does per slot: ask the FaultSet for a plan
at the slot's time, let a SlotWriter carry it out with frames stamped in
place by the real Stamper, and advance the sequence number by what the slot
used. Time is the slot clock (slot / fps), so durations are checked without
sleeping. Every frame that would reach the device is kept and decoded, and
what a consumer sees is compared with what the fault handles recorded.
"""

from __future__ import annotations

import io
import json
from fractions import Fraction
from functools import partial

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simfarm.errors import BadInput
from simfarm.faults import FaultLog, FaultSet, FaultSpec, Mark, Scenario, SlotWriter
from simfarm.faults.slots import NORMAL
from simfarm.frames import pixfmt
from simfarm.frames.analysis import analyze
from simfarm.frames.code import FrameCode, decode, strip_height
from simfarm.frames.stamp import Stamper, working_format
from simfarm.spec import PixelFormat, Size

SIZE = Size(320, 240)
FPS = Fraction(30)
CAMERA = 3
RING = 5
WALL_ORIGIN = 1_700_000_000.0
GREY, YUYV, NV12, MJPEG = PixelFormat.GREY, PixelFormat.YUYV, PixelFormat.NV12, PixelFormat.MJPEG


def _ring(fmt: PixelFormat) -> list[np.ndarray]:
    """Pictures that change from slot to slot below the strip, so tears and repeats show."""
    y, x = np.mgrid[0:SIZE.height, 0:SIZE.width]
    return [pixfmt.from_rgb(np.stack([(x + 40 * i) % 256, (2 * y + 30 * i) % 256, (x + y) % 256],
                                     axis=-1).astype(np.uint8), working_format(fmt))
            for i in range(RING)]


class Loop:
    """One camera's producer loop: slot clock, ring, stamper, FaultSet, SlotWriter; keeps every frame written."""

    def __init__(self, fmt: PixelFormat = GREY, *, camera: int = CAMERA, seed: int = 0,
                 listener: FaultLog | None = None) -> None:
        self.fmt, self.camera = fmt, camera
        self.stamper = Stamper(fmt, SIZE)
        self.ring = _ring(fmt)
        self.slot = self.sequence = 0
        self.faults = FaultSet(camera, fmt, SIZE, FPS, seed=seed,
                               wall_clock=lambda: WALL_ORIGIN + self.now, listener=listener)
        self.out: list[np.ndarray] = []
        self.delays: list[float] = []
        self.plans = []
        self.writer = SlotWriter(lambda frame: self.out.append(frame.copy()), self.delays.append)

    @property
    def now(self) -> float:
        return float(self.slot / FPS)

    def run(self, slots: int) -> Loop:
        for _ in range(slots):
            plan = self.faults.on_slot(self.sequence, self.now)
            self.sequence += self.writer.serve(plan, self.sequence, partial(self._render, self.slot, self.now))
            self.plans.append(plan)
            self.slot += 1
        return self

    def _render(self, index: int, now: float, sequence: int) -> np.ndarray:
        code = FrameCode(self.camera, sequence, int(now * 1000))
        return self.stamper.stamp(self.ring[index % RING], code, frame_index=index, wall_time=now)

    def codes(self) -> list[FrameCode | None]:
        return [_decode(frame, self.fmt) for frame in self.out]

    def sequences(self) -> list[int | None]:
        return [code.sequence if code else None for code in self.codes()]


def _decode(frame: np.ndarray, fmt: PixelFormat) -> FrameCode | None:
    try:
        return decode(pixfmt.luma(frame, fmt, SIZE))
    except ValueError:  # an MJPEG frame damaged beyond decoding
        return None


def _add(loop: Loop, text: str, duration: object = None, **options: object):
    return loop.faults.add(FaultSpec.parse(text, duration=duration), **options)


def test_without_faults_every_slot_writes_the_next_sequence_number():
    loop = Loop().run(20)
    assert loop.sequences() == list(range(20))
    assert all(plan is NORMAL for plan in loop.plans)


def test_drop_frames_ten_leaves_exactly_ten_missing_numbers_and_records_them():
    loop = Loop().run(5)
    handle = _add(loop, "drop frames=10")
    loop.run(30)
    seen = loop.sequences()
    missing = sorted(set(range(max(seen) + 1)) - set(seen))
    assert missing == handle.touched == list(range(5, 15))
    assert analyze(loop.codes()).missing == {CAMERA: missing}
    assert handle.frames == 10 and handle.end_reason == "frames"
    assert handle.started == Mark(WALL_ORIGIN + 5 / 30, 5)
    assert handle.ended == Mark(WALL_ORIGIN + 14 / 30, 15)
    assert loop.faults.active() == [] and len(loop.out) == 25


def test_duplicate_writes_the_same_bytes_twice():
    loop = Loop().run(4)
    handle = _add(loop, "duplicate frames=3")
    loop.run(6)
    assert loop.sequences() == [0, 1, 2, 3, 4, 4, 5, 5, 6, 6, 7, 8, 9]
    assert handle.touched == analyze(loop.codes()).duplicated[CAMERA] == [4, 5, 6]
    assert all(np.array_equal(loop.out[i], loop.out[i + 1]) for i in (4, 6, 8))


def test_freeze_repeats_its_first_frame_for_its_duration_and_loses_nothing():
    loop = Loop().run(10)
    handle = _add(loop, "freeze", "500ms")
    loop.run(20)
    assert loop.sequences() == list(range(10)) + [10] * 15 + list(range(11, 16))
    assert all(np.array_equal(frame, loop.out[10]) for frame in loop.out[11:25])
    assert handle.touched == [10] and handle.frames == 15 and handle.end_reason == "duration"
    assert handle.started == Mark(WALL_ORIGIN + 10 / 30, 10)
    assert handle.ended == Mark(WALL_ORIGIN + 25 / 30, 11)
    assert all(plan is NORMAL for plan in loop.plans[:10] + loop.plans[-4:])  # no copies without faults


def test_reorder_swaps_neighbours_at_the_normal_pace():
    loop = Loop().run(3)
    handle = _add(loop, "reorder frames=2")
    loop.run(7)
    assert loop.sequences() == [0, 1, 2, 4, 3, 6, 5, 7, 8, 9]
    report = analyze(loop.codes())
    assert handle.touched == report.out_of_order[CAMERA] == [3, 5]
    assert report.missing == {CAMERA: []} and report.duplicated == {CAMERA: []}
    assert [plan.writes for plan in loop.plans] == [1] * 10  # one frame per slot: nothing bunches


def test_stall_writes_nothing_and_resumes_without_a_gap():
    loop = Loop().run(2)
    handle = _add(loop, "stall", "1s")
    loop.run(40)
    assert loop.sequences() == list(range(12))
    assert [plan.emit for plan in loop.plans[2:32]] == [False] * 30 and loop.plans[32].emit
    assert handle.frames == 30 and handle.touched == []
    assert handle.started.sequence == handle.ended.sequence == 2


def test_a_duration_covers_an_exact_number_of_slots_and_a_start_waits_for_its_slot():
    loop = Loop()
    handle = _add(loop, "drop", "2s", start=1.0)
    loop.run(120)
    assert handle.touched == list(range(30, 90))
    assert (handle.started.wall, handle.ended.wall) == (WALL_ORIGIN + 1, WALL_ORIGIN + 3)


@pytest.mark.parametrize("text", ["drop rate=0.3", "duplicate rate=0.3", "reorder rate=0.3"])
def test_probabilistic_faults_repeat_with_the_seed_and_differ_across_seeds(text):
    def touched(seed: int, fault_id: str | None = None) -> list[int]:
        loop = Loop(seed=seed)
        handle = _add(loop, text, "3s", fault_id=fault_id)
        loop.run(100)
        return handle.touched

    first = touched(1)
    assert first == touched(1)
    assert first != touched(2) and first != touched(1, "other")
    assert 10 <= len(first) <= 40


def test_clearing_ends_a_fault_at_the_next_sequence_number():
    loop = Loop().run(2)
    handle = _add(loop, "black")
    pending = _add(loop, "drop", start=100.0)
    loop.run(5)
    handle.clear()
    pending.clear()
    loop.run(3)
    assert loop.sequences() == [0, 1, None, None, None, None, None, 7, 8, 9]
    assert handle.touched == [2, 3, 4, 5, 6]
    assert (handle.end_reason, handle.ended.sequence) == ("cleared", 7)
    assert pending.started is None and pending.end_reason == "cleared"
    handle.clear()  # a second clear changes nothing
    assert handle.ended.sequence == 7 and loop.faults.active() == []


def test_jitter_delays_writes_within_its_bound_and_half_a_period():
    def delays(text: str, seed: int) -> list[float]:
        loop = Loop(seed=seed)
        _add(loop, text, "1s")
        loop.run(40)
        assert loop.sequences() == list(range(40))
        return loop.delays

    small = delays("jitter ms=10", 1)
    assert len(small) == 30 and all(0 <= d <= 0.010 for d in small)
    assert small == delays("jitter ms=10", 1) != delays("jitter ms=10", 2)
    assert max(delays("jitter 500", 1)) == pytest.approx(1 / 60)  # capped: frames never bunch


def test_jitter_does_not_act_on_dropped_or_stalled_slots():
    loop = Loop()
    jitter = _add(loop, "jitter 5")
    _add(loop, "drop frames=3")
    loop.run(6)
    assert jitter.frames == 3 and len(loop.delays) == 3


def test_fps_changes_the_pacing_for_its_slots_then_returns_to_the_camera_rate():
    loop = Loop().run(1)
    handle = _add(loop, "fps 15 frames=5")
    loop.run(4)
    _add(loop, "stall frames=2")
    loop.run(3)
    assert [plan.fps for plan in loop.plans] == [None] + [Fraction(15)] * 5 + [None] * 2
    assert handle.frames == 5 and handle.end_reason == "frames"


@pytest.mark.parametrize("fmt", [GREY, YUYV, NV12, MJPEG])
@pytest.mark.parametrize("kind", ["black", "green"])
def test_blanked_frames_carry_no_code_and_the_others_stay_exact(fmt, kind):
    clean = Loop(fmt).run(8).codes()
    loop = Loop(fmt).run(3)
    handle = _add(loop, f"{kind} frames=2")
    loop.run(5)
    codes = loop.codes()
    assert handle.touched == [3, 4]
    assert codes[3] is None and codes[4] is None
    assert [c for i, c in enumerate(codes) if i not in (3, 4)] == [c for i, c in enumerate(clean) if i not in (3, 4)]
    assert None not in clean


@settings(max_examples=20, deadline=None, derandomize=True)
@given(fmt=st.sampled_from([GREY, YUYV, MJPEG]), seed=st.integers(0, 2**32),
       fault=st.one_of(st.floats(0.02, 1).map(lambda a: f"noise amount={a}"),
                       st.floats(1e-4, 0.5).map(lambda r: f"bitflip rate={r}")))
def test_damaged_frames_decode_exactly_or_not_at_all(fmt, seed, fault):
    clean = Loop(fmt).run(6)
    loop = Loop(fmt, seed=seed).run(2)
    handle = _add(loop, f"{fault} frames=3")
    loop.run(4)
    assert handle.touched == [2, 3, 4]
    for index, (frame, code, expected) in enumerate(zip(loop.out, loop.codes(), clean.codes(), strict=True)):
        if index in handle.touched:
            assert code in (None, expected)
            assert not np.array_equal(frame, clean.out[index])
        else:
            assert code == expected


@pytest.mark.parametrize("fmt", [GREY, YUYV])
def test_strong_noise_defeats_the_code_and_mild_noise_leaves_it_exact(fmt):
    clean = Loop(fmt).run(11).codes()
    loop = Loop(fmt).run(1)
    _add(loop, "noise 1 frames=5")
    loop.run(5)
    _add(loop, "noise 0.05 frames=5")
    loop.run(5)
    assert loop.codes() == clean[:1] + [None] * 5 + clean[6:]


def _rows_equal(a: np.ndarray, b: np.ndarray, fmt: PixelFormat) -> np.ndarray:
    """Per picture row: are the RGB rows identical?"""
    return (pixfmt.to_rgb(a, fmt, SIZE) == pixfmt.to_rgb(b, fmt, SIZE)).all(axis=(1, 2))


def _luma(frame: np.ndarray, fmt: PixelFormat) -> np.ndarray:
    return pixfmt.luma(frame, fmt, SIZE)


@pytest.mark.parametrize("fmt", [GREY, YUYV, NV12])
@pytest.mark.parametrize("row", [120, 121])
def test_a_tear_splices_the_previous_frame_below_its_row_only(fmt, row):
    clean = Loop(fmt).run(6)
    loop = Loop(fmt)
    # No copy of the frame before it was kept: the tear starts on its second slot.
    handle = _add(loop, f"tear {row} frames=2")
    loop.run(6)
    assert handle.touched == [1, 2]
    for index in (1, 2):
        torn, before = loop.out[index], loop.out[index - 1]
        assert _rows_equal(torn, clean.out[index], fmt)[:row].all()
        assert np.array_equal(_luma(torn, fmt)[row:], _luma(before, fmt)[row:])
        assert not np.array_equal(_luma(torn, fmt)[row:], _luma(clean.out[index], fmt)[row:])
    assert loop.codes() == clean.codes()


@pytest.mark.parametrize("fmt", [GREY, YUYV, NV12])
@pytest.mark.parametrize("style", ["garbage", "shift"])
def test_a_stripe_changes_only_its_band(fmt, style):
    first, last = 101, 140
    clean = Loop(fmt).run(3)
    loop = Loop(fmt).run(1)
    _add(loop, f"stripe rows={first}-{last} style={style} frames=1")
    loop.run(2)
    same = _rows_equal(loop.out[1], clean.out[1], fmt)
    assert same[:first].all() and same[last + 1:].all() and not same[first:last + 1].any()
    band = _luma(loop.out[1], fmt)[first:last + 1]
    if style == "shift":
        assert np.array_equal(band, np.roll(_luma(clean.out[1], fmt)[first:last + 1], SIZE.width // 4, axis=1))
    assert loop.codes() == clean.codes()


def test_a_stripe_over_the_strip_destroys_the_code():
    loop = Loop()
    _add(loop, f"stripe rows=0-{strip_height(SIZE.width) - 1} frames=1")
    assert loop.run(2).sequences() == [None, 1]


def test_mjpeg_pixel_faults_recompress_and_keep_the_code_when_it_is_untouched():
    clean = Loop(MJPEG).run(4)
    loop = Loop(MJPEG).run(1)
    tear = _add(loop, "tear 120 frames=1")
    _add(loop, "stripe 200-219 frames=1")
    loop.run(3)
    assert loop.codes() == clean.codes()
    index = tear.touched[0]
    assert loop.out[index][:2].tolist() == [0xFF, 0xD8]  # still a JPEG
    torn = pixfmt.to_rgb(loop.out[index], MJPEG, SIZE).astype(int)
    previous = pixfmt.to_rgb(loop.out[index - 1], MJPEG, SIZE).astype(int)
    assert np.abs(torn[150:190] - previous[150:190]).mean() < 4  # below the tear: the previous picture
    assert np.abs(torn[60:100] - previous[60:100]).mean() > 20  # above it: its own


def test_faults_combine_in_their_documented_order():
    loop = Loop().run(2)
    _add(loop, "duplicate frames=1")
    drop = _add(loop, "drop frames=1")
    black = _add(loop, "black frames=1")
    loop.run(3)
    # slot 2: drop wins over duplicate, and black skips a frame never written;
    # slot 3: the duplicate is of a black frame.
    assert loop.sequences() == [0, 1, None, None, 4]
    assert drop.touched == [2] and black.touched == [3]
    assert np.array_equal(loop.out[2], loop.out[3])


def test_device_level_faults_and_rows_outside_the_frame_are_refused():
    faults = Loop().faults
    with pytest.raises(ValueError, match="supervisor"):
        faults.add(FaultSpec.parse("unplug"))
    with pytest.raises(BadInput, match=r"tear row 240 is outside the 320x240 frame \(1\.\.239\)"):
        faults.add(FaultSpec.parse("tear 240"))
    with pytest.raises(BadInput, match="stripe last row 300"):
        faults.add(FaultSpec.parse("stripe 10-300"))
    faults.add(FaultSpec.parse("noise"), fault_id="x")
    with pytest.raises(BadInput, match="already has a fault 'x'"):
        faults.add(FaultSpec.parse("noise"), fault_id="x")


def test_a_format_change_rebuilds_content_faults_and_ends_those_that_no_longer_fit():
    loop = Loop().run(2)
    fits, misfit = _add(loop, "noise"), _add(loop, "tear 200")
    loop.faults.set_format(YUYV, Size(160, 120))
    assert misfit.end_reason == "format" and loop.faults.active() == [fits]


def test_the_log_has_a_start_and_an_end_line_per_fault_with_exact_sequences():
    stream = io.StringIO()
    loop = Loop(listener=FaultLog(stream)).run(3)
    _add(loop, "drop frames=4", fault_id="d")
    _add(loop, "black", "100ms", start=0.5)
    loop.run(30)
    loop.faults.close()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["event"], line["fault"]) for line in lines] == [
        ("start", "d"), ("end", "d"), ("start", "c3.1"), ("end", "c3.1")]
    assert lines[1] | {"wall": None} == {
        "event": "end", "fault": "d", "camera": CAMERA, "kind": "drop", "params": {"frames": 4},
        "wall": None, "sequence": 7, "reason": "frames", "frames": 4, "touched": [[3, 6]],
        "started": {"wall": WALL_ORIGIN + 0.1, "sequence": 3}}
    assert lines[3]["touched"] == [[15, 17]] and lines[3]["for_s"] == 0.1


_SCENARIO = """\
seed: 11
timeline:
  - at: 200ms
    camera: random
    every: 500ms
    repeat: 4
    for: 300ms
    choice:
      - {fault: drop rate=0.5, weight: 2}
      - {fault: noise 0.5}
      - {fault: reorder rate=0.5}
  - at: 1s
    camera: all
    fault: {kind: duplicate, rate: 0.3, frames: 4}
  - at: 2s
    camera: 1
    fault: freeze frames=5
  - at: 2.5s
    camera: 0
    fault: unplug
"""


def test_a_scenario_run_logs_identically_with_the_same_seed(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(_SCENARIO)

    def run(seed: int) -> str:
        stream = io.StringIO()
        log = FaultLog(stream)
        loops = {camera: Loop(camera=camera, seed=seed, listener=log) for camera in (0, 1)}
        for event in Scenario.load(path).schedule([0, 1], seed):
            if not event.spec.device_level:  # the supervisor's part
                loops[event.camera].faults.add(event.spec, fault_id=event.fault_id, start=event.time_s)
        for _ in range(100):
            for loop in loops.values():
                loop.run(1)
        for loop in loops.values():
            loop.faults.close()
        return stream.getvalue()

    first = run(11)
    assert first == run(11)
    assert first != run(12)
    assert len(first.splitlines()) == 2 * (4 + 2 + 1)
