"""Issue 3 in the kernel: provision, read back, tear down, crash recovery, isolation.

Runs inside `simfarm vm` (or on a host with v4l2loopback >= 0.13).
"""

from __future__ import annotations

import os
import signal
import subprocess
import urllib.request

import cv2
import numpy as np
import pyudev
import pytest
from linuxpy.video import device as v4l2
from prometheus_client.parser import text_string_to_metric_families

from simfarm import Farm
from simfarm.devices.loopback.control import LoopbackConfig, LoopbackControl
from simfarm.devices.v4l2 import nodes
from simfarm.frames import pixfmt
from simfarm.frames.code import FrameCode, decode
from simfarm.spec import CameraSpec, PixelFormat, Size
from simfarm.state.records import ProcessId, farm_names

from kernel_helpers import simfarm, video_nodes

pytestmark = pytest.mark.hil

SMALL = CameraSpec.parse(size="320x240", fps=15)


def assert_increasing_codes(codes: list[FrameCode | None], camera: int) -> None:
    got = [c for c in codes if c is not None]
    assert got, "no frame decoded"
    assert {c.camera for c in got} == {camera}
    seqs = [c.sequence for c in got]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), seqs


def read_ffmpeg(device: str, count: int = 5) -> list[FrameCode | None]:
    fd = os.open(device, os.O_RDONLY)
    try:
        fmt = v4l2.get_format(fd, v4l2.BufferType.VIDEO_CAPTURE)
    finally:
        os.close(fd)
    # passthrough: without it FFmpeg repeats frames to fill gaps in the capture timestamps
    # (a loaded machine), and a repeat would look like a duplicate sent by the camera.
    # FFmpeg holds its first packet (a dequeued mmap buffer) while it probes the stream, and
    # v4l2loopback writes into dequeued buffers too: on a loaded machine the writer laps the
    # ring meanwhile and that first frame turns into a later one. So it is read and left out.
    out = subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "v4l2", "-i", device,
                          "-fps_mode", "passthrough", "-frames:v", str(count + 1),
                          "-f", "rawvideo", "-pix_fmt", "gray", "-"],
                         capture_output=True, timeout=60, check=True).stdout
    frames = np.frombuffer(out, np.uint8).reshape(-1, fmt.height, fmt.width)
    return [decode(f) for f in frames[1:]]


def read_opencv(device: str, count: int = 5) -> list[FrameCode | None]:
    cap = cv2.VideoCapture(device, cv2.CAP_V4L2)
    assert cap.isOpened(), f"OpenCV could not open {device}"
    try:
        codes = []
        for _ in range(count):
            ok, bgr = cap.read()
            assert ok
            codes.append(decode(cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV)[:, :, 0]))
        return codes
    finally:
        cap.release()


def read_linuxpy(device: str, count: int = 5) -> list[FrameCode | None]:
    codes = []
    # v4l2loopback hands out buffers from its whole ring (max_buffers), whatever
    # count the reader asked for; linuxpy indexes by the count it asked for.
    with v4l2.Device(device) as dev, v4l2.VideoCapture(dev, size=LoopbackConfig.max_buffers) as stream:
        for frame in stream:
            fmt = PixelFormat.from_fourcc(int(frame.pixel_format))
            luma = pixfmt.luma(np.frombuffer(frame.data, np.uint8), fmt, Size(frame.width, frame.height))
            codes.append(decode(luma))
            if len(codes) == count:
                return codes
    return codes


@pytest.fixture
def uevents():
    context = pyudev.Context()
    monitor = pyudev.Monitor.from_netlink(context)
    monitor.filter_by("video4linux")
    monitor.start()
    events: list[tuple[str, str]] = []

    def drain() -> list[tuple[str, str]]:
        while (dev := monitor.poll(timeout=0.5)) is not None:
            events.append((dev.action, dev.device_node))
        return events
    yield drain


def test_provision_four_cameras_every_reader_sees_its_codes(uevents) -> None:
    before = video_nodes()
    result = simfarm("provision", "--cameras", "4", "--farm", "four", "--size", "320x240", "--fps", "15")
    assert result.returncode == 0, result.stderr
    try:
        farm = Farm.attach("four")
        assert [c.label for c in farm.cameras] == [f"simfarm-four-{i}" for i in range(4)]
        assert video_nodes() - before == {c.device for c in farm.cameras}
        for cam in farm.cameras:
            assert cam.device in result.stdout and cam.label in result.stdout
            assert nodes.card_label(cam.number) == cam.label
            assert nodes.is_capture_device(cam.device)
            assert_increasing_codes(read_ffmpeg(cam.device), cam.index)
            assert_increasing_codes(read_opencv(cam.device), cam.index)
            assert_increasing_codes(read_linuxpy(cam.device), cam.index)
            assert os.path.realpath(cam.by_id) == cam.device
        added = {node for action, node in uevents() if action == "add"}
        assert {c.device for c in farm.cameras} <= added
    finally:
        assert simfarm("teardown", "--farm", "four").returncode == 0


def test_teardown_leaves_nothing_and_is_idempotent() -> None:
    before = video_nodes()
    farm = Farm.provision(2, name="gone", spec=SMALL)
    pid = farm.supervisor_pid
    first = simfarm("teardown", "--farm", "gone")
    assert first.returncode == 0 and "torn down" in first.stdout
    assert video_nodes() == before
    # gone, or a zombie until this test process (its parent) reaps it
    assert ProcessId.of(pid) is None
    assert "gone" not in farm_names() and not farm.state_dir.exists()
    second = simfarm("teardown", "--farm", "gone")
    assert second.returncode == 0 and "nothing to do" in second.stdout


@pytest.mark.parametrize("args, words", [
    (["--cameras", "0"], "cameras must be"),
    (["--cameras", "1000"], "cameras must be"),
    (["--size", "0x0"], "width 0"),
    (["--pattern", "no-such-pattern"], "no-such-pattern"),
])
def test_bad_input_exits_2_and_creates_nothing(args: list[str], words: str) -> None:
    before = video_nodes()
    result = simfarm("provision", "--farm", "bad", *args)
    assert result.returncode == 2, result.stderr
    assert words in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert video_nodes() == before and "bad" not in farm_names()


def test_taken_node_number_exits_2_and_creates_nothing() -> None:
    with Farm.provision(1, name="holder", spec=SMALL) as holder:
        taken = holder.cameras[0].number
        before = video_nodes()
        result = simfarm("provision", "--farm", "bad", "--cameras", "2", "--nodes", f"{taken + 1},{taken}")
        assert result.returncode == 2 and "taken" in result.stderr
        assert video_nodes() == before


def test_metrics_of_a_provisioned_farm_and_a_taken_metrics_port() -> None:
    with Farm.provision(2, name="metered", spec=SMALL, metrics_listen="127.0.0.1:0") as farm:
        listen = farm.status()["metrics"]["listen"]
        with urllib.request.urlopen(f"http://{listen}/metrics", timeout=60) as reply:
            text = reply.read().decode()
        written = {s.labels["camera"]: s.value for family in text_string_to_metric_families(text)
                   for s in family.samples if s.name == "simfarm_frames_written_total"}
        assert sorted(written) == ["0", "1"] and all(value > 0 for value in written.values())
        before = video_nodes()
        result = simfarm("provision", "--farm", "bad", "--cameras", "1", "--metrics-listen", listen)
        assert result.returncode == 2, result.stderr
        assert "metrics listen address" in result.stderr and len(result.stderr.strip().splitlines()) == 1
        assert video_nodes() == before and "bad" not in farm_names()


def test_sigkilled_supervisor_is_reclaimed_by_the_next_command() -> None:
    before = video_nodes()
    farm = Farm.provision(2, name="crash", spec=SMALL)
    os.kill(farm.supervisor_pid, signal.SIGKILL)
    status = simfarm("status")
    assert status.returncode == 0 and "crash" not in status.stdout
    assert video_nodes() == before and not farm.state_dir.exists()
    assert simfarm("teardown", "--farm", "crash").returncode == 0


def test_two_farms_side_by_side_and_teardown_of_one_keeps_the_other() -> None:
    with Farm.provision(2, name="left", spec=SMALL) as left, Farm.provision(2, name="right", spec=SMALL) as right:
        assert not {c.device for c in left.cameras} & {c.device for c in right.cameras}
        left.teardown()
        for cam in right.cameras:
            assert_increasing_codes(read_ffmpeg(cam.device), cam.index)
        assert right.status()["phase"] == "running"


def test_foreign_node_survives_teardown_all() -> None:
    with LoopbackControl() as control:
        number = control.add(LoopbackConfig(label="not-simfarm"))
    try:
        Farm.provision(1, name="mine", spec=SMALL)
        result = simfarm("teardown", "--all")
        assert result.returncode == 0
        assert nodes.card_label(number) == "not-simfarm"
    finally:
        with LoopbackControl() as control:
            control.remove(number)
