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

from simfarm import BadInput, Camera, EnvironmentProblem, Farm, PublishOptions
from simfarm.doctor import host_can_run_cameras
from simfarm.frames.code import decode
from simfarm.frames.snapshot import grab
from simfarm.publishers.mediamtx import ApiClient, MediaMTX
from simfarm.publishers.mediamtx.process import session_members
from simfarm.spec import CameraSpec
from simfarm.state.records import ProcessId
from simfarm.verify import frames_from, verify

from .rtsp_reader import RtspReader

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
        # Not the first segment: it opens with the publisher's first capture, which can be a newer frame
        # (FFmpeg holds its first buffer while probing, and v4l2loopback writes on into held buffers).
        segment = eventually(lambda cam=cam: next((s for s in cam.recordings()[1:] if s.complete), None),
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


def describe_round_trip(url: str) -> float:
    """Seconds a real RTSP reader waits for the answer to DESCRIBE at ``url`` (the median of three)."""
    with RtspReader(url) as reader:
        reader.request("OPTIONS", url)
        for _ in range(3):
            reader.request("DESCRIBE", url, {"Accept": "application/sdp"})
        return sorted(reader.round_trips[1:])[1]


def test_latency_delays_what_a_reader_of_the_proxied_url_receives_by_the_amount_set(farm: Farm) -> None:
    cam = farm.cameras[0]
    before = describe_round_trip(cam.proxy_url)
    with cam.inject("latency", ms=800):
        delayed = describe_round_trip(cam.proxy_url)
        _, code = grab(cam.proxy_url, timeout=60)  # frames still arrive, later
        assert code is not None and code.camera == 0
    added = delayed - before  # downstream only: each answer arrives 800 ms late
    assert 0.64 <= added <= 0.96, f"latency added {added * 1000:.0f} ms for 800 ms"
    assert describe_round_trip(cam.proxy_url) < before + 0.4  # cleared


def test_bandwidth_caps_what_a_reader_of_the_proxied_url_receives(farm: Farm) -> None:
    cam = farm.cameras[0]
    with RtspReader(cam.proxy_url) as reader:
        reader.play()
        free = reader.received_for(4) / 4
    cap = 4.0  # KB/s: well below the stream's rate, measured first
    assert free > 3 * cap * 1000, f"the stream runs at {free:.0f} B/s: too little to show a cap of {cap} KB/s"
    with cam.inject("bandwidth", rate=cap), RtspReader(cam.proxy_url) as reader:
        reader.play()
        reader.received_for(2)  # what was in flight before the cap bit
        capped = reader.received_for(6) / 6
    assert capped <= cap * 1000 * 1.2, f"{capped:.0f} B/s through a cap of {cap} KB/s"
    assert capped >= cap * 1000 * 0.5, f"only {capped:.0f} B/s through a cap of {cap} KB/s"


def test_reset_is_seen_by_a_reader_of_the_proxied_url(farm: Farm) -> None:
    cam = farm.cameras[0]
    with RtspReader(cam.proxy_url) as reader:
        reader.play()
        reader.packet()
        with cam.inject("reset", after=0), pytest.raises(ConnectionResetError):
            reader.received_for(30)
    with cam.inject("reset"), pytest.raises(EnvironmentProblem, match="no picture"):
        grab(cam.proxy_url, timeout=20)
    _, code = grab(cam.proxy_url)
    assert code is not None and code.camera == 0


def test_timeout_silences_then_closes_the_proxied_url_for_a_reader(farm: Farm) -> None:
    cam = farm.cameras[0]
    with RtspReader(cam.proxy_url, timeout=3) as reader:
        reader.play()
        reader.packet()
        with cam.inject("timeout", ms=0), pytest.raises(TimeoutError):
            reader.received_for(30)  # silent: nothing arrives, the connection stays open
    with RtspReader(cam.proxy_url, timeout=30) as reader:
        reader.play()
        with cam.inject("timeout", ms=1500):
            began = time.monotonic()
            with pytest.raises(EOFError):
                reader.received_for(60)
            assert time.monotonic() - began < 20  # closed by the toxic, not by the reader giving up


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
        image, code = cam.snapshot(timeout=30)
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


def test_four_published_cameras_each_serve_their_own_codes(tmp_path: Path) -> None:
    made = simfarm("provision", "--cameras", "4", "--size", "320x240", "--fps", "15", "--pattern", "ball",
                   "--farm", "four", "--publish")
    assert made.returncode == 0, made.stderr
    try:
        farm = Farm.attach("four")
        assert len(farm.cameras) == 4
        for cam in farm.cameras:
            assert camera_status(farm, cam.index)["available"]
            _, code = cam.snapshot()
            assert code is not None and code.camera == cam.index
    finally:
        assert simfarm("teardown", "--farm", "four").returncode == 0


def test_a_farm_publishes_through_a_server_started_separately_and_leaves_it_as_it_was(
        tmp_path: Path, mediamtx_binary: str) -> None:
    with MediaMTX.start(tmp_path / "theirs", {}, binary=mediamtx_binary) as server:
        made = simfarm("provision", "--cameras", "1", "--size", "320x240", "--fps", "15", "--farm", "ext",
                       "--publish", "--mediamtx-api", server.api_url)
        assert made.returncode == 0, made.stderr
        farm = Farm.attach("ext")
        publish = farm.status()["publish"]
        assert not publish["managed"] and publish["api"] == server.api_url
        assert publish["version"] == str(server.version)
        cam = farm.cameras[0]
        assert cam.rtsp_url == server.rtsp_url(cam.label)
        _, code = cam.snapshot()
        assert code is not None and code.camera == 0
        assert simfarm("teardown", "--farm", "ext").returncode == 0
        assert [path.name for path in server.api.paths()] == []  # only the farm's path went
        assert server.api.info().version == str(server.version)  # and the server runs on


def test_a_service_mediamtx_has_no_paths_of_simfarms_and_env_wires_a_service_to_it(tmp_path: Path) -> None:
    made = simfarm("provision", "--cameras", "2", "--size", "320x240", "--fps", "15", "--farm", "svc",
                   "--service-mediamtx")
    assert made.returncode == 0, made.stderr
    try:
        status = json.loads(simfarm("status", "--farm", "svc", "--json").stdout)["farms"][0]
        publish = status["publish"]
        assert publish["managed"] and not publish["camera_paths"]
        assert publish["api"] == f"http://127.0.0.1:{publish['api_port']}"
        assert all("rtsp_url" not in cam for cam in status["cameras"])
        printed = simfarm("env", "--farm", "svc")
        assert printed.returncode == 0, printed.stderr
        shell = subprocess.run(["bash", "-c", f'eval "$({sys.executable} -m simfarm env --farm svc)"; '
                                'echo "$SIMFARM_MEDIAMTX_API_URL|$SIMFARM_MEDIAMTX_RTSP_PORT|$SIMFARM_DEVICES|'
                                '$SIMFARM_CAMERA_1_LABEL"'], capture_output=True, text=True, check=True)
        farm = Farm.attach("svc")
        assert shell.stdout.strip() == "|".join([publish["api"], str(publish["rtsp_port"]),
                                                 " ".join(cam.device for cam in farm.cameras), farm.cameras[1].label])
        env = dict(line.removeprefix("export ").split("=", 1) for line in printed.stdout.splitlines())
        api = ApiClient(env["SIMFARM_MEDIAMTX_API_URL"])
        assert api.paths() == []  # nothing of simfarm's: the service brings its own
        # The service's own path, its FFmpeg reading the camera's node when a reader comes.
        device = env["SIMFARM_CAMERA_1_DEVICE"]
        api.add_path("door", {"runOnDemand": f"ffmpeg -nostdin -loglevel warning -f v4l2 -i {device} -c:v libx264 "
                                             "-preset ultrafast -g 15 -pix_fmt yuv420p -f rtsp -rtsp_transport tcp "
                                             "rtsp://127.0.0.1:$RTSP_PORT/$MTX_PATH",
                              "runOnDemandStartTimeout": "60s"})
        _, code = grab(f"{env['SIMFARM_MEDIAMTX_RTSP_URL']}door", timeout=90)
        assert code is not None and code.camera == 1
        server = publish["pid"]
    finally:
        assert simfarm("teardown", "--farm", "svc").returncode == 0
    assert processes_of(server) == []  # the server and the service's FFmpeg it ran


def test_env_for_a_farm_that_does_not_exist_is_one_line_and_exit_2() -> None:
    missing = simfarm("env", "--farm", "nosuch")
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr.strip() == "simfarm: error: no running farm named 'nosuch'"
