"""Issue 12, frames: a USB webcam made in userspace on vhci-hcd (simfarm.devices.usbip_device) is
driven by uvcvideo and streams frames whose codes decode, in the format and size the reader chose.

Runs inside `simfarm vm`. One webcam serves the module.
"""

from __future__ import annotations

import os
import select
import subprocess
from collections.abc import Iterator
from fractions import Fraction

import numpy as np
import pytest
import pyudev
from linuxpy.video import device as v4l2

from simfarm.backends.uvc_webcam import UsbWebcam
from simfarm.devices import uevents, usbip
from simfarm.devices.uvc_gadget import Control, Format, FrameSize, Profile
from simfarm.frames.code import decode
from simfarm.patterns import PatternLibrary
from simfarm.spec import PixelFormat, Size

pytestmark = pytest.mark.hil

SIZES = (FrameSize(Size(320, 240), (Fraction(15),)), FrameSize(Size(640, 480), (Fraction(15),)))
PROFILE = Profile(name="test", vendor_id=0x1D6B, product_id=0x0102, manufacturer="simfarm", product="Bulk Webcam",
                  serial="simfarm-test-usb-0",
                  formats=(Format(PixelFormat.YUYV, SIZES), Format(PixelFormat.MJPEG, SIZES)),
                  controls=(Control("brightness", -64, 64, 1, 0), Control("contrast", 0, 100, 1, 50)))
CONTRAST = 0x00980901  # V4L2_CID_CONTRAST
FFMPEG_INPUT = {PixelFormat.YUYV: "yuyv422", PixelFormat.MJPEG: "mjpeg"}


@pytest.fixture(scope="module")
def webcam() -> Iterator[UsbWebcam]:
    cam = UsbWebcam(0, PROFILE, PatternLibrary())
    try:
        cam.plug()
        yield cam
    finally:
        cam.unplug()
    assert usbip.find(PROFILE.serial) is None


def test_uvcvideo_drives_it_and_udev_names_it_by_its_usb_identity(webcam: UsbWebcam) -> None:
    assert webcam.device is not None
    fd = os.open(webcam.device, os.O_RDWR | os.O_NONBLOCK)
    try:
        assert v4l2.read_capabilities(fd).driver.decode() == "uvcvideo"
    finally:
        os.close(fd)
    subprocess.run(["udevadm", "settle", "--timeout=60"], check=True)
    props = pyudev.Devices.from_device_file(pyudev.Context(), webcam.device).properties
    assert (props["ID_BUS"], props["ID_VENDOR_ID"], props["ID_MODEL_ID"]) == ("usb", "1d6b", "0102")
    link = f"/dev/v4l/by-id/usb-simfarm_Bulk_Webcam_{PROFILE.serial}-video-index0"
    assert os.path.realpath(link) == webcam.device


def test_controls_a_reader_sets_reach_the_webcam(webcam: UsbWebcam) -> None:
    assert webcam.device is not None
    fd = os.open(webcam.device, os.O_RDWR | os.O_NONBLOCK)
    try:
        assert v4l2.get_control(fd, CONTRAST) == 50
        v4l2.set_control(fd, CONTRAST, 80)
        # The device answers SET_CUR before S_CTRL returns: nothing to wait for.
        assert webcam.usb.requests.control("contrast") == 80
    finally:
        os.close(fd)


@pytest.mark.parametrize("fmt", [PixelFormat.YUYV, PixelFormat.MJPEG])
@pytest.mark.parametrize("size", [Size(320, 240), Size(640, 480)])
def test_ffmpeg_reads_frame_codes_in_the_format_and_size_it_chose(webcam: UsbWebcam, fmt: PixelFormat,
                                                                   size: Size) -> None:
    assert webcam.device is not None
    done = subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "v4l2", "-input_format",
                           FFMPEG_INPUT[fmt], "-video_size", str(size), "-i", webcam.device, "-frames:v", "4",
                           "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "gray", "-"],
                          capture_output=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr.decode()
    frames = np.frombuffer(done.stdout, np.uint8).reshape(-1, size.height, size.width)
    codes = [decode(frame) for frame in frames]
    assert len(codes) == 4 and all(code is not None and code.camera == 0 for code in codes), codes
    sequences = [code.sequence for code in codes if code is not None]
    assert sequences == sorted(sequences) and len(set(sequences)) == 4


def test_unplug_under_a_streaming_reader_fails_it_like_a_pulled_cable_and_replug_streams_again(
        webcam: UsbWebcam) -> None:
    old = webcam.device
    assert old is not None
    size = Size(320, 240)
    reader = subprocess.Popen(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "v4l2", "-input_format", "yuyv422",
                               "-video_size", str(size), "-i", old, "-fps_mode", "passthrough", "-f", "rawvideo",
                               "-pix_fmt", "gray", "-"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert reader.stdout is not None
        assert select.select([reader.stdout], [], [], 120)[0], "no frame within 120 s"
        first = reader.stdout.read(size.width * size.height)  # streaming: a whole frame arrived
        assert decode(np.frombuffer(first, np.uint8).reshape(size.height, size.width)) is not None
        watch = uevents.Watch("video4linux")
        webcam.unplug()
        _, err = reader.communicate(timeout=120)
        watch.until(lambda: True if not os.path.exists(old) else None, f"{old} going", 60)
    finally:
        reader.kill()
    # FFmpeg reports the error and ends its input (exit 0): the reader saw ENODEV at DQBUF.
    assert b"VIDIOC_DQBUF): No such device" in err, err
    webcam.plug()
    assert webcam.device is not None and usbip.find(PROFILE.serial) is not None
    test_ffmpeg_reads_frame_codes_in_the_format_and_size_it_chose(webcam, PixelFormat.YUYV, size)
