"""Issue 3, the 0.12 fallback: farms on a v4l2loopback without a control device.

Swaps the VM's DKMS v4l2loopback (0.15) for bookworm's 0.12.7, which
scripts/setup-vm.sh builds for the VM kernel, by bind-mounting it over the
module file: the swap exists inside the VM only. On a real host it would
unload the user's module, so these tests run only inside `simfarm vm`.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from simfarm import Farm
from simfarm.devices.kmod import kmodule
from simfarm.devices.loopback import nodes as loopback_nodes
from simfarm.devices.loopback.control import CONTROL_DEVICE
from simfarm.devices.v4l2 import capture, nodes
from simfarm.frames.code import decode
from simfarm.spec import CameraSpec
from simfarm.state.records import ProcessId, farm_names
from simfarm.vm.runner import IN_VM_ENV

from kernel_helpers import simfarm, video_nodes

pytestmark = pytest.mark.hil

LEGACY_KO = Path(f"/opt/simfarm/v4l2loopback-0.12.7/{os.uname().release}/v4l2loopback.ko")
MODULE = "v4l2loopback"
SMALL = ("--size", "320x240", "--fps", "15")
SMALL_SPEC = CameraSpec.parse(size="320x240", fps=15)


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, text=True)


@pytest.fixture(scope="module", autouse=True)
def legacy_module() -> Iterator[None]:
    if os.environ.get(IN_VM_ENV) != "1":
        pytest.skip("swaps the kernel's v4l2loopback for 0.12.7: runs only inside `simfarm vm`")
    assert LEGACY_KO.exists(), f"{LEGACY_KO} is missing: run scripts/setup-vm.sh"
    assert not farm_names(), "another farm is running; the swap needs v4l2loopback unused"
    sh("modprobe", "-r", MODULE)
    installed = subprocess.run(["modinfo", "-n", MODULE], check=True, capture_output=True, text=True).stdout.strip()
    sh("mount", "--bind", str(LEGACY_KO), installed)
    try:
        assert kmodule.installed_version(MODULE) == "", "0.12.7 declares no version; the swap did not take"
        yield
    finally:
        simfarm("teardown", "--all")
        subprocess.run(["modprobe", "-r", MODULE], check=False)
        sh("umount", installed)
        sh("modprobe", MODULE, "devices=0")


def codes_of(device: str, count: int = 4) -> list[tuple[int, int]]:
    found = [decode(frame.luma) for frame in capture.read_luma(device, count=count)]
    return [(code.camera, code.sequence) for code in found if code is not None]


def assert_streams_own_codes(farm: Farm) -> None:
    for cam in farm.cameras:
        codes = codes_of(cam.device)
        assert codes and {camera for camera, _ in codes} == {cam.index}, (cam.device, codes)
        sequences = [sequence for _, sequence in codes]
        assert sequences == sorted(set(sequences)), sequences


def test_provision_loads_the_module_with_every_camera_and_teardown_unloads_it() -> None:
    assert loopback_nodes.choose_mode() is loopback_nodes.Mode.PARAMETERS
    before = video_nodes()
    result = simfarm("provision", "--cameras", "3", "--farm", "old", *SMALL)
    assert result.returncode == 0, result.stderr
    farm = Farm.attach("old")
    assert kmodule.loaded(MODULE) and not os.path.exists(CONTROL_DEVICE)
    assert [nodes.card_label(cam.number) for cam in farm.cameras] == [f"simfarm-old-{i}" for i in range(3)]
    assert video_nodes() - before == {cam.device for cam in farm.cameras}
    assert_streams_own_codes(farm)

    hotplug = simfarm("fault", "0", "unplug", "--farm", "old")
    assert hotplug.returncode == 1
    assert "needs v4l2loopback >= 0.13" in hotplug.stderr and len(hotplug.stderr.strip().splitlines()) == 1
    second = simfarm("provision", "--cameras", "1", "--farm", "other", *SMALL)
    assert second.returncode == 1 and "loaded already" in second.stderr, second.stderr
    assert "other" not in farm_names()
    assert_streams_own_codes(farm)  # neither refusal disturbed the farm

    assert simfarm("teardown", "--farm", "old").returncode == 0
    assert not kmodule.loaded(MODULE)
    assert video_nodes() == before
    assert farm_names() == []


def test_teardown_waits_for_a_reader_and_names_it() -> None:
    farm = Farm.provision(1, name="held", spec=SMALL_SPEC)
    reader = os.open(farm.cameras[0].device, os.O_RDONLY)
    try:
        busy = simfarm("teardown", "--farm", "held", "--timeout", "1")
        assert busy.returncode == 1
        assert f"pids: {os.getpid()}" in busy.stderr, busy.stderr
        assert kmodule.loaded(MODULE) and "held" in farm_names()  # kept, so a later teardown finishes
    finally:
        os.close(reader)
    assert simfarm("teardown", "--farm", "held").returncode == 0
    assert not kmodule.loaded(MODULE) and farm_names() == []


def test_killed_supervisor_is_reclaimed_with_its_module() -> None:
    farm = Farm.provision(2, name="crash", spec=SMALL_SPEC)
    supervisor = ProcessId.of(farm.supervisor_pid)
    os.kill(farm.supervisor_pid, signal.SIGKILL)
    assert supervisor is not None
    status = simfarm("status")
    assert status.returncode == 0, status.stderr
    assert not supervisor.alive()
    assert not kmodule.loaded(MODULE) and farm_names() == []


def test_too_many_cameras_for_012_load_nothing() -> None:
    result = simfarm("provision", "--cameras", "9", "--farm", "big", *SMALL)
    assert result.returncode == 1
    assert "at most 8 devices" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not kmodule.loaded(MODULE) and farm_names() == []


def test_a_module_someone_else_loaded_is_refused_and_left_alone() -> None:
    sh("modprobe", MODULE, "devices=1", "card_label=not-simfarm")
    try:
        [theirs] = nodes.numbers_with_label("not-simfarm")
        result = simfarm("provision", "--cameras", "1", "--farm", "intruder", *SMALL)
        assert result.returncode == 1 and "loaded already" in result.stderr, result.stderr
        assert simfarm("teardown", "--all").returncode == 0
        assert kmodule.loaded(MODULE) and nodes.card_label(theirs) == "not-simfarm"
    finally:
        sh("modprobe", "-r", MODULE)
