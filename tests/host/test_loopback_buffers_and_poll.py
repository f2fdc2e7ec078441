"""v4l2loopback without a kernel: the ring size a node is made with, and doctor's verdict on its poll()."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from simfarm import doctor
from simfarm.devices.loopback import poll_fix
from simfarm.devices.loopback.control import DEFAULT_MAX_BUFFERS, LoopbackConfig, check_max_buffers
from simfarm.errors import BadInput

_CONFIG = struct.Struct("=ii32sIIIIiiii")  # struct v4l2_loopback_config
MAX_BUFFERS_FIELD = 7


def test_nodes_are_made_with_a_ring_opencv_can_map_unless_a_farm_asks_for_more() -> None:
    assert DEFAULT_MAX_BUFFERS == 4  # OpenCV overruns its buffer table above 10
    assert _CONFIG.unpack(bytes(LoopbackConfig(label="x").pack()))[MAX_BUFFERS_FIELD] == 4
    assert _CONFIG.unpack(bytes(LoopbackConfig(label="x", max_buffers=32).pack()))[MAX_BUFFERS_FIELD] == 32


@pytest.mark.parametrize("value", [4, 16, 32])
def test_ring_sizes_v4l2loopback_can_hold(value: int) -> None:
    assert check_max_buffers(value) == value


@pytest.mark.parametrize("value", [3, 33, 0, -1, True, 16.0, "16", None])
def test_ring_sizes_refused(value: object) -> None:
    # Above 32 the ADD ioctl would overrun v4l2loopback's per-node buffer array (it does not check).
    with pytest.raises(BadInput, match=r"whole number 4\.\.32"):
        check_max_buffers(value)


@pytest.mark.parametrize("version", [(0, 12, 7), (0, 13, 2)])
def test_modules_before_the_regression_are_fine_whatever_their_build(version: tuple[int, ...]) -> None:
    assert poll_fix.verdict(version, "ANY", None).ok


def test_an_affected_version_is_fixed_only_when_its_srcversion_is_the_recorded_patched_build() -> None:
    assert poll_fix.verdict((0, 15, 0), "PATCHED", "PATCHED").ok
    for srcversion, recorded in (("STOCK", "PATCHED"), ("STOCK", None), (None, None)):
        found = poll_fix.verdict((0, 15, 0), srcversion, recorded)
        assert not found.ok and "POLLIN | POLLWRNORM" in found.detail and "µStreamer" in found.detail
    assert "may answer" in poll_fix.verdict((0, 16, 0), "X", None).detail  # newer than any known affected


def test_recorded_srcversion_is_read_per_kernel(tmp_path: Path) -> None:
    (tmp_path / "6.1.0-57-amd64").write_text("ABC123\n")
    assert poll_fix.recorded_srcversion("6.1.0-57-amd64", tmp_path) == "ABC123"
    assert poll_fix.recorded_srcversion("6.12.0-1-amd64", tmp_path) is None


def test_doctor_check_does_not_decide_readiness_and_names_the_fix() -> None:
    check = doctor._poll("loopback-poll.vm", "6.1.0-57-amd64", (0, 15, 0), "STOCK", "sudo scripts/setup-vm.sh")
    assert check.group == "tools" and not check.ok and check.fix == "sudo scripts/setup-vm.sh"
    assert "v4l2loopback-poll-rdnorm.patch" in poll_fix.host_remedy("6.1.0-57-amd64")
