"""A service that runs its own MediaMTX paths, tested against a MediaMTX of the test's own.

The service (streaming_service.py) discovers the cameras with v4l2-ctl,
publishes them through the API with on-demand FFmpeg, snapshots them from
the node (or from RTSP while the node is streamed) and records from RTSP.
Every test gets its own server on free ports (``simfarm_mediamtx``), so the
suite runs under pytest-xdist with no port clash.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import cv2
import pytest

from simfarm import Camera, EnvironmentProblem, FrameCode, analyze, decode
from simfarm.publishers.mediamtx import MediaMTX
from simfarm.pytest_plugin import read_codes
from simfarm.pytest_plugin.frames import RING

from .codes import gray_frames, size_of
from .streaming_service import StreamingService, discover

pytestmark = [pytest.mark.hil, pytest.mark.mediamtx]


@pytest.fixture
def service(simfarm_camera: Camera, simfarm_mediamtx: MediaMTX) -> StreamingService:
    return StreamingService(simfarm_mediamtx.api_url, simfarm_mediamtx.rtsp_base_url)


def stream_codes(cam: Camera, source: str, count: int) -> list[FrameCode | None]:
    """The codes of ``count`` frames of an RTSP URL or a video file showing ``cam``, after its first few.

    A stream the service's FFmpeg starts on demand begins with the frames that
    FFmpeg captured while it probed the node, and v4l2loopback writes on into
    buffers a reader holds: up to a ring of them (RING) can hold newer frames
    than those that follow. So the first RING frames are left out.
    """
    return [decode(frame) for frame in gray_frames(source, count + RING, size_of(cam))[RING:]]


def test_the_service_discovers_the_farms_cameras_with_v4l2_ctl(simfarm_camera: Camera) -> None:
    found = {device.path: device for device in discover()}
    assert simfarm_camera.device in found
    assert found[simfarm_camera.device].card == simfarm_camera.label


def test_a_path_the_service_adds_streams_the_camera_on_demand(simfarm_camera: Camera, service: StreamingService) -> None:
    url = service.publish(simfarm_camera.device, "front-door")
    report = analyze(stream_codes(simfarm_camera, url, 10))
    assert list(report.per_camera) == [simfarm_camera.index]
    ours = report.per_camera[simfarm_camera.index]
    assert ours.received == 10 and not ours.duplicated and not ours.out_of_order


def test_a_snapshot_comes_from_the_node_when_it_is_free(simfarm_camera: Camera, service: StreamingService,
                                                        tmp_path: Path) -> None:
    service.publish(simfarm_camera.device, "front-door")  # nobody reads it: the node stays free
    source = service.snapshot(simfarm_camera.device, tmp_path / "snap.png")
    assert source == simfarm_camera.device
    code = decode(cv2.imread(str(tmp_path / "snap.png"), cv2.IMREAD_GRAYSCALE))
    assert code is not None and code.camera == simfarm_camera.index


def test_while_the_path_is_read_the_node_refuses_a_second_stream_and_everything_else_goes_on(
        simfarm_camera: Camera, service: StreamingService, tmp_path: Path) -> None:
    url = service.publish(simfarm_camera.device, "front-door")
    reader = subprocess.Popen(["ffmpeg", "-nostdin", "-loglevel", "error", "-rtsp_transport", "tcp", "-i", url,
                               "-f", "null", "-"], stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        first = [c for c in stream_codes(simfarm_camera, url, 3) if c is not None]  # the on-demand FFmpeg now holds the node
        # A probe only asks: it opens the node beside the streaming reader.
        probe = subprocess.run(["v4l2-ctl", "-d", simfarm_camera.device, "--all"], capture_output=True, text=True,
                               timeout=30)
        assert probe.returncode == 0 and simfarm_camera.label in probe.stdout
        # A second stream from the node is refused, so the snapshot comes from the path instead.
        source = service.snapshot(simfarm_camera.device, tmp_path / "snap.png")
        assert source == url
        code = decode(cv2.imread(str(tmp_path / "snap.png"), cv2.IMREAD_GRAYSCALE))
        assert code is not None and code.camera == simfarm_camera.index
        later = [c for c in stream_codes(simfarm_camera, url, 3) if c is not None]
        assert first and later and later[-1].sequence > first[-1].sequence  # the stream went on throughout
        assert reader.poll() is None, reader.stderr.read() if reader.stderr else ""
    finally:
        reader.terminate()
        reader.wait(timeout=30)


def test_a_recording_holds_an_increasing_run_of_the_cameras_codes(simfarm_camera: Camera, service: StreamingService,
                                                                  tmp_path: Path) -> None:
    service.publish(simfarm_camera.device, "front-door")
    service.record("front-door", 3, tmp_path / "clip.mp4")
    codes = [c for c in stream_codes(simfarm_camera, str(tmp_path / "clip.mp4"), 20) if c is not None]
    assert codes and {c.camera for c in codes} == {simfarm_camera.index}
    sequences = [c.sequence for c in codes]
    assert sequences == sorted(set(sequences))


def test_after_the_service_lets_go_the_camera_reads_as_before(simfarm_camera: Camera,
                                                              service: StreamingService) -> None:
    url = service.publish(simfarm_camera.device, "front-door")
    assert [c for c in stream_codes(simfarm_camera, url, 2) if c is not None]
    service.unpublish("front-door")  # MediaMTX stops the path's FFmpeg; it lets go of the node once it has exited
    deadline = time.monotonic() + 60
    while True:
        try:
            codes = [c for c in read_codes(simfarm_camera, 3) if c is not None]
            break
        except EnvironmentProblem as busy:  # no event tells us when another program's FFmpeg exits
            assert "streamed by another reader" in str(busy) and time.monotonic() < deadline, busy
            time.sleep(0.5)
    assert codes and {c.camera for c in codes} == {simfarm_camera.index}
