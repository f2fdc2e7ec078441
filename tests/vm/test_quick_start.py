"""The README's first quick-start command does what it says: scripts/demo.sh (here its
``--inside`` half, the part that runs where the kernel can host cameras) provisions four
loopback cameras and two uvc webcams, reads each back with ``simfarm verify`` and leaves
nothing behind."""

from __future__ import annotations

import glob
import re
import subprocess
from pathlib import Path

import pytest

from simfarm.state.records import farm_names

pytestmark = pytest.mark.hil

DEMO = Path(__file__).resolve().parents[2] / "scripts" / "demo.sh"
# verify's summary line for each camera whose codes it decoded
CAMERA_LINE = re.compile(r"^\s+camera (\d+): received (\d+), missing (\d+)", re.MULTILINE)


def test_the_demo_verifies_every_camera_it_provisions_and_leaves_nothing() -> None:
    nodes_before = set(glob.glob("/dev/video*"))
    farms_before = set(farm_names())
    done = subprocess.run([str(DEMO), "--inside"], capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    loopback, _, usb = done.stdout.partition("== two USB webcams")
    assert usb, "the demo left the USB webcams out: " + done.stdout[-1000:]
    for part, cameras, frames in ((loopback, 4, 60), (usb, 2, 30)):
        seen = {int(cam): (int(received), int(missing)) for cam, received, missing in CAMERA_LINE.findall(part)}
        # Each node gave its own camera's codes: one line per camera, none twice.
        assert sorted(seen) == list(range(cameras)), part
        assert all(received >= frames for received, _ in seen.values()), part
    assert set(glob.glob("/dev/video*")) == nodes_before
    assert set(farm_names()) == farms_before
