"""Installing simfarm's udev rules (stable links, control-device group access)."""

from __future__ import annotations

import subprocess
from importlib import resources
from pathlib import Path

from ... import binaries

RULES = "60-simfarm.rules"
SYSTEM_DIR = Path("/etc/udev/rules.d")
# udevd also reads rules from /run: usable where /etc is read-only (the VM).
RUNTIME_DIR = Path("/run/udev/rules.d")


def rules_text() -> str:
    return resources.files("simfarm.udev_rules").joinpath(RULES).read_text()


def install(directory: Path = SYSTEM_DIR) -> Path:
    """Write the rules, reload udev and re-trigger video and misc devices."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / RULES
    target.write_text(rules_text())
    udevadm = binaries.require("udevadm")
    subprocess.run([udevadm, "control", "--reload"], check=False)
    subprocess.run([udevadm, "trigger", "--subsystem-match=video4linux", "--subsystem-match=misc"], check=False)
    subprocess.run([udevadm, "settle", "--timeout=10"], check=False)
    return target
