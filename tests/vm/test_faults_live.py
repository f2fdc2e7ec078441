"""Issue 4 in the kernel: faults on a running farm, checked from frames read back off the node.

Every frame-level fault is checked against what a consumer observes (frame
codes read with read(2) and `analyze`) and against the sequence numbers the
farm's fault log names. Device-level faults are checked with udev events.
Runs inside `simfarm vm`; one small farm (320x240 @ 15 fps) serves the module.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import pyudev

from simfarm import Farm
from simfarm.cli import main
from simfarm.devices.v4l2 import capture, nodes
from simfarm.errors import EnvironmentProblem
from simfarm.farm.scenario_run import comparable
from simfarm.faults import read_log
from simfarm.frames.analysis import analyze
from simfarm.frames.code import FrameCode, decode
from simfarm.spec import CameraSpec

from kernel_helpers import module_farm, simfarm, wait_until

pytestmark = [pytest.mark.hil, pytest.mark.usefixtures("in_farm_state")]

FPS = 15
SMALL = CameraSpec.parse(size="320x240", fps=FPS)


class Reader:
    """Reads a node with read(2) in a thread, keeping each frame's code and arrival time (ms).

    Decoding is left until the end, so the reader keeps up under emulation.
    """

    def __init__(self, device: str) -> None:
        self.device = device
        self._lumas: list = []
        self.error: Exception | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        wait_until(lambda: len(self._lumas) >= 3, what=f"frames from {device}")

    def _run(self) -> None:
        try:
            for frame in capture.read_luma(self.device, count=10**6, timeout=10):
                self._lumas.append((frame.luma.copy(), frame.received_ms))
                if self._stop.is_set():
                    return
        except (OSError, ValueError, EnvironmentProblem) as exc:  # kept for the test to judge
            self.error = exc

    def read_for(self, frames: int) -> None:
        """Wait until ``frames`` more frames have arrived."""
        target = len(self._lumas) + frames
        wait_until(lambda: len(self._lumas) >= target, what=f"{frames} frames")

    def stop(self) -> list[tuple[FrameCode | None, float]]:
        self._stop.set()
        self._thread.join(15)
        return [(decode(luma), received) for luma, received in self._lumas]


def fault_lines(farm: Farm, fault_id: str) -> dict:
    return {line["event"]: line for line in read_log(farm.fault_log) if line["fault"] == fault_id}


def touched(line: dict) -> list[int]:
    return [seq for first, last in line["touched"] for seq in range(first, last + 1)]


def ended(farm: Farm, fault_id: str) -> Callable[[], bool]:
    return lambda: "end" in fault_lines(farm, fault_id)


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    with module_farm(tmp_path_factory, 2, name="flt", spec=SMALL) as made:
        yield made


def observe(farm: Farm, camera: int, kind: str, frames_after: int, **params: object):
    """Inject a fault on a camera being read, read until it has ended and ``frames_after`` more came."""
    cam = farm.reload().cameras[camera]
    reader = Reader(cam.device)
    fault = cam.inject(kind, **params)
    wait_until(ended(farm, fault.id), what=f"the end of {fault.id}")
    reader.read_for(frames_after)
    frames = reader.stop()
    return fault_lines(farm, fault.id), [code for code, _ in frames], [ms for _, ms in frames]


def test_drop_ten_frames_leaves_exactly_the_ten_the_log_names_missing(farm: Farm) -> None:
    log, codes, _ = observe(farm, 0, "drop", 5, frames=10)
    report = analyze(codes)
    assert len(touched(log["end"])) == 10
    assert report.missing == {0: touched(log["end"])}
    assert report.duplicated == {0: []} and report.undecodable == 0


def test_freeze_for_a_second_repeats_one_code_a_seconds_worth_of_frames(farm: Farm) -> None:
    log, codes, _ = observe(farm, 0, "freeze", 5, for_="1s")
    runs: dict[FrameCode, int] = {}
    for code in filter(None, codes):
        runs[code] = runs.get(code, 0) + 1
    frozen, repeats = max(runs.items(), key=lambda item: item[1])
    assert touched(log["end"]) == [frozen.sequence]
    assert FPS - 2 <= repeats <= FPS + 1, repeats
    assert analyze(codes).missing == {0: []}


def test_duplicate_repeats_exactly_the_frames_the_log_names(farm: Farm) -> None:
    log, codes, _ = observe(farm, 1, "duplicate", 5, frames=5)
    assert analyze(codes).duplicated == {1: touched(log["end"])} and len(touched(log["end"])) == 5


def test_stall_brings_no_new_frames_then_resumes_without_a_gap(farm: Farm) -> None:
    _, codes, arrivals = observe(farm, 1, "stall", 5, for_="1500ms")
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert max(gaps) >= 1200, max(gaps)
    assert analyze(codes).missing == {1: []}


def test_black_frames_are_undecodable_and_exactly_the_ones_named(farm: Farm) -> None:
    log, codes, _ = observe(farm, 0, "black", 5, frames=8)
    report = analyze(codes)
    assert report.undecodable == 8 and report.missing == {0: touched(log["end"])}


@pytest.mark.parametrize("kind, params", [("noise", {"amount": 1.0}), ("bitflip", {"rate": 0.3})])
def test_noise_and_bitflips_make_codes_fail_never_lie(farm: Farm, kind: str, params: dict) -> None:
    log, codes, _ = observe(farm, 1, kind, 5, frames=8, **params)
    report = analyze(codes)
    assert report.undecodable > 0
    assert set(report.missing[1]) <= set(touched(log["end"]))  # the rest decode exactly
    assert report.duplicated == {1: []} and report.out_of_order == {1: []}


@pytest.fixture
def uevents() -> Callable[[str, float], tuple[str, str]]:
    monitor = pyudev.Monitor.from_netlink(pyudev.Context())
    monitor.filter_by("video4linux")
    monitor.start()

    def next_event(action: str, timeout: float = 30.0) -> tuple[str, str]:
        deadline = time.monotonic() + timeout
        while (dev := monitor.poll(timeout=max(0.0, deadline - time.monotonic()))) is not None:
            if dev.action == action:
                return dev.device_node, dev.attributes.asstring("name") if action == "add" else ""
        raise AssertionError(f"no udev {action} event")
    return next_event


def test_unplug_removes_the_node_and_replug_adds_it_with_the_same_label(farm: Farm, uevents) -> None:
    cam = farm.reload().cameras[0]
    before = Reader(cam.device)
    before.read_for(2)
    last = max(code.sequence for code, _ in before.stop() if code)
    fault = cam.inject("unplug")
    assert uevents("remove")[0] == cam.device and not os.path.exists(cam.device)
    assert cam.stats()["state"] == "unplugged" and cam.faults()[0]["fault"] == fault.id
    replugged = cam.inject("replug")
    device, label = uevents("add")
    assert replugged.info["device"] == device and label == cam.label
    again = farm.reload().cameras[0]
    assert again.device == device and nodes.card_label(again.number) == cam.label
    reader = Reader(device)
    codes = [code for code, _ in reader.stop() if code]
    assert codes and codes[0].camera == 0 and codes[0].sequence > last  # numbering carries on
    assert fault_lines(farm, fault.id)["end"]["reason"] == "replugged"


def test_unplug_waits_for_a_reader_and_names_it(farm: Farm, uevents) -> None:
    cam = farm.reload().cameras[1]
    holder = os.open(cam.device, os.O_RDONLY)
    try:
        with pytest.raises(EnvironmentProblem, match=str(os.getpid())):
            cam.inject("unplug", timeout=0.5)
    finally:
        os.close(holder)
    wait_until(lambda: cam.stats()["state"] == "streaming", what="camera 1 streaming again")
    holder = os.open(cam.device, os.O_RDONLY)
    replies: list = []
    thread = threading.Thread(target=lambda: replies.append(cam.inject("unplug", timeout=60)))
    thread.start()
    wait_until(lambda: cam.stats()["held_by"] == [os.getpid()], what="the unplug to wait for this reader")
    os.close(holder)
    thread.join(60)
    assert replies and replies[0].info["held_by"] == [os.getpid()]
    assert uevents("remove")[0] == cam.device
    replies[0].clear()  # clearing an unplug plugs the camera in again
    assert uevents("add")[1] == cam.label


REPEAT = Path(__file__).parents[1] / "data" / "repeat.yaml"


def test_a_scenario_run_twice_with_one_seed_logs_the_same_sequence_numbers(farm: Farm, tmp_path: Path) -> None:
    def run(log: Path) -> list[dict]:
        farm.run_scenario(REPEAT, seed=9, log=log)
        wait_until(lambda: read_log(log) and read_log(log)[-1]["event"] == "done", what="the run log to end")
        return comparable(read_log(log))

    first, second = run(tmp_path / "1.jsonl"), run(tmp_path / "2.jsonl")
    assert first == second and len(first) == 2 * (1 + 2 + 1)


@pytest.mark.parametrize("kind, value, shape", [("resize", {"size": "352x288"}, (288, 352)),
                                               ("reformat", {"format": "GREY"}, (240, 320)),
                                               ("reformat", {"format": "MJPEG"}, (240, 320))])
def test_renegotiation_changes_the_format_and_clearing_switches_back(farm: Farm, kind: str, value: dict,
                                                                     shape: tuple[int, int]) -> None:
    cam = farm.reload().cameras[0]
    with cam.inject(kind, **value):
        frame = next(capture.read_luma(cam.device, count=1))
        assert frame.luma.shape == shape and decode(frame.luma).camera == 0
    assert next(capture.read_luma(cam.device, count=1)).luma.shape == (240, 320)


def test_renegotiation_is_refused_while_a_reader_holds_the_node(farm: Farm) -> None:
    # v4l2loopback 0.15 would take the new output format but keep the old capture format while
    # the node is open, handing readers frames cut to the old size: the farm refuses instead.
    cam = farm.reload().cameras[1]
    reader = Reader(cam.device)
    with pytest.raises(EnvironmentProblem, match=str(os.getpid())):
        cam.inject("resize", size="352x288")
    reader.read_for(3)
    frames = reader.stop()
    assert reader.error is None and analyze([code for code, _ in frames]).missing == {1: []}
    assert cam.stats()["spec"]["size"] == "320x240" and cam.faults() == []


def test_bad_cli_input_exits_2_and_the_farm_keeps_streaming(farm: Farm, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("timeline:\n  - {at: 1s, camera: 0, fault: drop frame=3}\n")
    written = farm.reload().cameras[0].stats()["written"]
    # In-process, as the command runs (Python starts slowly under emulation); one real process below.
    for args, words in [(["fault", "0", "nosuch"], "unknown fault"), (["fault", "0", "noise", "2"], "outside"),
                        (["fault", "0", "drop", "--param", "x=1"], "unknown parameter"),
                        (["fault", "0", "unplug", "--for", "0s"], "positive"),
                        (["scenario", "run", str(bad)], f"{bad}:2:")]:
        assert main([*args, "--farm", "flt"]) == 2
        err = capsys.readouterr().err
        assert words in err and len(err.strip().splitlines()) == 1, err
    result = simfarm("fault", "9", "drop", "--farm", "flt")
    assert result.returncode == 2 and "no camera 9" in result.stderr, result.stderr
    assert farm.faults() == []
    wait_until(lambda: farm.reload().cameras[0].stats()["written"] > written + 5, what="frames still flowing")
    assert main(["status", "--farm", "flt"]) == 0 and "streaming" in capsys.readouterr().out
