"""Discovery: the service finds the farm's cameras by their card labels and sees them come and go."""

from __future__ import annotations

import pytest
import pyudev

from simfarm import Camera
from simfarm.pytest_plugin import NewFarms

from . import camera_service

pytestmark = pytest.mark.hil


class Uevents:
    """video4linux add/remove events, collected from the moment it was made."""

    def __init__(self) -> None:
        self._monitor = pyudev.Monitor.from_netlink(pyudev.Context())
        self._monitor.filter_by("video4linux")
        self._monitor.start()

    def wait_for(self, action: str, node: str, timeout: float = 30.0) -> None:
        seen = []
        while (device := self._monitor.poll(timeout=timeout)) is not None:
            seen.append((device.action, device.device_node))
            if seen[-1] == (action, node):
                return
        raise AssertionError(f"no {action} event for {node} within {timeout}s; saw {seen}")


@pytest.fixture
def uevents() -> Uevents:
    return Uevents()


@pytest.mark.simfarm(cameras=2)
def test_service_lists_every_camera_with_its_card_label(simfarm_cameras: list[Camera]) -> None:
    found = {device.path: device for device in camera_service.discover()}
    for cam in simfarm_cameras:
        assert cam.device in found, f"{cam.device} not discovered"
        assert found[cam.device].card == cam.label
        assert found[cam.device].driver == "v4l2 loopback"


@pytest.mark.simfarm(cameras=2, backend="uvc", profile="lowres")
def test_service_lists_usb_webcams_by_their_product_and_not_their_metadata_nodes(
        simfarm_cameras: list[Camera]) -> None:
    found = {device.path: device for device in camera_service.discover()}
    for cam in simfarm_cameras:
        assert cam.device in found, f"{cam.device} not discovered"
        # uvcvideo names the card "<product>: <product>" (cut at 31 characters).
        assert found[cam.device].card.startswith("Low-res Webcam") and found[cam.device].driver == "uvcvideo"
        assert cam.metadata_device is not None and cam.metadata_device not in found


def test_an_unplugged_camera_disappears_and_comes_back(uevents: Uevents, simfarm_camera: Camera) -> None:
    with simfarm_camera.inject("unplug"):
        uevents.wait_for("remove", simfarm_camera.device)
        assert simfarm_camera.label not in {device.card for device in camera_service.discover()}
    # Plugged in again, possibly under another number, as a USB camera would be.
    device = simfarm_camera.farm.status()["cameras"][simfarm_camera.index]["device"]
    uevents.wait_for("add", device)
    assert simfarm_camera.label in {found.card for found in camera_service.discover() if found.path == device}


def test_a_new_camera_is_seen_by_udev_until_removed(uevents: Uevents, simfarm_new_farm: NewFarms) -> None:
    farm = simfarm_new_farm(cameras=1)
    cam = farm.cameras[0]
    uevents.wait_for("add", cam.device)
    assert cam.label in {device.card for device in camera_service.discover()}
    simfarm_new_farm.remove(farm)
    uevents.wait_for("remove", cam.device)
    assert cam.label not in {device.card for device in camera_service.discover()}
