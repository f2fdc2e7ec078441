"""Farms publishing through a real MediaMTX (issue 5), end to end with real cameras.

Needs both a mediamtx binary (conftest: skipped, saying so, without one) and
v4l2loopback, so it runs inside the VM: ``simfarm vm -- python -m pytest tests/mediamtx``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from simfarm import BadInput, Camera, EnvironmentProblem, Farm
from simfarm.doctor import host_can_run_cameras
from simfarm import PublishOptions
from simfarm.farm.state import ProcessId
from simfarm.frames.code import decode
from simfarm.frames.snapshot import grab
from simfarm.publishers.mediamtx.process import session_members
from simfarm.spec import CameraSpec
from simfarm.verify import frames_from, verify

pytestmark = [pytest.mark.mediamtx, pytest.mark.hil,
              pytest.mark.skipif(not host_can_run_cameras(),
                                 reason="needs v4l2loopback >= 0.13 too; run inside the VM: "
                                        "simfarm vm -- python -m pytest tests/mediamtx")]

SMALL = CameraSpec.parse(size="320x240", fps=15, pattern="ball")
RECORD = PublishOptions(record=True, segment_seconds=1)
T = TypeVar("T")


def eventually(probe: Callable[[], T | None], what: str, timeout: float = 40.0) -> T:
    """The first truthy result of ``probe``, polled (MediaMTX's API has no events to wait on)."""
    deadline = time.monotonic() + timeout
    while not (result := probe()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)
    return result


def simfarm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "simfarm", *args], capture_output=True, text=True, timeout=180)


def camera_status(farm: Farm, index: int) -> dict:
    return farm.status()["cameras"][index]


def processes_of(pid: int) -> list[int]:
    """``pid`` itself (if alive, not a zombie) and the processes of the session it leads."""
    return ([pid] if ProcessId.of(pid) else []) + session_members(pid)


@pytest.fixture(scope="module")
def state_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with pytest.MonkeyPatch.context() as patch:
        root = tmp_path_factory.mktemp("st")
        patch.setenv("SIMFARM_STATE_DIR", str(root))
        yield root


@pytest.fixture(autouse=True)
def _private_state_dir(state_root: Path) -> None:
    """One state directory for the module (instead of one per test): its farm outlives single tests."""


@pytest.fixture(scope="module")
def farm(state_root: Path) -> Iterator[Farm]:
    """Two cameras, published and recorded in 1 s segments, provisioned through the CLI."""
    made = simfarm("provision", "--cameras", "2", "--size", "320x240", "--fps", "15", "--pattern", "ball",
                   "--farm", "pub", "--publish", "--record", "--record-segment", "1s")
    assert made.returncode == 0, made.stderr
    for index in range(2):  # each camera: its path and its proxied URL
        assert made.stdout.count(f"/simfarm-pub-{index}") == 2, made.stdout
    farm = Farm.attach("pub")
    yield farm
    farm.teardown()


def test_every_path_is_available_and_status_shows_its_urls(farm: Farm) -> None:
    shown = simfarm("status", "--farm", "pub")
    assert shown.returncode == 0, shown.stderr
    for cam in farm.cameras:
        status = camera_status(farm, cam.index)
        assert status["available"] and status["path"] == cam.label
        assert status["rtsp_url"] == cam.rtsp_url and status["rtsp_url"] in shown.stdout
        assert cam.proxy_url in shown.stdout
    publish = farm.status()["publish"]
    assert publish["managed"] and publish["version"] and Path(publish["log"]).is_file()


def test_a_snapshot_of_each_camera_carries_its_id(farm: Farm, tmp_path: Path) -> None:
    for cam in farm.cameras:
        image, code = cam.snapshot()
        assert image.shape == (240, 320, 3)
        assert code is not None and code.camera == cam.index
        shot = simfarm("snapshot", str(cam.index), "--farm", "pub", "-o", str(tmp_path / f"{cam.index}.png"),
                       "--json")
        assert shot.returncode == 0, shot.stderr
        assert json.loads(shot.stdout)["code"]["camera"] == cam.index


def test_a_recording_segment_of_each_camera_is_an_increasing_run_of_its_codes(farm: Farm) -> None:
    for cam in farm.cameras:
        segment = eventually(lambda cam=cam: next((s for s in cam.recordings() if s.complete), None),
                             f"a finished segment of camera {cam.index}")
        assert segment.file.suffix == ".mp4"
        codes = [decode(frame.luma) for frame in frames_from(str(segment.file))]
        sequences = [c.sequence for c in codes if c is not None and c.camera == cam.index]
        assert len(sequences) >= 5 and sequences == sorted(set(sequences)), sequences
        report = verify(str(segment.file))
        assert report.cameras == [cam.index] and not report.per_camera[cam.index].out_of_order
    listed = simfarm("recordings", "--farm", "pub", "--json")
    assert listed.returncode == 0 and {s["path"] for s in json.loads(listed.stdout)} == {c.label for c in farm.cameras}


def test_verify_reads_the_rtsp_path(farm: Farm) -> None:
    checked = simfarm("verify", farm.cameras[0].rtsp_url, "--frames", "30", "--json")
    assert checked.returncode == 0, checked.stderr
    report = json.loads(checked.stdout)
    assert report["cameras"] == [0] and report["out_of_order"] == {"0": []}


def test_kick_disconnects_a_reader_which_can_reconnect(farm: Farm) -> None:
    cam = farm.cameras[0]
    reader = subprocess.Popen(["ffmpeg", "-nostdin", "-loglevel", "error", "-rtsp_transport", "tcp",
                               "-i", cam.rtsp_url, "-f", "null", "-"], stderr=subprocess.DEVNULL)
    try:
        eventually(lambda: camera_status(farm, 0)["readers"] >= 1, "the reader to be on the path")
        kicked = cam.inject("kick").info["kicked"]
        assert kicked
        reader.wait(timeout=30)  # disconnected: FFmpeg ends its input
    finally:
        reader.kill()
        reader.wait()
    _, code = cam.snapshot()
    assert code is not None and code.camera == 0


def test_publisher_loss_makes_the_path_unavailable_then_available_again(farm: Farm) -> None:
    cam = farm.cameras[1]
    fault = cam.inject("publisher-loss", for_="4s")
    eventually(lambda: not camera_status(farm, 1)["available"], "the path to go")
    eventually(lambda: camera_status(farm, 1)["available"], "the path to come back", timeout=60)
    assert all(f["fault"] != fault.id for f in cam.faults())
    _, code = cam.snapshot()
    assert code is not None and code.camera == 1


def test_proxy_toxics_reach_readers_of_the_proxied_url(farm: Farm) -> None:
    cam = farm.cameras[0]
    _, through = grab(cam.proxy_url)
    assert through is not None and through.camera == 0
    with cam.inject("latency", ms=500):
        began = time.monotonic()
        _, through = grab(cam.proxy_url)
        assert time.monotonic() - began >= 1.0  # RTSP's request/response round trips each wait 500 ms
        assert through is not None and through.camera == 0
    with cam.inject("reset"), pytest.raises(EnvironmentProblem, match="no picture"):
        grab(cam.proxy_url, timeout=20)


def test_bitstream_noise_damages_what_readers_decode(farm: Farm) -> None:
    cam = farm.cameras[1]
    assert verify(cam.rtsp_url, 30).decoded == 30  # clean before
    with cam.inject("bitstream-noise", amount=1000):
        eventually(lambda: camera_status(farm, 1)["available"], "the noisy publisher")
        try:
            intact = verify(cam.rtsp_url, 30).decoded
        except BadInput:  # not even the stream's parameters could be read
            intact = 0
        assert intact < 30
    eventually(lambda: camera_status(farm, 1)["available"], "the clean publisher")
    assert verify(cam.rtsp_url, 30).decoded == 30


def test_unplug_takes_the_publisher_off_the_node_and_replug_brings_it_back(farm: Farm) -> None:
    cam = farm.cameras[0]
    unplug = cam.inject("unplug", timeout=30)
    assert unplug.info["removed"] == cam.device  # the publisher let go of the node
    eventually(lambda: not camera_status(farm, 0)["available"], "the path to go")
    unplug.clear()
    eventually(lambda: camera_status(farm, 0)["available"], "the path to come back", timeout=60)
    _, code = farm.reload().camera(0).snapshot()
    assert code is not None and code.camera == 0


def test_resize_on_a_published_camera_reaches_readers_in_the_new_size(farm: Farm) -> None:
    cam = farm.reload().camera(1)
    with cam.inject("resize", size="640x480"):
        image, code = eventually(lambda: _sized(cam, (480, 640)), "the path in the new size", timeout=60)
        assert code is not None and code.camera == 1
    eventually(lambda: _sized(cam, (240, 320)), "the path back in the old size", timeout=60)


def _sized(cam: Camera, shape: tuple[int, int]) -> tuple | None:
    """A snapshot of ``cam`` when its picture is ``shape`` (rows, columns) already; None otherwise."""
    try:
        image, code = cam.snapshot(timeout=10)
    except EnvironmentProblem:  # the publisher is off the node for the switch
        return None
    return (image, code) if image.shape[:2] == shape else None


def test_two_publishing_farms_side_by_side_then_nothing_left() -> None:
    with Farm.provision(1, name="left", spec=SMALL, publish=PublishOptions()) as left, \
            Farm.provision(1, name="right", spec=SMALL, publish=RECORD) as right:
        servers = [farm.status()["publish"] for farm in (left, right)]
        assert servers[0]["rtsp"] != servers[1]["rtsp"] and servers[0]["api"] != servers[1]["api"]
        assert left.cameras[0].proxy_url != right.cameras[0].proxy_url
        for farm in (left, right):
            _, code = farm.cameras[0].snapshot()
            assert code is not None and code.camera == 0
        pids = [server["pid"] for server in servers]
    for pid in pids:
        assert processes_of(pid) == []


def test_a_killed_supervisor_leaves_no_mediamtx_behind() -> None:
    farm = Farm.provision(1, name="crash", spec=SMALL, publish=PublishOptions())
    server = farm.status()["publish"]["pid"]
    assert session_members(server)  # its FFmpeg publisher
    assert farm.supervisor_pid is not None
    os.kill(farm.supervisor_pid, signal.SIGKILL)
    assert simfarm("status").returncode == 0  # any command reclaims the abandoned farm
    assert processes_of(server) == []
    assert "crash" not in simfarm("status").stdout


def test_teardown_stops_mediamtx_and_leaves_no_process(farm: Farm) -> None:
    server = farm.status()["publish"]["pid"]
    devices = [cam.device for cam in farm.reload().cameras]
    assert processes_of(server)
    farm.teardown()
    assert processes_of(server) == []
    assert not any(os.path.exists(device) for device in devices)
    assert not farm.state_dir.exists()
