"""Publishing without a MediaMTX server: options and their checks, what each path runs, recordings,
snapshots, verifying segments, and reclaiming what a dead supervisor's server left running."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shlex
import signal
import socket
import socketserver
import stat
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import pytest

from simfarm.backends.live import LiveCamera
from simfarm.cli import main, publish_cmd
from simfarm.errors import BadInput, EnvironmentProblem
from simfarm.farm import config, publish_plan, publishing
from simfarm.farm.farm import Farm
from simfarm.farm.reclaim import reclaim
from simfarm.faults import FaultHandle, FaultLog, FaultSpec, read_log
from simfarm.frames.code import decode
from simfarm.frames.snapshot import grab
from simfarm.patterns import PatternLibrary
from simfarm.publishers.mediamtx import Version
from simfarm.publishers.mediamtx import ApiClient
from simfarm.publishers.mediamtx.binary import ENV
from simfarm.publishers.mediamtx.hooks import PUBLISH_URL
from simfarm.publishers.mediamtx.process import session_members
from simfarm.publishers.mediamtx.recordings import list_segments
from simfarm.publishers.ports import reserve_ports
from simfarm.spec import CameraSpec
from simfarm.state.records import FarmRecord, NodeRecord, ProcessId, state_root
from simfarm.verify import frames_from, verify

RELEASES = "github.com/bluenviron/mediamtx/releases"

NEWEST = Version(1, 20, 1)


@pytest.fixture
def no_mediamtx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.setenv("PATH", f"{tmp_path / 'empty'}:{os.path.dirname(sys.executable)}:/usr/bin:/bin")
    assert not any(Path(d, "mediamtx").exists() for d in os.environ["PATH"].split(":"))


def fake_version(tmp_path: Path, version: str) -> str:
    """A program answering ``--version`` like mediamtx: enough to test the version check, nothing more."""
    path = tmp_path / "bin" / "mediamtx"
    path.parent.mkdir(exist_ok=True)
    path.write_text(f"#!/bin/sh\necho {version}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


# --- options -------------------------------------------------------------------------------------

def test_provision_publish_without_mediamtx_fails_first_naming_the_install(no_mediamtx, capsys) -> None:
    # On this host v4l2loopback is missing too: failing on MediaMTX proves it is checked before any device.
    assert main(["provision", "--cameras", "2", "--publish"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and RELEASES in err and ENV in err and "PATH" in err
    assert not (state_root() / "farms").exists()


def test_a_named_binary_that_is_missing_or_too_old_fails_with_the_remedy(tmp_path: Path, no_mediamtx, capsys) -> None:
    assert main(["provision", "--publish", "--mediamtx", str(tmp_path / "nope")]) == 1
    assert "--mediamtx" in capsys.readouterr().err
    assert main(["provision", "--publish", "--mediamtx", fake_version(tmp_path, "v1.18.1")]) == 1
    err = capsys.readouterr().err
    assert "MediaMTX v1.18.1 is too old: simfarm supports 1.19.x to 1.20.x" in err and RELEASES in err
    assert not (state_root() / "farms").exists()


def test_an_unreachable_mediamtx_api_fails_before_any_device(capsys) -> None:
    with reserve_ports(1) as free:
        assert main(["provision", "--publish", "--mediamtx-api", f"http://127.0.0.1:{free.ports[0]}"]) == 1
    assert "unreachable" in capsys.readouterr().err
    assert not (state_root() / "farms").exists()


@pytest.mark.parametrize(("args", "words"), [
    (["--record"], "record needs publish"),
    (["--mediamtx-api", "http://127.0.0.1:9997"], "mediamtx-api needs publish"),
    (["--publish", "--record", "--mediamtx-api", "http://127.0.0.1:9997"], "recording needs a managed MediaMTX"),
    (["--publish", "--mediamtx", "/x", "--mediamtx-api", "http://127.0.0.1:9997"], "exclude each other"),
    (["--publish", "--backend", "vivid"], "publishing needs the loopback backend, not vivid"),
])
def test_contradictory_publishing_flags_are_bad_input(capsys, args: list[str], words: str) -> None:
    assert main(["provision", *args]) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1


def test_a_farm_file_publishes_and_flags_override_it(tmp_path: Path) -> None:
    path = tmp_path / "farm.yaml"
    path.write_text("name: lab\npublish: true\nrecord: true\nmediamtx: /opt/mediamtx\ncameras: 2\n")
    plan = config.load(str(path))
    assert plan.publish({}) == publish_plan.PublishOptions(record=True, mediamtx="/opt/mediamtx")
    assert plan.publish({"mediamtx": "/usr/local/bin/mediamtx"}).mediamtx == "/usr/local/bin/mediamtx"
    assert config.FarmPlan().publish({}) is None


@pytest.mark.parametrize(("text", "words"), [
    ("publish: yes please\n", "farm.yaml:1: publish is true or false"),
    ("publish: true\nmediamtx: 3\n", "farm.yaml:2: mediamtx is text"),
])
def test_farm_file_publishing_mistakes_name_the_line(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "farm.yaml"
    path.write_text(text)
    with pytest.raises(BadInput, match=words):
        config.load(str(path))


# --- what each camera's path runs --------------------------------------------------------------

def camera(number: int | None = 7, fps: str = "30") -> LiveCamera:
    node = NodeRecord(0, "simfarm-lab-0", number)
    return LiveCamera(0, CameraSpec.parse(size="320x240", fps=fps), node, PatternLibrary(()), listener=None)  # type: ignore[arg-type]


def stream_fault(cam: LiveCamera, text: str) -> None:
    handle = FaultHandle(f"c0.{text}", 0, FaultSpec.parse(text), lambda _: None)
    cam.stream_faults[handle.id] = handle


def test_a_streaming_camera_is_published_from_its_node_with_a_keyframe_a_second() -> None:
    settings = publishing.path_settings(camera(7, fps="15"), "/usr/bin/ffmpeg", NEWEST)
    assert settings["runOnInitRestart"] is True
    argv = shlex.split(settings["runOnInit"])  # how MediaMTX splits it (no shell)
    assert argv[0] == "/usr/bin/ffmpeg" and argv[argv.index("-i") + 1] == "/dev/video7"
    assert argv[argv.index("-g") + 1] == "15" and "-bsf:v" not in argv
    assert argv[-1] == PUBLISH_URL


def test_no_publisher_while_unplugged_while_an_unplug_waits_or_during_publisher_loss() -> None:
    assert publishing.path_settings(camera(None), "ffmpeg", NEWEST) == {}
    waiting = camera()
    waiting.held_by = [1234]  # the publisher itself holds the node: it must let go for the unplug
    assert publishing.path_settings(waiting, "ffmpeg", NEWEST) == {}
    lost = camera()
    stream_fault(lost, "publisher-loss")
    assert publishing.path_settings(lost, "ffmpeg", NEWEST) == {}


def test_bitstream_noise_swaps_in_a_publisher_that_corrupts_its_packets() -> None:
    cam = camera()
    stream_fault(cam, "bitstream-noise 500")
    argv = shlex.split(publishing.path_settings(cam, "ffmpeg", NEWEST)["runOnInit"])
    assert argv[argv.index("-bsf:v") + 1] == "noise=amount=500"


# --- recordings, verify, snapshots on real H.264 ---------------------------------------------------

def fmp4_segments(clip: Any, directory: Path, path: str, first: datetime.datetime) -> list[Path]:
    """The clip cut at keyframes into 1 s fragmented-MP4 segments named as MediaMTX names them (RECORD_NAME)."""
    work = directory / "cut"
    work.mkdir(parents=True)
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(clip.path), "-c", "copy", "-f", "segment",
                    "-segment_time", "1", "-segment_format", "mp4", "-reset_timestamps", "1",
                    "-segment_format_options", "movflags=frag_keyframe+empty_moov+default_base_moof",
                    str(work / "%03d.mp4")], check=True, timeout=60)
    named = []
    for index, part in enumerate(sorted(work.iterdir())):
        start = first + datetime.timedelta(seconds=index)
        target = directory / path / f"{start:%Y-%m-%d_%H-%M-%S-%f}.mp4"
        target.parent.mkdir(parents=True, exist_ok=True)
        named.append(part.rename(target))
    work.rmdir()
    return named


def test_recordings_are_listed_by_path_oldest_first_the_newest_still_open(coded_clip, tmp_path: Path) -> None:
    first = datetime.datetime(2026, 11, 21, 9, 0, 0, 250000)
    made = fmp4_segments(coded_clip, tmp_path, "simfarm-lab-0", first)
    other = fmp4_segments(coded_clip, tmp_path / "x", "site/cam", first)[0].rename(tmp_path / "site-cam.mp4")
    (tmp_path / "simfarm-lab-0" / "notes.txt").write_text("not a segment")
    assert len(made) >= 3 and other.exists()
    segments = list_segments(tmp_path, "simfarm-lab-0")
    assert [s.file for s in segments] == made
    assert [s.complete for s in segments] == [True] * (len(made) - 1) + [False]
    assert segments[0].start == first.astimezone() and segments[0].size == made[0].stat().st_size
    assert {s.path for s in list_segments(tmp_path / "x")} == {"site/cam"}  # nested path names
    assert list_segments(tmp_path / "nowhere") == []


def test_each_segment_verifies_as_an_increasing_run_of_the_cameras_codes(coded_clip, tmp_path: Path, capsys) -> None:
    segments = fmp4_segments(coded_clip, tmp_path, "cam", datetime.datetime(2026, 1, 1))
    runs = []
    for segment in segments:
        report = verify(str(segment))
        cam = report.per_camera[coded_clip.camera]
        assert report.undecodable == 0 and not cam.duplicated and not cam.out_of_order and not cam.missing
        sequences = [decode(frame.luma).sequence for frame in frames_from(str(segment))]
        assert sequences == list(range(sequences[0], sequences[0] + len(sequences)))
        runs.append((sequences[0], sequences[-1]))
    # Back to back: each segment starts where the one before ended.
    assert runs[0][0] == 0 and runs[-1][1] == coded_clip.frames - 1
    assert all(later[0] == earlier[1] + 1 for earlier, later in zip(runs, runs[1:], strict=False))
    assert main(["verify", str(segments[1]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["cameras"] == [coded_clip.camera]


def test_farm_recordings_are_its_cameras_segments(coded_clip, tmp_path: Path) -> None:
    record = FarmRecord(name="lab", spec={"cameras": [CameraSpec().to_json()] * 2},
                        nodes=[NodeRecord(0, "simfarm-lab-0", 5), NodeRecord(1, "simfarm-lab-1", 6)])
    directory = publish_plan.recordings_dir(record.directory)
    zero = fmp4_segments(coded_clip, directory, "simfarm-lab-0", datetime.datetime(2026, 1, 1))
    farm = Farm(record)
    assert [s.file for s in farm.recordings(0)] == zero
    assert farm.recordings(1) == []
    assert len(farm.recordings()) == len(zero)


def test_a_snapshot_is_the_first_picture_and_its_code(coded_clip, tmp_path: Path, capsys) -> None:
    image, code = grab(str(coded_clip.path))
    assert image.shape == (coded_clip.size[1], coded_clip.size[0], 3)
    assert (code.camera, code.sequence) == (coded_clip.camera, 0)
    out = tmp_path / "shot.jpg"
    assert main(["snapshot", str(coded_clip.path), "-o", str(out)]) == 0
    assert f"camera {coded_clip.camera}, sequence 0" in capsys.readouterr().out
    assert cv2.imread(str(out)).shape == image.shape


def test_a_snapshot_without_a_code_exits_1(tmp_path: Path, capsys) -> None:
    plain = tmp_path / "plain.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240",
                    "-frames:v", "3", str(plain)], check=True, timeout=60)
    assert main(["snapshot", str(plain), "-o", str(tmp_path / "plain.png")]) == 1
    assert "no frame code" in capsys.readouterr().out


@pytest.mark.parametrize(("args", "words"), [
    (["snapshot", "0", "-o", "shot.gif"], "write a .png or .jpg"),
    (["snapshot", "0", "-o", "/nonexistent/shot.png"], "does not exist"),
    (["snapshot", "/nonexistent.mp4", "-o", "shot.png"], "no such file"),
    (["snapshot", "0", "-o", "shot.png"], "no running farm"),
    (["recordings", "zero"], "not an index"),
    (["recordings"], "no running farm"),
])
def test_bad_snapshot_and_recordings_input_is_one_line_and_exit_2(capsys, args: list[str], words: str) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1


def test_snapshot_of_an_unreachable_stream_is_an_environment_problem() -> None:
    with reserve_ports(1) as free, pytest.raises(EnvironmentProblem, match="no picture"):
        grab(f"rtsp://127.0.0.1:{free.ports[0]}/cam", timeout=10)


# --- reclaiming after a supervisor died -----------------------------------------------------------

# A farm publishing through a MediaMTX it started (a plan as PublishOptions.resolve makes it): only
# such a farm has processes (the server) whose sessions hold more of its processes (the hooks).
MANAGED_PLAN = {"record": False, "binary": "/opt/mediamtx", "api": None, "record_format": "fmp4",
                "segment_seconds": None, "camera_paths": True}

def test_reclaim_kills_a_dead_supervisors_server_and_what_it_started() -> None:
    # A session leader with two children in process groups of their own, as MediaMTX runs its hooks.
    leader = subprocess.Popen(["sh", "-c", "set -m; sleep 300 & sleep 300 & echo started; exec sleep 300"],
                              start_new_session=True, stdout=subprocess.PIPE, text=True)
    assert leader.stdout is not None and leader.stdout.readline() == "started\n"
    members = session_members(leader.pid)
    assert len(members) == 2
    record = FarmRecord(name="lab", spec={"cameras": [], "publish": MANAGED_PLAN}, phase="running")
    record.directory.mkdir(parents=True)
    record.processes.append(ProcessId.of(leader.pid))  # type: ignore[arg-type]
    record.save()
    reclaim(record)
    assert leader.wait(timeout=10) == -signal.SIGKILL
    assert session_members(leader.pid) == []
    assert all(ProcessId.of(pid) is None for pid in members)
    assert not record.directory.exists()


def test_reclaim_leaves_alone_a_session_whose_leader_pid_is_someone_elses() -> None:
    stranger = subprocess.Popen(["sh", "-c", "set -m; sleep 300 & echo started; exec sleep 300"],
                                start_new_session=True, stdout=subprocess.PIPE, text=True)
    try:
        assert stranger.stdout is not None and stranger.stdout.readline() == "started\n"
        ours = ProcessId.of(stranger.pid)
        assert ours is not None
        record = FarmRecord(name="lab", spec={"cameras": [], "publish": MANAGED_PLAN}, phase="running",
                            processes=[ProcessId(ours.pid, ours.start_ticks - 1)])  # the pid was reused
        record.directory.mkdir(parents=True)
        record.save()
        reclaim(record)
        assert stranger.poll() is None and len(session_members(stranger.pid)) == 1
    finally:
        os.killpg(stranger.pid, signal.SIGKILL)
        for pid in session_members(stranger.pid):
            os.kill(pid, signal.SIGKILL)
        stranger.wait()


def test_record_segment_length_comes_from_the_file_or_the_flag(tmp_path: Path) -> None:
    path = tmp_path / "farm.yaml"
    path.write_text("publish: true\nrecord: true\nrecord_segment: 1m\n")
    plan = config.load(str(path))
    assert plan.publish({}).segment_seconds == 60
    assert plan.publish({"record_segment": "2s"}).segment_seconds == 2
    for bad, words in (("1.5s", "whole number"), ("soon", "not a duration")):
        with pytest.raises(BadInput, match=words):
            plan.publish({"record_segment": bad})
    with pytest.raises(BadInput, match="record-segment needs record"):
        config.FarmPlan().publish({"publish": True, "record_segment": "2s"})


# --- stream faults the proxy carries out: no server needed ---------------------------------------

class _Echo(socketserver.BaseRequestHandler):
    """Stands for the RTSP port behind the proxy: a byte stream, nothing about RTSP is claimed."""

    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[tuple[publishing.Publisher, LiveCamera, Path]]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    log_path = tmp_path / "faults.jsonl"
    log = FaultLog.open(log_path)
    cam = camera()
    # Nothing here calls the API: toxics act in the proxy alone.
    publisher = publishing.Publisher(ApiClient("http://127.0.0.1:9"), server.server_address[:2], [cam], log,
                                     None, lambda pid: None, "ffmpeg", NEWEST)
    yield publisher, cam, log_path
    publisher.close()
    log.close()
    server.shutdown()
    server.server_close()


def round_trip(url: str) -> float:
    address = urllib.parse.urlsplit(url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        began = time.monotonic()
        sock.sendall(b"OPTIONS")
        assert sock.recv(16) == b"OPTIONS"
        return time.monotonic() - began


def test_a_toxic_on_one_camera_reaches_its_proxied_url_is_logged_and_cleared(proxied) -> None:
    publisher, cam, log_path = proxied
    url = publisher.proxy_url(cam)
    # Wide margins: the delay is a lower bound, but a loaded machine may stall a round trip a while.
    assert url.endswith("/simfarm-lab-0") and round_trip(url) < 0.5
    reply = publisher.inject(cam, FaultSpec.parse("latency 1000"))
    assert publisher.camera_status(cam)["toxics"] == ["latency"]
    assert round_trip(url) >= 1.0
    assert [h.id for h in cam.active_faults()] == [reply["fault"]]
    with pytest.raises(BadInput, match="already has latency"):
        publisher.inject(cam, FaultSpec.parse("latency 50"))
    cam.stream_faults[reply["fault"]].clear()
    assert round_trip(url) < 0.5 and cam.active_faults() == []
    assert [(line["event"], line["kind"], line.get("reason")) for line in read_log(log_path)] == [
        ("start", "latency", None), ("end", "latency", "cleared")]


def test_a_timed_toxic_ends_by_itself_and_close_stops_the_rest(proxied) -> None:
    publisher, cam, log_path = proxied
    publisher.inject(cam, FaultSpec.parse("bandwidth 10", duration="200ms"))
    publisher.inject(cam, FaultSpec.parse("timeout"))
    deadline = time.monotonic() + 10
    while "bandwidth" in publisher.camera_status(cam)["toxics"]:
        assert time.monotonic() < deadline, "the bandwidth toxic did not end"
        time.sleep(0.05)
    publisher.close()
    assert cam.active_faults() == []
    assert sorted((line["kind"], line["reason"]) for line in read_log(log_path) if line["event"] == "end") == [
        ("bandwidth", "duration"), ("timeout", "stopped")]


def test_status_shows_the_server_and_each_cameras_urls_and_path_state() -> None:
    camera_row = {"camera": 0, "rtsp_url": "rtsp://127.0.0.1:20000/simfarm-a-0", "available": False, "readers": 0,
                  "proxy_url": "rtsp://127.0.0.1:40000/simfarm-a-0", "toxics": ["latency", "reset"],
                  "publisher_restarts": 2}
    managed = {"managed": True, "version": "v1.20.1", "pid": 12, "api": "http://127.0.0.1:20001",
               "rtsp": "rtsp://127.0.0.1:20000/", "log": "/run/simfarm/farms/a/mediamtx/mediamtx.log"}
    text = publish_cmd.describe({"publish": managed, "cameras": [camera_row]})
    assert "MediaMTX v1.20.1 (pid 12)" in text and managed["log"] in text
    row = text.splitlines()[-1].split()
    assert row == ["0", camera_row["rtsp_url"], "NO", "0", camera_row["proxy_url"], "latency,", "reset", "2"]
    external = {**managed, "managed": False, "version": "v1.19.1", "pid": None, "log": None}
    assert "MediaMTX v1.19.1 at http://127.0.0.1:20001" in publish_cmd.describe({"publish": external, "cameras": []})
    assert "not managed by simfarm" in publish_cmd.describe({"publish": external, "cameras": []})


def test_a_camera_renegotiates_with_its_own_readers_off_the_node_and_back_after() -> None:
    cam, steps = camera(), []

    @contextlib.contextmanager
    def guard(name: str) -> Iterator[None]:
        steps.append(f"{name} off")
        try:
            yield
        finally:
            steps.append(f"{name} back")

    cam.node_guards += [lambda: guard("publisher"), lambda: guard("other")]
    with pytest.raises(RuntimeError), cam.node_to_itself():
        steps.append("switch")
        raise RuntimeError("the switch failed")
    assert steps == ["publisher off", "other off", "switch", "other back", "publisher back"]
