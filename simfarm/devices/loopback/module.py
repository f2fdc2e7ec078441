"""The v4l2loopback module as this kernel has it loaded: its version and its control device.

Apart from the control device's ioctls (control) so that `simfarm
doctor` can ask whether cameras run here without importing them.
"""

from __future__ import annotations

CONTROL_DEVICE = "/dev/v4l2loopback"


def module_version() -> tuple[int, ...] | None:
    """The loaded module's version, e.g. (0, 15, 0); None when not loaded."""
    try:
        text = open("/sys/module/v4l2loopback/version").read().strip()
    except OSError:
        return None
    return tuple(int(part) for part in text.split(".") if part.isdigit())


def module_srcversion() -> str | None:
    """The loaded module's srcversion (a checksum of its source files), None when not loaded."""
    try:
        return open("/sys/module/v4l2loopback/srcversion").read().strip() or None
    except OSError:
        return None
