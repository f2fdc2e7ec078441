"""What `simfarm vm` promises the tests that run inside it: a loaded
v4l2loopback >= 0.13 with its control device and no pre-made nodes, a udevd
that handles real uevents, vivid on demand, and a working directory whose
writes reach the host while /tmp stays in the guest.

    simfarm vm -- pytest -m hil tests/vm
"""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import pyudev

from simfarm.devices.loopback.control import LoopbackConfig, LoopbackControl
from simfarm.devices.loopback.module import CONTROL_DEVICE, module_version

pytestmark = pytest.mark.hil

in_vm = pytest.mark.skipif(os.environ.get("SIMFARM_IN_VM") != "1",
                           reason="checks the VM's filesystem and environment; run inside the VM: simfarm vm -- pytest -m hil")
SYSFS_V4L = Path("/sys/class/video4linux")


def node_names() -> dict[str, str]:
    """/sys/class/video4linux entry -> its card name."""
    return {p.name: (p / "name").read_text().strip() for p in SYSFS_V4L.glob("*")} if SYSFS_V4L.exists() else {}


def wait_for(monitor: pyudev.Monitor, action: str, sys_name: str, timeout: float = 30.0) -> pyudev.Device:
    """The next udev event ``action`` for ``sys_name`` (other events are skipped)."""
    while True:
        device = monitor.poll(timeout=timeout)
        assert device is not None, f"no udev {action} event for {sys_name} within {timeout} s"
        if device.action == action and device.sys_name == sys_name:
            return device


def test_loopback_module_has_the_control_device() -> None:
    version = module_version()
    assert version is not None and version >= (0, 13), version
    assert stat.S_ISCHR(os.stat(CONTROL_DEVICE).st_mode)


def test_loopback_made_no_nodes_at_load() -> None:
    # Nodes made by the module parameter carry the driver's default label.
    assert not [n for n, label in node_names().items() if label.startswith("Dummy video device")]


def test_udevd_answers() -> None:
    assert subprocess.run(["udevadm", "control", "--ping"], check=False).returncode == 0


def test_control_device_add_and_remove_are_udev_events() -> None:
    monitor = pyudev.Monitor.from_netlink(pyudev.Context(), source="udev")
    monitor.filter_by("video4linux")
    monitor.start()
    label = f"vmtest-{uuid.uuid4().hex[:8]}"
    with LoopbackControl() as control:
        number = control.add(LoopbackConfig(label=label))
        try:
            added = wait_for(monitor, "add", f"video{number}")
        finally:
            control.remove(number)
        removed = wait_for(monitor, "remove", f"video{number}")
    # Only udevd's rules (v4l_id) set ID_V4L_PRODUCT: the event went through udevd, not just the kernel.
    assert added.device_node == f"/dev/video{number}"
    assert added.properties.get("ID_V4L_PRODUCT") == label
    assert removed.device_node == f"/dev/video{number}"
    assert not os.path.exists(f"/dev/video{number}")


def test_vivid_loads_on_demand() -> None:
    if Path("/sys/module/vivid").exists():
        pytest.skip("vivid is already loaded by another test")
    before = set(node_names())
    subprocess.run(["modprobe", "vivid", "n_devs=1", "node_types=0x1"], check=True)
    try:
        subprocess.run(["udevadm", "settle"], check=True)
        new = {n: label for n, label in node_names().items() if n not in before}
        assert any("vivid" in label for label in new.values()), new
    finally:
        subprocess.run(["modprobe", "-r", "vivid"], check=True)


@in_vm
def test_the_launch_environment_is_the_commands() -> None:
    # init's own environment has neither: they come from the runner's launch file.
    assert os.environ["SIMFARM_VM_ACCEL"] in ("kvm", "tcg")
    assert Path(os.environ["PATH"].split(":")[0]).is_absolute()


@contextlib.contextmanager
def host_view() -> Iterator[Path]:
    """The host's root as the guest's root mount shows it, without the mounts
    on top (rwdirs, /tmp overlay): what the host itself has on disk."""
    where = Path(tempfile.mkdtemp(dir="/run"))
    subprocess.run(["mount", "--bind", "/", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)
        where.rmdir()


@in_vm
def test_writes_in_the_working_directory_reach_the_host() -> None:
    marker = Path.cwd() / f".simfarm-vm-{uuid.uuid4().hex[:8]}"
    marker.write_text("from the guest")
    try:
        with host_view() as host:
            assert (host / marker.relative_to("/")).read_text() == "from the guest"
    finally:
        marker.unlink()


@in_vm
def test_writes_in_tmp_stay_in_the_guest() -> None:
    with tempfile.NamedTemporaryFile(dir="/tmp") as f, host_view() as host:
        assert Path(f.name).exists()
        assert not (host / Path(f.name).relative_to("/")).exists()


@in_vm
def test_home_is_writable_but_stays_in_the_guest() -> None:
    marker = Path.home() / f".simfarm-vm-{uuid.uuid4().hex[:8]}"
    marker.write_text("cache")  # tools write caches under $HOME; EROFS would break them
    try:
        with host_view() as host:
            assert not (host / marker.relative_to("/")).exists()
    finally:
        marker.unlink()


@in_vm
def test_simfarm_is_imported_from_the_guests_memory_with_bytecode_for_every_module() -> None:
    import importlib.util

    import simfarm
    package = Path(simfarm.__file__).resolve().parent
    mounts = {fields[4]: fields[fields.index("-") + 1]
              for fields in (line.split() for line in Path("/proc/self/mountinfo").read_text().splitlines())}
    assert package.as_posix() in mounts and mounts[package.as_posix()] != "9p", mounts.get(package.as_posix())
    missing = [str(source) for source in package.rglob("*.py")
               if not Path(importlib.util.cache_from_source(str(source))).exists()]
    assert missing == []
