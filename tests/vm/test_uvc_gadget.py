"""Issue 12, the kernel half: a configfs UVC gadget answered by simfarm and plugged in over USB/IP
is a USB webcam driven by uvcvideo: the profile's formats, sizes and rates, its USB identity in
udev and by-id links, controls a reader sets reaching the webcam, and USB hotplug.

What it cannot do on stock kernels: stream. usbip-vudc completes every isochronous transfer
with -EXDEV (drivers/usb/usbip/vudc_transfer.c: "TODO: support"), and the stock UVC function
streams only isochronously; uvcvideo logs "Non-zero status (-18) in video completion handler".
The frame test is a strict xfail so that a kernel that carries them turns it into a failure
to look at. (Frames do flow from the userspace USB device: test_uvc_usb.py.)

Runs inside `simfarm vm`. One webcam serves the module (making it takes a while under emulation).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import pyudev
from linuxpy.video import device as v4l2

from simfarm.backends.uvc_webcam import Webcam
from simfarm.devices import uevents, usbip, uvc_gadget
from simfarm.devices.uvc_gadget import Control, Format, FrameSize, Profile
from simfarm.frames.code import decode
from simfarm.patterns import PatternLibrary
from simfarm.spec import PixelFormat, Size

from kernel_helpers import wait_until

pytestmark = pytest.mark.hil

SIZES = (FrameSize(Size(320, 240), (Fraction(30), Fraction(15))), FrameSize(Size(640, 480), (Fraction(15),)))
PROFILE = Profile(name="test", vendor_id=0x1D6B, product_id=0x0102, manufacturer="simfarm", product="Test Webcam",
                  serial="simfarm-test-uvc-0",
                  formats=(Format(PixelFormat.YUYV, SIZES), Format(PixelFormat.MJPEG, SIZES)),
                  controls=(Control("brightness", -64, 64, 1, 0),))
GADGET = "simfarm-test-uvc"
BRIGHTNESS = 0x00980900  # V4L2_CID_BRIGHTNESS
CAPTURE = v4l2.BufferType.VIDEO_CAPTURE


@pytest.fixture(scope="module")
def usbipd_port() -> Iterator[int]:
    usbip.load_modules()
    port = usbip.free_tcp_port()
    daemon = usbip.start_daemon(port)
    yield port
    daemon.kill()
    daemon.wait()


@pytest.fixture(scope="module")
def webcam(usbipd_port: int) -> Iterator[Webcam]:
    cam = Webcam(0, GADGET, PROFILE, PatternLibrary())
    try:
        cam.make(uvc_gadget.free_udcs()[0])
        cam.plug(usbipd_port)
        yield cam
    finally:
        cam.remove()
    assert not (uvc_gadget.CONFIGFS / GADGET).exists() and usbip.find(PROFILE.serial) is None


def _open(path: str) -> int:
    return os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)


def test_it_enumerates_as_a_uvcvideo_webcam_offering_the_profiles_formats_sizes_and_rates(webcam: Webcam) -> None:
    assert webcam.device is not None
    fd = _open(webcam.device)
    try:
        caps = v4l2.read_capabilities(fd)
        offered = {(PixelFormat.from_fourcc(int(fmt.pixel_format)), Size(frame.info.width, frame.info.height),
                    tuple(Fraction(i.min_fps).limit_denominator(1001) for i in v4l2.iter_read_frame_intervals(
                        fd, fmt.pixel_format, frame.info.width, frame.info.height)))
                   for fmt in v4l2.iter_read_formats(fd, CAPTURE)
                   for frame in v4l2.iter_read_frame_sizes(fd, fmt.pixel_format)}
    finally:
        os.close(fd)
    assert (caps.driver.decode(), caps.card.decode()) == ("uvcvideo", f"{PROFILE.product}: {PROFILE.product}")
    assert caps.device_caps & v4l2.Capability.VIDEO_CAPTURE
    assert offered == {(fmt.format, s.size, s.rates) for fmt in PROFILE.formats for s in fmt.sizes}


def test_udev_knows_it_as_a_usb_device_with_a_by_id_link_naming_the_profiles_strings(webcam: Webcam) -> None:
    subprocess.run(["udevadm", "settle", "--timeout=60"], check=True)
    assert webcam.device is not None
    props = pyudev.Devices.from_device_file(pyudev.Context(), webcam.device).properties
    assert (props["ID_BUS"], props["ID_VENDOR_ID"], props["ID_MODEL_ID"]) == ("usb", "1d6b", "0102")
    assert props["ID_SERIAL"] == f"simfarm_Test_Webcam_{PROFILE.serial}"
    link = Path(f"/dev/v4l/by-id/usb-simfarm_Test_Webcam_{PROFILE.serial}-video-index0")
    assert os.path.realpath(link) == webcam.device


def test_the_gadget_side_node_is_told_apart_by_its_driver_and_lack_of_capture(webcam: Webcam) -> None:
    assert webcam.udc is not None
    fd = _open(uvc_gadget.output_node(webcam.udc))
    try:
        caps = v4l2.read_capabilities(fd)
    finally:
        os.close(fd)
    assert caps.driver.decode() == "g_uvc" and not caps.device_caps & v4l2.Capability.VIDEO_CAPTURE


def test_a_control_a_reader_sets_reaches_the_webcam_and_reads_back(webcam: Webcam) -> None:
    assert webcam.device is not None and webcam.responder is not None
    fd = _open(webcam.device)
    try:
        query = v4l2.raw.v4l2_queryctrl(id=BRIGHTNESS)
        v4l2.ioctl(fd, v4l2.IOC.QUERYCTRL, query)
        assert (query.minimum, query.maximum, query.step, query.default_value) == (-64, 64, 1, 0)
        v4l2.set_control(fd, BRIGHTNESS, 20)
        # S_CTRL returns once the host's SET_CUR is done; the responder takes its data a moment later.
        wait_until(lambda: webcam.responder.requests.control("brightness") == 20, "the webcam taking brightness 20", 10)
        assert v4l2.get_control(fd, BRIGHTNESS) == 20
    finally:
        os.close(fd)


@pytest.mark.xfail(strict=True, reason="usbip-vudc has no isochronous transfers (-EXDEV): no frame reaches uvcvideo")
def test_ffmpeg_reads_frame_codes_in_the_format_it_chose(webcam: Webcam) -> None:
    assert webcam.device is not None
    size = Size(320, 240)
    try:
        done = subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "v4l2", "-input_format", "yuyv422",
                               "-video_size", str(size), "-i", webcam.device, "-frames:v", "3", "-f", "rawvideo",
                               "-pix_fmt", "gray", "-"], capture_output=True, timeout=30, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail("no frame within 30 s")
    frames = np.frombuffer(done.stdout, np.uint8).reshape(-1, size.height, size.width)
    codes = [decode(frame) for frame in frames]
    assert len(codes) == 3 and all(code is not None and code.camera == 0 for code in codes), codes


def test_unplug_removes_the_node_and_replug_brings_the_same_webcam_back(webcam: Webcam, usbipd_port: int) -> None:
    old = webcam.device
    assert old is not None
    watch = uevents.Watch("video4linux")
    webcam.unplug()
    watch.until(lambda: True if not os.path.exists(old) else None, f"{old} going", 30)
    assert usbip.find(PROFILE.serial) is None
    webcam.plug(usbipd_port)
    assert webcam.device is not None
    fd = _open(webcam.device)
    try:
        assert v4l2.read_capabilities(fd).card.decode().startswith(PROFILE.product)
    finally:
        os.close(fd)
