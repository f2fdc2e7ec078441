"""The publisher's FFmpeg on a real camera node, and `provision --publish` without MediaMTX, in the kernel.

MediaMTX itself is not needed: the publisher's own argv runs with its RTSP
output swapped for a file (what MediaMTX would receive).
"""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from simfarm import Farm
from simfarm.frames.code import decode
from simfarm.frames.video import read_luma
from simfarm.publishers.mediamtx.binary import ENV
from simfarm.publishers.mediamtx.hooks import PUBLISH_OUTPUT, v4l2_publish_argv
from simfarm.spec import CameraSpec

pytestmark = pytest.mark.hil

SMALL = CameraSpec.parse(size="320x240", fps=15, pattern="ball")


@pytest.fixture(scope="module")
def farm() -> Iterator[Farm]:
    with Farm.provision(1, name="feed", spec=SMALL) as made:
        yield made


def publisher(device: str, out: Path, *extra: str) -> list[str]:
    argv = v4l2_publish_argv(device, gop=15, ffmpeg="ffmpeg")
    assert tuple(argv[-len(PUBLISH_OUTPUT):]) == PUBLISH_OUTPUT
    return [*argv[:-len(PUBLISH_OUTPUT)], *extra, "-y", "-f", "h264", str(out)]


def test_the_publisher_reads_the_node_and_encodes_the_cameras_codes(farm: Farm, tmp_path: Path) -> None:
    out = tmp_path / "feed.h264"
    subprocess.run(publisher(farm.cameras[0].device, out, "-frames:v", "30"), check=True, timeout=120,
                   capture_output=True)
    codes = [decode(frame.luma) for frame in read_luma(str(out))]
    sequences = [c.sequence for c in codes if c is not None and c.camera == 0]
    assert len(sequences) >= 25 and sequences == sorted(set(sequences)), sequences


def test_a_publisher_on_a_stalled_camera_still_stops_on_sigint(farm: Farm, tmp_path: Path) -> None:
    # MediaMTX stops a hook with SIGINT and waits for it without end: a publisher that
    # could not stop would wedge the path (publisher-loss, unplug, teardown).
    cam = farm.cameras[0]
    out = tmp_path / "stalled.h264"
    proc = subprocess.Popen(publisher(cam.device, out), stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (out.exists() and out.stat().st_size):  # FFmpeg writes no event we could wait on
            assert proc.poll() is None and time.monotonic() < deadline, "the publisher did not start"
            time.sleep(0.1)
        with cam.inject("stall"):
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=15)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode is not None


def test_provision_publish_without_mediamtx_fails_before_any_device(tmp_path: Path) -> None:
    before = set(glob.glob("/dev/video*"))
    env = {**os.environ, "PATH": f"{tmp_path}:{os.path.dirname(sys.executable)}:/usr/bin:/bin"}
    env.pop(ENV, None)
    done = subprocess.run([sys.executable, "-m", "simfarm", "provision", "--cameras", "2", "--publish",
                           "--farm", "nomtx"], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 1
    assert "github.com/bluenviron/mediamtx/releases" in done.stderr
    assert set(glob.glob("/dev/video*")) == before
    assert "nomtx" not in subprocess.run([sys.executable, "-m", "simfarm", "status"], capture_output=True,
                                         text=True, timeout=60, env=env).stdout
