"""Start-up: the commands users run in loops import only what they need.

A structural check, not a timing: each command runs in a fresh interpreter
under ``-X importtime`` and the modules it imported are read back from its
stderr (``scripts/bench/bench_startup.py`` measures the time itself).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

import simfarm
from simfarm.cli import build_parser
from simfarm.cli.commands import COMMANDS

ROOT = Path(__file__).resolve().parents[2]
# What only provisioning, frame reading, rendering or publishing need.
HEAVY = ("numpy", "cv2", "linuxpy", "yaml", "simfarm.farm.supervisor", "simfarm.backends",
         "simfarm.producers", "simfarm.patterns.library", "simfarm.publishers.mediamtx.api")


def imported_by(argv: list[str], state_dir: Path) -> set[str]:
    """The modules a fresh ``python3 -m simfarm ARGV`` imports."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SIMFARM_STATE_DIR": str(state_dir)}
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "simfarm", *argv], env=env, cwd=ROOT,
                          capture_output=True, text=True, check=False, timeout=120)
    lines = [line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")]
    assert lines, done.stderr
    return set(lines[1:])  # the first line is the header


@pytest.mark.parametrize(("argv", "allowed"), [
    (["--help"], ()), (["status"], ()), (["status", "--json"], ()), (["teardown"], ()), (["teardown", "--all"], ()),
    (["fault", "list"], ()), (["fault", "0", "drop", "--frames", "3"], ()), (["doctor", "--json"], ()),
])
def test_light_commands_import_no_numpy_opencv_linuxpy_or_farm(argv: list[str], allowed: tuple[str, ...],
                                                                tmp_path: Path) -> None:
    modules = imported_by(argv, tmp_path)
    assert "simfarm.cli" in modules
    heavy = sorted(m for m in modules if (m in HEAVY or m.split(".")[0] in HEAVY)
                   and m not in allowed and m.split(".")[0] not in allowed)
    assert heavy == [], f"simfarm {' '.join(argv)} imported {heavy}"


# What the commands scripts call in loops must not pay for: together these cost
# about a third of Python's own start-up (dataclasses alone a fifth: it imports inspect).
LOOP_HEAVY = ("dataclasses", "fractions", "subprocess", "socketserver", "simfarm.spec", "simfarm.faults")


@pytest.mark.parametrize("argv", [["status"], ["status", "--json"], ["teardown"], ["teardown", "--all"],
                                  ["fault", "list"], ["fault", "clear", "--all"]])
def test_loop_commands_import_no_specs_dataclasses_or_subprocess(argv: list[str], tmp_path: Path) -> None:
    modules = imported_by(argv, tmp_path)
    heavy = sorted(m for m in modules if m in LOOP_HEAVY or m.rsplit(".", 1)[0] in LOOP_HEAVY)
    assert heavy == [], f"simfarm {' '.join(argv)} imported {heavy}"


# doctor reads files and asks KVM one ioctl away: what boots VMs or talks to MediaMTX stays out, and
# so does dataclasses (a fifth of Python's start-up).
DOCTOR_HEAVY = ("dataclasses", "simfarm.vm.runner", "simfarm.publishers.mediamtx.api",
                "simfarm.publishers.mediamtx.config", "simfarm.devices.usb.vhci", "simfarm.devices.loopback.control")


def test_doctor_imports_no_dataclasses_vm_runner_or_mediamtx_client(tmp_path: Path) -> None:
    heavy = sorted(m for m in imported_by(["doctor"], tmp_path) if m in DOCTOR_HEAVY)
    assert heavy == [], f"simfarm doctor imported {heavy}"


@pytest.mark.parametrize("command", list(COMMANDS))
def test_each_command_is_registered_by_the_module_the_table_names(command: str) -> None:
    sub = next(a for a in build_parser(command)._actions if isinstance(a, argparse._SubParsersAction))
    # Commands of modules not imported are stubs without options; the real parser has at least -h.
    assert "-h" in sub.choices[command]._option_string_actions


def test_public_api_names_resolve_on_first_use() -> None:
    for name in simfarm.__all__:
        assert getattr(simfarm, name) is not None
    from simfarm import Farm
    assert Farm.__module__ == "simfarm.farm.farm"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        simfarm.nope  # noqa: B018


def test_a_raw_camera_farm_loads_no_opencv() -> None:
    """The supervisor's modules and a raw camera's cycle need no OpenCV (a fifth of the
    supervisor's imports): MJPEG, text overlays and JPEG decoding load it on first use."""
    code = ("import sys; import simfarm.farm.supervisor, simfarm.farm.host, simfarm.backends.loopback.backend;"
            "from simfarm.patterns import PatternLibrary; from simfarm.producers.build import shared_cycle;"
            "from simfarm.spec import CameraSpec; shared_cycle(CameraSpec(), PatternLibrary());"
            "assert 'cv2' not in sys.modules, 'raw'; from simfarm.frames import pixfmt;"
            "import numpy as np; pixfmt.encode_jpeg_bgr(np.zeros((16, 16, 3), np.uint8));"
            "assert 'cv2' in sys.modules")
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
