"""Camera profiles of USB webcams: YAML files saying what a webcam is (ids, strings, formats, controls).

The built-in ones live in simfarm/backends/uvc/builtin_profiles/;
a user's directory adds more, or overrides one by its name (the file name
without .yaml). Every mistake is a BadInput naming the file and line. The
serial is not the profile's: each camera gets its own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from fractions import Fraction
from importlib.resources import files
from pathlib import Path

from ... import yamlfile
from ...devices.usb.profile import Control, Format, FrameSize, Profile
from ...devices.usb.uvc_requests import PU_SELECTORS
from ...errors import BadInput
from ...spec import PixelFormat, Size, parse_fps
from ...yamlfile import Located

BUILTIN_DIR = Path(str(files("simfarm.backends.uvc"))) / "builtin_profiles"
_KEYS = {"vendor_id", "product_id", "manufacturer", "product", "formats", "controls"}
_FORMAT_KEYS = {"format", "sizes"}
_CONTROL_KEYS = {"min", "max", "step", "default"}
_WEBCAM_FORMATS = (PixelFormat.YUYV, PixelFormat.MJPEG)  # the two the USB/IP device has descriptors for
_USB_STRING_MAX = 126  # UTF-16 code units in a string descriptor


def available(extra_dirs: Iterable[str | Path] = ()) -> dict[str, Path]:
    """Profile name -> file, later directories overriding earlier names."""
    found: dict[str, Path] = {}
    for directory in (BUILTIN_DIR, *map(Path, extra_dirs)):
        found.update({path.stem: path for path in sorted(Path(directory).glob("*.yaml"))})
    return found


def find(name: str, extra_dirs: Iterable[str | Path] = ()) -> Profile:
    """Profile ``name`` (or a path to a profile file), its serial left empty."""
    known = available(extra_dirs)
    path = Path(name) if name.endswith(".yaml") else known.get(name)
    if path is None:
        raise BadInput(f"no camera profile {name!r} (available: {', '.join(sorted(known))})")
    return parse(yamlfile.load(path), path.stem)


def load(name: str, serial: str, extra_dirs: Iterable[str | Path] = ()) -> Profile:
    """Profile ``name`` (or a path to a profile file) for a camera with ``serial``."""
    return dataclasses.replace(find(name, extra_dirs), serial=_string(serial, "serial"))


def parse(doc: object, name: str) -> Profile:
    """A profile from a loaded YAML document; the serial is left empty for the camera to fill."""
    if not isinstance(doc, Located):
        raise BadInput(f"profile {name}: expected a mapping")
    doc.check_keys(_KEYS, "profile")
    for key in _KEYS - {"controls"}:
        if key not in doc:
            raise doc.fail(None, f"missing {key!r}")
    formats = doc["formats"]
    if not isinstance(formats, list) or not formats:
        raise doc.fail("formats", "formats must be a non-empty list")
    parsed = [_format(entry, doc) for entry in formats]
    if len({fmt.format for fmt in parsed}) != len(parsed):
        raise doc.fail("formats", "a format is listed twice")
    controls = doc.get("controls") or Located()
    if not isinstance(controls, Located):
        raise doc.fail("controls", "controls must be a mapping of name to range")
    return Profile(name=name, vendor_id=_usb_id(doc, "vendor_id"), product_id=_usb_id(doc, "product_id"),
                   manufacturer=_string(doc["manufacturer"], f"{doc.where('manufacturer')}: manufacturer"),
                   product=_string(doc["product"], f"{doc.where('product')}: product"), serial="",
                   formats=tuple(parsed), controls=tuple(_control(key, value, controls)
                                                         for key, value in controls.items()))


def _usb_id(doc: Located, key: str) -> int:
    value = doc[key]
    try:
        number = int(value, 16) if isinstance(value, str) else int(value)
    except (TypeError, ValueError):
        raise doc.fail(key, f"{key} must be a hex number such as \"0x1d6b\", not {value!r}") from None
    if not 0 <= number <= 0xFFFF:
        raise doc.fail(key, f"{key} must fit 16 bits")
    return number


def _string(value: object, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > _USB_STRING_MAX:
        raise BadInput(f"{what} must be text of 1 to {_USB_STRING_MAX} characters")
    return value


def _format(entry: object, doc: Located) -> Format:
    if not isinstance(entry, Located):
        raise doc.fail("formats", "each format is a mapping with format and sizes")
    entry.check_keys(_FORMAT_KEYS, "format")
    fmt = PixelFormat.parse(str(entry.get("format")))
    if fmt not in _WEBCAM_FORMATS:
        raise entry.fail("format", f"format {fmt.name} is not one a USB webcam gadget streams "
                                   f"({', '.join(f.name for f in _WEBCAM_FORMATS)})")
    sizes = entry.get("sizes")
    if not isinstance(sizes, Located) or not sizes:
        raise entry.fail("sizes", "sizes must map each WIDTHxHEIGHT to a list of frame rates")
    return Format(fmt, tuple(_frame_size(key, rates, sizes) for key, rates in sizes.items()))


def _frame_size(key: str, rates: object, sizes: Located) -> FrameSize:
    try:
        size = Size.parse(str(key))
        parsed = tuple(parse_fps(rate) for rate in rates) if isinstance(rates, list) and rates else None
    except BadInput as exc:
        raise sizes.fail(key, str(exc)) from None
    if parsed is None:
        raise sizes.fail(key, f"{key}: give a non-empty list of frame rates")
    return FrameSize(size, tuple(Fraction(rate) for rate in parsed))


def _control(name: str, value: object, controls: Located) -> Control:
    if name not in PU_SELECTORS:
        raise controls.fail(name, f"control {name!r} is not one a profile can describe "
                                  f"({', '.join(PU_SELECTORS)})")
    if not isinstance(value, Located) or set(value) != _CONTROL_KEYS:
        raise controls.fail(name, f"{name} needs exactly {', '.join(sorted(_CONTROL_KEYS))}")
    numbers = {key: value[key] for key in _CONTROL_KEYS}
    if not all(isinstance(n, int) and -32768 <= n <= 32767 for n in numbers.values()):
        raise controls.fail(name, f"{name}: min, max, step and default must be 16-bit integers")
    if not numbers["min"] <= numbers["default"] <= numbers["max"] or numbers["step"] < 1:
        raise controls.fail(name, f"{name}: need min <= default <= max and step >= 1")
    return Control(name, numbers["min"], numbers["max"], numbers["step"], numbers["default"])
