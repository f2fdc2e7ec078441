"""The userspace webcam's descriptors: well-formed (uvcvideo refuses the device otherwise), and
saying what the profile says."""

from __future__ import annotations

import struct

import pytest

from simfarm.backends import uvc_profiles
from simfarm.devices.usbip_device import descriptors


def walk(config: bytes) -> list[bytes]:
    found, at = [], 0
    while at < len(config):
        length = config[at]
        assert length >= 2 and at + length <= len(config)
        found.append(config[at:at + length])
        at += length
    return found


@pytest.mark.parametrize("name", sorted(uvc_profiles.available()))
def test_descriptors_are_well_formed_and_carry_the_profile(name: str) -> None:
    profile = uvc_profiles.load(name, "s")
    device, config = descriptors(profile)
    assert len(device) == device[0] == 18
    assert struct.unpack_from("<HH", device, 8) == (profile.vendor_id, profile.product_id)
    parts = walk(config)
    assert struct.unpack_from("<H", config, 2)[0] == len(config)
    streaming = parts[next(i for i, p in enumerate(parts) if p[1] == 0x04 and p[2] == 1):]  # interface 1 on
    # UVC class-specific interface descriptors: VS format descriptors, one per format, each
    # followed by one frame descriptor per size, with the profile's sizes and intervals.
    formats = [p for p in streaming if p[1] == 0x24 and p[2] in (0x04, 0x06)]
    assert [f[4] for f in formats] == [len(f.sizes) for f in profile.formats]
    frames = [p for p in streaming if p[1] == 0x24 and p[2] in (0x05, 0x07)]
    expected = [(s.size.width, s.size.height, tuple(s.intervals)) for f in profile.formats for s in f.sizes]
    assert [(*struct.unpack_from("<HH", p, 5), struct.unpack_from(f"<{p[25]}I", p, 26)) for p in frames] == expected
    # The class-specific totals cover exactly their descriptors.
    vc_header = next(p for p in parts if p[1] == 0x24 and p[2] == 0x01 and len(p) == 13 and p[3:5] == b"\x10\x01")
    vc_total = struct.unpack_from("<H", vc_header, 5)[0]
    start = config.index(vc_header)
    assert sum(len(p) for p in walk(config[start:start + vc_total])) == vc_total
    endpoint = next(p for p in parts if p[1] == 0x05)
    assert (endpoint[2], endpoint[3]) == (0x81, 0x02)  # bulk IN
