"""Capture: the frames the service grabs are the camera's own, in order, at the requested spec."""

from __future__ import annotations

import pytest

from simfarm import Camera, analyze
from simfarm.pytest_plugin import read_codes

from . import camera_service
from .codes import grabbed_codes

pytestmark = pytest.mark.hil


def test_service_frames_carry_the_cameras_code_in_order(simfarm_camera: Camera) -> None:
    report = analyze(grabbed_codes(simfarm_camera, 10))
    assert list(report.per_camera) == [simfarm_camera.index]  # a frame never carries a wrong code
    ours = report.per_camera[simfarm_camera.index]
    assert ours.received == 10 and not ours.duplicated and not ours.out_of_order


@pytest.mark.simfarm(cameras=2)
def test_each_camera_streams_its_own_id(simfarm_cameras: list[Camera]) -> None:
    for cam in simfarm_cameras:
        codes = [code for code in read_codes(cam, 3) if code is not None]
        assert codes and {code.camera for code in codes} == {cam.index}


@pytest.mark.simfarm(cameras=1, size="352x288", fps=10, pattern="ball")
def test_a_test_gets_the_spec_it_asks_for(simfarm_camera: Camera) -> None:
    frame, = camera_service.grab(simfarm_camera.device, 1)
    assert (frame.width, frame.height) == (352, 288)
    assert camera_service.frame_rate(simfarm_camera.device) == pytest.approx(10)
    assert simfarm_camera.spec.pattern == "ball"
