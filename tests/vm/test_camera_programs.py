"""Common camera programs on farm cameras, checked by the frame codes they deliver (issue 22).

µStreamer serves a JPEG snapshot of a loopback and of a uvc camera; PipeWire
(with WirePlumber, headless on a private D-Bus session bus) lists both as
Video/Source nodes, streams the webcam through ``pipewiresrc`` and follows its
unplug and replug, but cannot stream the loopback camera; libcamera's ``cam -l``
lists neither. docs/camera-programs.md gives the reasons for both limits, and
the tests assert the exact failures so that a change is noticed. Debian bookworm's packages, installed by scripts/setup-vm.sh.

Runs inside `simfarm vm` (or on a host with v4l2loopback >= 0.13).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from simfarm import Farm
from simfarm.devices.loopback.control import PIPEWIRE_BUFFERS
from simfarm.farm.farm import Camera
from simfarm.frames.code import FrameCode, decode
from simfarm.spec import CameraSpec, Size

from kernel_helpers import wait_until

pytestmark = pytest.mark.hil

SIZE = Size(320, 240)
LOOPBACK_SPEC = CameraSpec.parse(size=str(SIZE), fps=15, format="YUYV")
UVC_SPEC = CameraSpec.parse(size=str(SIZE), fps=15, profile=str(Path(__file__).parents[1] / "data" / "uvc-test.yaml"))
# Program start-up and first frames under TCG emulation take seconds, not milliseconds.
START_S = 120.0


@pytest.fixture(scope="module")
def farms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Farm]]:
    """A loopback farm of two cameras with the ring PipeWire asks for, and a uvc farm of one webcam."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SIMFARM_STATE_DIR", str(tmp_path_factory.mktemp("programs")))
        with Farm.provision(2, name="lb", spec=LOOPBACK_SPEC, loopback_buffers=PIPEWIRE_BUFFERS) as loopback, \
                Farm.provision(1, name="usb", spec=UVC_SPEC, backend="uvc") as usb:
            yield {"loopback": loopback, "uvc": usb}


@pytest.fixture(autouse=True)
def _in_farms_state(farms: dict[str, Farm], monkeypatch: pytest.MonkeyPatch) -> None:
    # Each test gets a private state directory (tests/conftest.py); these work in the farms' one.
    monkeypatch.setenv("SIMFARM_STATE_DIR", str(farms["uvc"].state_dir.parent.parent))


# The loopback farm's second camera: its code (1) differs from the webcam's (0), so a
# program that read the wrong node is caught.
CAMERA_OF = {"loopback": 1, "uvc": 0}


def camera(farms: dict[str, Farm], backend: str) -> Camera:
    """The camera of ``backend`` these tests use, as the farm knows it now (a replug renumbers it)."""
    return farms[backend].reload().camera(CAMERA_OF[backend])


def assert_codes_of(codes: list[FrameCode | None], camera_id: int) -> None:
    """Every frame carries a code, and it is camera ``camera_id``'s."""
    assert codes and all(code is not None and code.camera == camera_id for code in codes), codes


def stop(process: subprocess.Popen) -> int:
    """SIGTERM, as a service manager stops a program; its exit status."""
    process.terminate()
    return process.wait(timeout=60)


# -- µStreamer ---------------------------------------------------------------

def free_port() -> int:
    """A TCP port on 127.0.0.1 that no one listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fetch_snapshot(url: str, server: subprocess.Popen, log: Path) -> bytes:
    """The first JPEG µStreamer serves from the camera: refused until it listens, then its blank
    "no signal" picture (X-UStreamer-Online: false) until its capture is online."""
    body = b""

    def served() -> bool:
        nonlocal body
        assert server.poll() is None, f"ustreamer exited {server.returncode}: {log.read_text()}"
        try:
            with urllib.request.urlopen(url, timeout=10) as answer:
                body = answer.read()
                return answer.headers["X-UStreamer-Online"] == "true"
        except (urllib.error.URLError, ConnectionError):
            return False

    wait_until(served, f"a snapshot from {url}", timeout=START_S)
    return body


@pytest.mark.parametrize("backend", ["loopback", "uvc"])
def test_ustreamer_serves_a_snapshot_carrying_the_cameras_code(farms: dict[str, Farm], backend: str,
                                                               tmp_path: Path) -> None:
    cam = camera(farms, backend)
    port = free_port()
    log = tmp_path / "ustreamer.log"
    with log.open("w") as out:
        server = subprocess.Popen(["ustreamer", "-d", cam.device, "-m", "YUYV", "-r", str(SIZE),
                                   "--host", "127.0.0.1", "--port", str(port)], stdout=out, stderr=subprocess.STDOUT)
    try:
        jpeg = fetch_snapshot(f"http://127.0.0.1:{port}/snapshot", server, log)
    finally:
        status = stop(server)
    gray = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert gray.shape == (SIZE.height, SIZE.width)
    assert_codes_of([decode(gray)], CAMERA_OF[backend])
    assert status == 0, log.read_text()
    assert "unexpected writing event" not in log.read_text()  # the unpatched loopback's failure
    # It let go of the node: another reader streams the camera's frames.
    assert_codes_of(read_v4l2(cam.device), CAMERA_OF[backend])


def read_v4l2(device: str, count: int = 2) -> list[FrameCode | None]:
    """``count`` YUYV frames straight from the node (FFmpeg), as luma."""
    done = subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "v4l2", "-input_format", "yuyv422",
                           "-video_size", str(SIZE), "-i", device, "-frames:v", str(count),
                           "-f", "rawvideo", "-pix_fmt", "gray", "-"], capture_output=True, timeout=START_S, check=False)
    assert done.returncode == 0, done.stderr.decode()
    return [decode(frame) for frame in np.frombuffer(done.stdout, np.uint8).reshape(-1, SIZE.height, SIZE.width)]


# -- PipeWire ----------------------------------------------------------------

@dataclass(frozen=True)
class Session:
    """A running PipeWire session: the environment a client needs to reach it, and its daemons' logs."""
    env: dict[str, str]
    logs: Path

    def log_tails(self) -> str:
        return "\n".join(f"--- {log.name}\n" + "\n".join(log.read_text().splitlines()[-30:])
                         for log in sorted(self.logs.iterdir()))


@pytest.fixture(scope="module")
def pipewire(farms: dict[str, Farm], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    """PipeWire and WirePlumber as a desktop session runs them, headless: a private D-Bus session
    bus and runtime directory."""
    runtime = tmp_path_factory.mktemp("xdg-runtime")
    runtime.chmod(0o700)
    logs = tmp_path_factory.mktemp("pipewire-logs")
    env = dict(os.environ, XDG_RUNTIME_DIR=str(runtime))
    bus = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--print-address"],
                           stdout=subprocess.PIPE, text=True, env=env)
    daemons = [bus]
    try:
        assert bus.stdout is not None
        env["DBUS_SESSION_BUS_ADDRESS"] = bus.stdout.readline().strip()
        for program in ("pipewire", "wireplumber"):
            with (logs / f"{program}.log").open("w") as out:
                daemons.append(subprocess.Popen([program], env=env, stdout=out, stderr=subprocess.STDOUT))
            if program == "pipewire":
                wait_until((runtime / "pipewire-0").exists, "PipeWire's socket", timeout=START_S)
        yield Session(env, logs)
    finally:
        for daemon in reversed(daemons):
            stop(daemon)


def video_sources(session: Session) -> dict[str, int]:
    """PipeWire's Video/Source nodes, as `pw-dump` lists them: V4L2 device path -> node id."""
    done = subprocess.run(["pw-dump"], capture_output=True, text=True, env=session.env, timeout=60, check=True)
    nodes = {}
    for obj in json.loads(done.stdout):
        props = (obj.get("info") or {}).get("props") or {}
        if obj["type"] == "PipeWire:Interface:Node" and props.get("media.class") == "Video/Source":
            nodes[props["api.v4l2.path"]] = obj["id"]
    return nodes


def pipewiresrc(session: Session, node: int, out: Path, count: int = 3) -> subprocess.CompletedProcess:
    """Write ``count`` frames of PipeWire node ``node`` to ``out`` as luma, through GStreamer's
    pipewiresrc (to a file: gst-launch prints its errors on stdout)."""
    return subprocess.run(["gst-launch-1.0", "pipewiresrc", f"path={node}", f"num-buffers={count}",
                           "!", f"video/x-raw,format=YUY2,width={SIZE.width},height={SIZE.height}",
                           "!", "videoconvert", "!", "video/x-raw,format=GRAY8", "!", "filesink", f"location={out}"],
                          capture_output=True, text=True, env=session.env, timeout=START_S, check=False)


def read_pipewire(session: Session, node: int, out: Path) -> list[FrameCode | None]:
    """The codes of a few frames of PipeWire node ``node``."""
    done = pipewiresrc(session, node, out)
    assert done.returncode == 0, done.stdout + done.stderr + session.log_tails()
    return [decode(frame) for frame in np.fromfile(out, np.uint8).reshape(-1, SIZE.height, SIZE.width)]


def test_pipewire_lists_every_farm_camera_as_a_video_source(farms: dict[str, Farm], pipewire: Session) -> None:
    devices = {cam.device for farm in farms.values() for cam in farm.cameras}
    wait_until(lambda: devices <= video_sources(pipewire).keys(), f"Video/Source nodes for {sorted(devices)}",
               timeout=START_S)


def test_pipewire_streams_a_webcams_frames(farms: dict[str, Farm], pipewire: Session, tmp_path: Path) -> None:
    cam = camera(farms, "uvc")
    wait_until(lambda: cam.device in video_sources(pipewire), f"a node for {cam.device}", timeout=START_S)
    assert_codes_of(read_pipewire(pipewire, video_sources(pipewire)[cam.device], tmp_path / "frames"),
                    CAMERA_OF["uvc"])


def test_pipewiresrc_cannot_stream_a_loopback_camera_for_want_of_expbuf(farms: dict[str, Farm], pipewire: Session,
                                                                        tmp_path: Path) -> None:
    # A measured limit (docs/camera-programs.md#pipewire): with the 16 buffers it asks for, PipeWire's
    # V4L2 source must hand pipewiresrc memfd or dmabuf buffers (data types 0xc), which it makes with
    # VIDIOC_EXPBUF; v4l2loopback has no EXPBUF, and mmap'd memory is all it could offer.
    cam = camera(farms, "loopback")
    wait_until(lambda: cam.device in video_sources(pipewire), f"a node for {cam.device}", timeout=START_S)
    done = pipewiresrc(pipewire, video_sources(pipewire)[cam.device], tmp_path / "frames")
    assert done.returncode != 0 and "Failed to set pipeline to PAUSED" in done.stderr, done.stdout + done.stderr
    daemon = (pipewire.logs / "pipewire.log").read_text()
    assert "mmap_init()] unsupported data type:0000000c" in daemon, daemon
    assert "can't negotiate buffers on port" in daemon, daemon


def test_pipewire_sees_a_webcam_unplugged_and_replugged(farms: dict[str, Farm], pipewire: Session,
                                                        tmp_path: Path) -> None:
    cam = camera(farms, "uvc")
    wait_until(lambda: cam.device in video_sources(pipewire), f"a node for {cam.device}", timeout=START_S)
    with cam.inject("unplug"):
        wait_until(lambda: cam.device not in video_sources(pipewire), "the node to go", timeout=START_S)
    back = camera(farms, "uvc")
    wait_until(lambda: back.device in video_sources(pipewire), f"a node for {back.device}", timeout=START_S)
    assert_codes_of(read_pipewire(pipewire, video_sources(pipewire)[back.device], tmp_path / "frames"),
                    CAMERA_OF["uvc"])


# -- libcamera ---------------------------------------------------------------

def test_libcamera_lists_no_farm_camera_and_says_why_for_a_webcam(farms: dict[str, Farm]) -> None:
    # libcamera handles no v4l2loopback node at all. Its UVC handler claims the webcam's media
    # device, then names the camera after the firmware (ACPI or device tree) node above its USB
    # device, which vhci-hcd does not have, and drops it (docs/camera-programs.md).
    done = subprocess.run(["cam", "-l"], capture_output=True, text=True, timeout=START_S, check=False,
                          env=dict(os.environ, LIBCAMERA_LOG_LEVELS="DeviceEnumerator:DEBUG"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "Available cameras:", done.stdout  # and not one listed after it
    webcams = len(farms["uvc"].cameras)
    for line in ('Successful match for media device "uvcvideo"', "Can not find controller ID",
                 "Failed to generate camera ID"):
        assert done.stderr.count(line) == webcams, done.stderr
