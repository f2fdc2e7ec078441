"""Webcam profiles: the shipped ones load, and each mistake in a user's file is one BadInput naming
its file and line."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from simfarm.backends.uvc import profiles
from simfarm.errors import BadInput
from simfarm.spec import PixelFormat, Size

GOOD = """\
vendor_id: 0x1d6b
product_id: 0x0102
manufacturer: Acme
product: Cam
formats:
  - format: MJPEG
    sizes:
      640x480: [30, 15]
controls:
  brightness: {min: -64, max: 64, step: 1, default: 0}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    return path


# The generic profiles' USB identities: pid.codes test ids, one each (see generic-720p.yaml).
GENERIC_IDS = {"generic-720p": (0x1209, 0x0001), "lowres": (0x1209, 0x0002), "mjpeg-1080p": (0x1209, 0x0003)}
USB_IDS = [Path("/usr/share/misc/usb.ids"), Path("/var/lib/usbutils/usb.ids"), Path("/usr/share/hwdata/usb.ids")]


def test_the_shipped_profiles_load_with_their_own_ids_and_the_cameras_serial():
    assert set(GENERIC_IDS) <= set(profiles.available())
    for name, ids in GENERIC_IDS.items():
        profile = profiles.load(name, "cam-7")
        assert (profile.vendor_id, profile.product_id, profile.serial) == (*ids, "cam-7")
        assert {fmt.format for fmt in profile.formats} == {PixelFormat.YUYV, PixelFormat.MJPEG}
    assert profiles.load("mjpeg-1080p", "s").formats[0].format is PixelFormat.MJPEG


def usb_ids_name(path: Path, vendor: int, product: int) -> str | None:
    """What usb.ids calls ``vendor:product`` (lsusb's and udev's name for it); None when it is not listed."""
    in_vendor = False
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line[:4] == f"{vendor:04x}" and line[4:6] == "  ":
            in_vendor = True
        elif in_vendor and line.startswith("\t") and not line.startswith("\t\t"):
            if line[1:5] == f"{product:04x}":
                return line[7:]
        elif in_vendor and line and not line.startswith(("\t", "#")):
            return None  # the next vendor
    return None


def test_no_id_database_names_a_generic_profile_as_some_other_device():
    # pid.codes' test range, which it never assigns to a product; usb.ids, where installed, agrees.
    assert all(vendor == 0x1209 and 0x0001 <= product <= 0x0010 for vendor, product in GENERIC_IDS.values())
    found = next((path for path in USB_IDS if path.is_file()), None)
    if found is None:
        pytest.skip("no usb.ids on this machine (Debian: usbutils)")
    assert usb_ids_name(found, 0x1D6B, 0x0102) == "EEM Gadget"  # the parser reads what lsusb shows
    for name, (vendor, product) in GENERIC_IDS.items():
        assert usb_ids_name(found, vendor, product) in (None, "pid.codes Test PID"), name


def test_a_users_directory_adds_profiles_and_a_file_path_works_too(tmp_path: Path):
    path = write(tmp_path, GOOD)
    profile = profiles.load("mine", "s", [tmp_path])
    assert profile == profiles.load(str(path), "s")
    assert profile.formats[0].sizes[0].size == Size(640, 480)
    assert profile.formats[0].sizes[0].rates == (Fraction(30), Fraction(15))


@pytest.mark.parametrize(("change", "message"), [
    (("product: Cam", "product: Cam\ncolour: red"), "mine.yaml:5: unknown profile key 'colour'"),
    (("vendor_id: 0x1d6b", "vendor_id: acme"), "mine.yaml:1: vendor_id must be a hex number"),
    (("vendor_id: 0x1d6b", "vendor_id: 0x10000"), "mine.yaml:1: vendor_id must fit 16 bits"),
    (("format: MJPEG", "format: NV12"), "mine.yaml:6: format NV12 is not one a USB webcam gadget streams"),
    (("640x480: [30, 15]", "640x480: []"), "mine.yaml:8: 640x480: give a non-empty list of frame rates"),
    (("640x480", "640by480"), "mine.yaml:8:"),
    (("brightness:", "hue:"), "mine.yaml:10: control 'hue' is not one a profile can describe"),
    (("default: 0", "default: 99"), "mine.yaml:10: brightness: need min <= default <= max"),
    (("manufacturer: Acme\n", ""), "mine.yaml:1: missing 'manufacturer'"),
])
def test_each_mistake_is_one_line_naming_file_and_line(tmp_path: Path, change: tuple[str, str], message: str):
    path = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(BadInput) as caught:
        profiles.load(str(path), "s")
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_an_unknown_profile_name_lists_the_available_ones():
    with pytest.raises(BadInput, match="no camera profile 'nope' .*generic-720p"):
        profiles.load("nope", "s")


def test_a_serial_must_fit_a_usb_string():
    with pytest.raises(BadInput, match="serial must be text of 1 to 126"):
        profiles.load("lowres", "x" * 127)
