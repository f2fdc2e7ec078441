"""Faults on a farm without a kernel: the CLI's checks, and the supervisor's ops over pipes.

The supervisor runs in this process with its nodes replaced by pipes (a
reader thread per camera keeps every frame written), so the control ops,
the producer's fault wiring, the fault log and scenario runs are checked
here; device-level faults need v4l2loopback and are checked in the VM tier.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from simfarm.backends import live
from simfarm.cli import main
from simfarm.devices.loopback import nodes as loopback_nodes
from simfarm.errors import BadInput
from simfarm.farm import supervisor
from simfarm.farm.scenario_run import comparable
from simfarm.faults import read_log
from simfarm.frames import pixfmt
from simfarm.frames.analysis import analyze
from simfarm.frames.code import FrameCode, decode
from simfarm.spec import CameraSpec, PixelFormat, Size
from simfarm.state.records import FarmRecord

SIZE = Size(320, 240)


@pytest.mark.parametrize("args, words", [
    (["fault", "0", "nosuch"], "unknown fault 'nosuch'"),
    (["fault", "0", "noise", "2"], "outside"),
    (["fault", "0", "drop", "--frames", "0"], "outside"),
    (["fault", "0", "drop", "--param", "x=1"], "unknown parameter 'x'"),
    (["fault", "0", "drop", "--param", "x"], "not K=V"),
    (["fault", "0", "replug", "--for", "1s"], "instantaneous"),
    (["fault", "zero", "drop"], "not an index"),
    (["fault", "0"], "give a camera and a KIND"),
    (["fault", "clear"], "CAMERA or --all"),
    (["fault", "0", "drop"], "no running farm"),
])
def test_bad_fault_input_is_one_line_and_exit_2(capsys, args: list[str], words: str) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1


def test_a_malformed_scenario_names_its_file_and_line(capsys, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("timeline:\n  - {at: 1s, camera: 0, fault: drop frame=3}\n")
    assert main(["scenario", "run", str(path)]) == 2
    assert f"{path}:2: drop: unknown parameter 'frame'" in capsys.readouterr().err


class PipeNodes:
    """Stands in for v4l2loopback: each camera's node is a pipe whose frames a thread keeps."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.frames: dict[int, list[np.ndarray]] = {}
        self._threads: list[threading.Thread] = []
        # The loopback module the backend and device faults both call.
        monkeypatch.setattr(loopback_nodes, "choose_mode", lambda: loopback_nodes.Mode.CONTROL)
        monkeypatch.setattr(loopback_nodes, "create", lambda label, number=-1, max_buffers=16: 200 + int(label[-1]))
        monkeypatch.setattr(live.nodes, "open_output", self.open_output)
        # A pipe has one reader, the thread that keeps its frames: the supervisor's own check of its
        # cameras' frames (read back from their nodes) is for the VM tier.
        monkeypatch.setattr(supervisor.readiness, "check_frames", lambda cameras, backend: None)

    def open_output(self, number: int, fmt: PixelFormat, size: Size, fps: object) -> int:
        read_end, write_end = os.pipe()
        frames = self.frames.setdefault(number - 200, [])
        frame_bytes = pixfmt.frame_bytes(fmt, size)
        thread = threading.Thread(target=self._drain, args=(read_end, frame_bytes, frames), daemon=True)
        thread.start()
        self._threads.append(thread)
        return write_end

    @staticmethod
    def _drain(fd: int, frame_bytes: int, frames: list[np.ndarray]) -> None:
        with os.fdopen(fd, "rb") as pipe:
            while data := pipe.read(frame_bytes):
                frames.append(np.frombuffer(data, np.uint8)[:SIZE.width * SIZE.height].reshape(SIZE.height, SIZE.width))

    def codes(self, camera: int) -> list[FrameCode | None]:
        return [decode(frame) for frame in list(self.frames[camera])]


@pytest.fixture
def farm(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[supervisor.Supervisor, PipeNodes]]:
    pipes = PipeNodes(monkeypatch)
    record = FarmRecord(name="pipes", spec={"cameras": [CameraSpec(size=SIZE, format=PixelFormat.GREY).to_json()] * 2})
    record.directory.mkdir(parents=True)
    record.save()
    sup = supervisor.Supervisor(record)
    sup.start()
    yield sup, pipes
    sup.shutdown()


def wait_until(condition: Callable[[], object], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_drop_on_a_running_camera_is_seen_and_logged_exactly(farm) -> None:
    sup, pipes = farm
    wait_until(lambda: len(pipes.frames.get(0, [])) > 3, "frames")
    reply = sup.handle({"op": "fault", "camera": 0, "kind": "drop", "params": {"frames": 6}})
    assert sup.status()["cameras"][0]["faults"][0]["fault"] == reply["fault"]
    wait_until(lambda: not sup.handle({"op": "faults"})["faults"], "the drop to end")
    wait_until(lambda: len(pipes.frames[0]) > reply["frames"] + 15, "frames after it")
    end = [line for line in read_log(sup.record.directory / supervisor.FAULT_LOG) if line["event"] == "end"]
    missing = [seq for first, last in end[0]["touched"] for seq in range(first, last + 1)]
    assert len(missing) == 6 and analyze(pipes.codes(0)).missing == {0: missing}
    assert analyze(pipes.codes(1)).missing == {1: []}  # the other camera untouched


def test_clear_ends_a_fault_and_bad_requests_change_nothing(farm, tmp_path: Path) -> None:
    sup, _ = farm
    freeze = sup.handle({"op": "fault", "camera": 1, "kind": "freeze", "for": "1m"})
    mixed = tmp_path / "mixed.yaml"
    mixed.write_text("timeline:\n  - {at: 0s, camera: 0, fault: drop frames=2}\n"
                     "  - {at: 1s, camera: 1, fault: streamon-error}\n")
    for request, words in [({"op": "fault", "camera": 5, "kind": "drop"}, "no camera 5"),
                           ({"op": "fault", "camera": 0, "kind": "tear", "params": {"row": 5000}}, "row"),
                           ({"op": "fault", "camera": 0, "kind": "replug"}, "plugged in"),
                           ({"op": "fault", "camera": 0, "kind": "disconnect"},
                            "disconnect needs the vivid backend \\(provision --backend vivid\\); "
                            "camera 0 of farm pipes is loopback"),
                           ({"op": "scenario", "path": str(mixed)},
                            "streamon-error needs the vivid backend .* camera 1 of farm pipes is loopback"),
                           ({"op": "fault", "camera": 0, "kind": "latency", "params": {"ms": 100}},
                            "does not publish"),
                           ({"op": "clear", "camera": 1, "id": "nope"}, "no fault 'nope'"),
                           ({"op": "jump"}, "unknown op")]:
        with pytest.raises(BadInput, match=words):
            sup.handle(request)
    assert [f["fault"] for f in sup.handle({"op": "faults"})["faults"]] == [freeze["fault"]]
    assert sup.handle({"op": "clear", "camera": 1})["cleared"] == [freeze["fault"]]
    assert sup.handle({"op": "faults"})["faults"] == []


REPEAT = Path(__file__).parents[1] / "data" / "repeat.yaml"


def test_a_scenario_run_twice_with_one_seed_logs_the_same_relative_sequences(farm, tmp_path: Path) -> None:
    sup, _ = farm

    def run(log: Path) -> list[dict]:
        reply = sup.handle({"op": "scenario", "path": str(REPEAT), "seed": 9, "log": str(log)})
        wait_until(lambda: read_log(log) and read_log(log)[-1]["event"] == "done", "the scenario's run log to end")
        lines = read_log(log)
        assert {line["camera"]: line["sequence"] for line in lines if line["event"] == "scenario"} == reply["origins"]
        return comparable(lines)

    first, second = run(tmp_path / "1.jsonl"), run(tmp_path / "2.jsonl")
    assert first == second and len(first) == 2 * (1 + 2 + 1)
