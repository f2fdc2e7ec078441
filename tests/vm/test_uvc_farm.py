"""Issue 12 in the kernel: `provision --backend uvc` makes USB webcams that uvcvideo drives.

Each camera is a userspace USB device on vhci-hcd (simfarm.backends.uvc).
Readers choose format and size as with any webcam; frames carry the
camera's codes; controls a reader sets change the picture; unplug is a
pulled cable; teardown and crash reclaim leave no device, port or process.
Runs inside `simfarm vm`. One farm of four webcams serves most of the module.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
import pyudev
from linuxpy.video import device as v4l2

from simfarm import Farm
from simfarm.backends.uvc.webcam import UsbWebcam
from simfarm.devices.usb import vhci
from simfarm.devices.usb.profile import Format, FrameSize, Profile
from simfarm.devices.v4l2 import capture
from simfarm.faults.log import read_log
from simfarm.frames.code import FrameCode, decode, strip_height
from simfarm.patterns import PatternLibrary
from simfarm.spec import CameraSpec, PixelFormat, Size

from kernel_helpers import module_farm, simfarm, video_nodes

pytestmark = [pytest.mark.hil, pytest.mark.usefixtures("in_farm_state")]

PROFILE = str(Path(__file__).parents[1] / "data" / "uvc-test.yaml")
SPEC = CameraSpec.parse(size="320x240", fps=15, profile=PROFILE)
SIZES = (Size(320, 240), Size(640, 480))
FFMPEG_INPUT = {PixelFormat.YUYV: "yuyv422", PixelFormat.MJPEG: "mjpeg"}
BRIGHTNESS = 0x00980900  # V4L2_CID_BRIGHTNESS


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    with module_farm(tmp_path_factory, 4, name="usb", spec=SPEC, backend="uvc") as made:
        yield made
    assert not any(vhci.find(f"simfarm-usb-{i}") for i in range(4)), "a webcam is still attached"


def read_ffmpeg(device: str, fmt: PixelFormat, size: Size, count: int = 4) -> list[FrameCode | None]:
    done = subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "v4l2", "-input_format",
                           FFMPEG_INPUT[fmt], "-video_size", str(size), "-i", device, "-frames:v", str(count),
                           "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "gray", "-"],
                          capture_output=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr.decode()
    return [decode(frame) for frame in np.frombuffer(done.stdout, np.uint8).reshape(-1, size.height, size.width)]


def read_opencv(device: str, fmt: PixelFormat, size: Size, count: int = 4) -> list[FrameCode | None]:
    cap = cv2.VideoCapture(device, cv2.CAP_V4L2)
    assert cap.isOpened(), f"OpenCV could not open {device}"
    try:
        cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*fmt.value))
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, size.width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, size.height)
        codes = []
        for _ in range(count):
            ok, bgr = cap.read()
            assert ok and bgr.shape[:2] == (size.height, size.width)
            codes.append(decode(cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV)[:, :, 0]))
        return codes
    finally:
        cap.release()


def read_linuxpy(device: str, fmt: PixelFormat, size: Size, count: int = 4) -> list[FrameCode | None]:
    spec = CameraSpec(size=size, fps=Fraction(15), format=fmt)
    return [decode(frame.luma) for frame in capture.stream_luma(device, spec, count=count, timeout=120)]


def assert_codes_of(codes: list[FrameCode | None], camera: int) -> None:
    assert codes and all(code is not None and code.camera == camera for code in codes), codes
    sequences = [code.sequence for code in codes if code is not None]
    assert sequences == sorted(sequences) and len(set(sequences)) == len(sequences), sequences


def test_each_camera_is_a_uvcvideo_webcam_offering_the_profile(farm: Farm) -> None:
    assert len(farm.cameras) == 4
    for cam in farm.cameras:
        info = subprocess.run(["v4l2-ctl", "-d", cam.device, "--info", "--list-formats-ext"],
                              capture_output=True, text=True, check=True).stdout
        assert "Driver name      : uvcvideo" in info and "Card type        : Test Webcam" in info
        for size in ("320x240", "640x480"):
            assert info.count(f"Size: Discrete {size}") == 2  # in YUYV and in MJPEG
        assert "'YUYV'" in info and "'MJPG'" in info and "(15.000 fps)" in info and "(5.000 fps)" in info
        # uvcvideo's second node is metadata: the farm reports it beside, never as, the camera.
        assert cam.metadata_device is not None and not capture_node(cam.metadata_device)
        assert capture_node(cam.device)
    status = farm.status()["cameras"]
    assert [c["device"] for c in status] == [c.device for c in farm.cameras]
    assert {c["usb"]["serial"] for c in status} == {f"simfarm-usb-{i}" for i in range(4)}


def capture_node(path: str) -> bool:
    with v4l2.Device(path) as device:
        return v4l2.Capability.VIDEO_CAPTURE in device.info.device_capabilities


def test_udev_names_each_webcam_by_its_usb_identity(farm: Farm) -> None:
    subprocess.run(["udevadm", "settle", "--timeout=60"], check=True)
    for cam in farm.cameras:
        assert cam.by_id == f"/dev/v4l/by-id/usb-simfarm_Test_Webcam_{cam.label}-video-index0"
        assert os.path.realpath(cam.by_id) == cam.device
        props = pyudev.Devices.from_device_file(pyudev.Context(), cam.device).properties
        assert (props["ID_BUS"], props["ID_VENDOR_ID"], props["ID_MODEL_ID"]) == ("usb", "1d6b", "0102")
        assert props["ID_SERIAL"] == f"simfarm_Test_Webcam_{cam.label}"
        assert props.get("ID_PATH", "").startswith("platform-vhci_hcd")


# Each reader library and format at both sizes, spread over the cameras.
@pytest.mark.parametrize(("reader", "fmt", "size", "camera"), [
    (read_ffmpeg, PixelFormat.YUYV, SIZES[0], 0), (read_ffmpeg, PixelFormat.MJPEG, SIZES[1], 1),
    (read_ffmpeg, PixelFormat.YUYV, SIZES[1], 2), (read_ffmpeg, PixelFormat.MJPEG, SIZES[0], 3),
    (read_opencv, PixelFormat.YUYV, SIZES[1], 0), (read_opencv, PixelFormat.MJPEG, SIZES[0], 1),
    (read_linuxpy, PixelFormat.YUYV, SIZES[0], 2), (read_linuxpy, PixelFormat.MJPEG, SIZES[1], 3),
], ids=lambda value: getattr(value, "__name__", str(value)))
def test_readers_get_codes_in_the_format_and_size_they_chose(farm: Farm, reader, fmt: PixelFormat,
                                                            size: Size, camera: int) -> None:
    assert_codes_of(reader(farm.cameras[camera].device, fmt, size), camera)


def picture_level(device: str) -> float:
    """Mean luma below the code strip of a frame streamed now."""
    frame = next(capture.stream_luma(device, SPEC, count=1, timeout=120))
    return float(frame.luma[strip_height(SPEC.size.width) + 8:].mean())


def test_brightness_set_by_a_reader_brightens_the_picture_and_shows_in_status(farm: Farm) -> None:
    cam = farm.cameras[1]
    before = picture_level(cam.device)
    fd = os.open(cam.device, os.O_RDWR | os.O_NONBLOCK)
    try:
        v4l2.set_control(fd, BRIGHTNESS, 48)
        assert farm.status()["cameras"][1]["controls"]["brightness"] == 48
        brighter = picture_level(cam.device)
    finally:
        v4l2.set_control(fd, BRIGHTNESS, 0)
        os.close(fd)
    # +48 of a -64..64 range is +96 of 255 in luma, less where the picture clips at white.
    assert brighter > before + 30, (before, brighter)
    assert farm.status()["cameras"][1]["controls"]["brightness"] == 0


def test_a_drop_fault_removes_exactly_those_codes_from_a_webcam_stream(farm: Farm) -> None:
    cam = farm.cameras[2]
    reader = subprocess.Popen(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "v4l2", "-input_format", "yuyv422",
                               "-video_size", str(SPEC.size), "-i", cam.device, "-frames:v", "40",
                               "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "gray", "-"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    frame_bytes = SPEC.size.width * SPEC.size.height
    assert reader.stdout is not None
    first = reader.stdout.read(frame_bytes)  # the stream runs: the fault lands inside it
    fault = cam.inject("drop", frames=5)
    out, err = reader.communicate(timeout=300)
    frames = np.frombuffer(first + out, np.uint8).reshape(-1, SPEC.size.height, SPEC.size.width)
    sequences = [code.sequence for code in map(decode, frames) if code is not None]
    end = next(line for line in read_log(farm.fault_log) if line["event"] == "end" and line["fault"] == fault.id)
    dropped = [sequence for first, last in end["touched"] for sequence in range(first, last + 1)]
    # The stream went on past the five the fault withheld, and none of them reached the reader.
    assert len(dropped) == 5 and max(sequences) > max(dropped), (sequences, err.decode())
    assert not set(dropped) & set(sequences)


def test_unplug_under_a_streaming_reader_is_a_pulled_cable_and_replug_brings_it_back(farm: Farm) -> None:
    cam = farm.cameras[3]
    monitor = pyudev.Monitor.from_netlink(pyudev.Context())
    monitor.filter_by("usb")
    monitor.start()
    reader = subprocess.Popen(["ffmpeg", "-nostdin", "-loglevel", "error", "-f", "v4l2", "-input_format", "yuyv422",
                               "-video_size", str(SPEC.size), "-i", cam.device, "-fps_mode", "passthrough",
                               "-f", "rawvideo", "-pix_fmt", "gray", "-"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert reader.stdout is not None
        assert select.select([reader.stdout], [], [], 180)[0], "no frame within 180 s"
        unplug = cam.inject("unplug")
        assert unplug.info["removed"] == cam.device
        _, err = reader.communicate(timeout=120)
    finally:
        reader.kill()
    assert b"No such device" in err, err
    assert not os.path.exists(cam.device) and farm.status()["cameras"][3]["state"] == "unplugged"
    removed = [dev for dev in iter(lambda: monitor.poll(timeout=10), None)
               if dev.action == "remove" and dev.device_type == "usb_device"]
    assert removed and removed[0].properties["PRODUCT"] == "1d6b/102/100"
    unplug.clear()
    back = farm.reload().camera(3)
    assert farm.status()["cameras"][3]["usb"]["serial"] == cam.label
    assert_codes_of(read_ffmpeg(back.device, PixelFormat.YUYV, SPEC.size), 3)


def test_reenumeration_gives_the_same_webcam_back_and_it_streams(farm: Farm) -> None:
    cam = farm.cameras[0]
    fault = cam.inject("reenumerate")
    assert fault.info["removed"] == cam.device and fault.info["device"] is not None
    back = farm.reload().camera(0)
    subprocess.run(["udevadm", "settle", "--timeout=60"], check=True)  # udev makes the by-id link after the node
    assert back.device == fault.info["device"] and back.by_id is not None
    assert_codes_of(read_linuxpy(back.device, PixelFormat.MJPEG, SIZES[0]), 0)


def test_a_bus_reset_rebinds_uvcvideo_while_the_usb_device_stays(farm: Farm) -> None:
    cam = farm.cameras[1]
    busid = farm.status()["cameras"][1]["usb"]["busid"]
    monitor = pyudev.Monitor.from_netlink(pyudev.Context())
    monitor.filter_by("video4linux")
    monitor.start()
    fault = cam.inject("bus-reset")
    assert fault.info["removed"] == cam.device and fault.info["device"] is not None
    actions = [dev.action for dev in iter(lambda: monitor.poll(timeout=10), None)]
    assert "remove" in actions and "add" in actions, actions  # the nodes went and came back
    assert farm.status()["cameras"][1]["usb"]["busid"] == busid  # on the same USB device
    assert_codes_of(read_ffmpeg(farm.reload().camera(1).device, PixelFormat.YUYV, SIZES[0]), 1)


def test_a_stream_or_device_the_profile_does_not_offer_is_refused_with_nothing_made() -> None:
    before = video_nodes()
    for args, words in ((["--size", "1280x720"], "offers no YUYV 1280x720@15"),
                        (["--profile", "nope"], "no camera profile 'nope'"),
                        (["--producer", "ffmpeg"], "feeds patterns"),
                        (["--nodes", "40"], "cannot choose node numbers")):
        result = simfarm("provision", "--backend", "uvc", "--profile", PROFILE, "--fps", "15", "--farm", "bad", *args)
        assert result.returncode == 2 and words in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert video_nodes() == before and vhci.find("simfarm-bad-0") is None


def test_sigkill_and_teardown_leave_no_webcam_port_or_process_and_spare_a_foreign_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIMFARM_STATE_DIR", str(tmp_path))  # teardown --all: not the module's farm
    foreign = UsbWebcam(9, Profile(name="own", vendor_id=0x1D6B, product_id=0x0102, manufacturer="someone",
                                   product="Own Webcam", serial="not-simfarm-0",
                                   formats=(Format(PixelFormat.YUYV, (FrameSize(Size(320, 240), (Fraction(15),)),)),),
                                   controls=()), PatternLibrary())
    foreign.plug()
    try:
        crashed = Farm.provision(1, name="crash", spec=SPEC, backend="uvc")
        os.kill(crashed.supervisor_pid, signal.SIGKILL)
        status = simfarm("status")  # reclaims the dead farm
        assert status.returncode == 0 and "crash" not in status.stdout
        assert vhci.find("simfarm-crash-0") is None and not crashed.state_dir.exists()
        kept = Farm.provision(1, name="kept", spec=SPEC, backend="uvc")
        pid = kept.supervisor_pid
        assert simfarm("teardown", "--all").returncode == 0
        assert vhci.find("simfarm-kept-0") is None and gone(pid)
        assert vhci.find("not-simfarm-0") is not None and foreign.device is not None
    finally:
        foreign.unplug()


def gone(pid: int) -> bool:
    """No such process, or only a zombie: a supervisor this process started is reaped by it later."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
