"""Loading and unloading kernel modules, for backends whose devices exist only
from module parameters (v4l2loopback 0.12.x, vivid) or need stock modules (uvc).

A module is unloaded only by the farm that loaded it (see the farm record),
and only once nothing holds it: ``modprobe -r`` of a module in use fails, and
the kernel offers no event for "last user gone", so the wait polls refcnt.
subprocess is imported where modprobe runs: `simfarm doctor` reads only
installed_version and the module lists.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from ... import binaries
from ...errors import EnvironmentProblem, InUse
from . import modinfo

SYS_MODULE = Path("/sys/module")
# What a userspace webcam plugged straight into vhci-hcd needs (simfarm.devices.usb.usbip_device).
WEBCAM_MODULES = ("vhci_hcd", "uvcvideo")


def loaded(name: str) -> bool:
    return (SYS_MODULE / name / "initstate").exists()


def installed_version(name: str) -> str | None:
    """``modinfo``'s version of the module modprobe would load for the running kernel: '' when
    it declares none (v4l2loopback 0.12.7 does not), None when no such module is installed."""
    return modinfo.field(os.uname().release, name, "version")


def load(name: str, params: Mapping[str, str]) -> None:
    """``modprobe --first-time NAME KEY=VALUE...``: a module loaded already (by anyone) is an
    EnvironmentProblem, as is any other failure, with modprobe's words."""
    import subprocess
    argv = [binaries.require("modprobe"), "--first-time", name, *(f"{key}={value}" for key, value in params.items())]
    done = subprocess.run(argv, check=False, capture_output=True, text=True)
    if done.returncode != 0:
        reason = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"
        raise EnvironmentProblem(f"cannot load {name}: {reason}",
                                 "run as root on a kernel with module support (or inside `simfarm vm`)")


def ensure(name: str, params: Mapping[str, str] | None = None) -> None:
    """Load ``name`` unless it is loaded already (by anyone): for stock modules that keep no
    state of ours, which a farm uses but never unloads."""
    if loaded(name):
        return
    try:
        load(name, params or {})
    except EnvironmentProblem:
        if not loaded(name):  # not someone loading it at the same moment: really missing
            raise


def unload(name: str, *, timeout: float, holders: Callable[[], list[int]]) -> None:
    """Unload ``name`` once its users are gone, waiting up to ``timeout`` s.

    ``holders`` names the pids holding its devices, for the InUse raised
    when they outlast the wait. A module already gone is not an error.
    """
    import subprocess
    deadline = time.monotonic() + timeout
    while loaded(name):
        if _refcount(name) == 0:
            done = subprocess.run([binaries.require("modprobe"), "-r", name], check=False, capture_output=True, text=True)
            if done.returncode == 0 or not loaded(name):
                return
        if time.monotonic() >= deadline:
            raise InUse(f"module {name}", holders())
        time.sleep(0.1)


def _refcount(name: str) -> int:
    try:
        return int((SYS_MODULE / name / "refcnt").read_text())
    except (OSError, ValueError):
        return 0
