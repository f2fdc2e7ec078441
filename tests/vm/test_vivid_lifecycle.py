"""The vivid backend's ownership of the module: provision loads it, teardown and reclaim unload
it, a failed provision leaves it unloaded, and a vivid simfarm did not load is never touched.

Runs inside `simfarm vm`; each test makes (at most) its own one- or two-camera farm.
"""

from __future__ import annotations

import glob
import os
import select
import signal
import subprocess
from collections.abc import Iterator

import pytest

from simfarm import Farm
from simfarm.cli import main
from simfarm.devices.v4l2 import nodes
from simfarm.devices.vivid import driver as vivid
from simfarm.errors import EnvironmentProblem
from simfarm.spec import CameraSpec
from simfarm.state.records import farm_names

pytestmark = pytest.mark.hil

SPEC = CameraSpec.parse(size="320x180", fps=30)


def vivid_nodes() -> list[str]:
    return [path for path in glob.glob("/dev/video*") if (nodes.card_label(int(path[10:])) or "").startswith("vivid")]


@pytest.fixture(autouse=True)
def _no_vivid_before_or_after() -> Iterator[None]:
    assert not vivid.loaded(), "vivid is loaded before the test"
    yield
    if vivid.loaded():  # a failed test's leftovers must not fail the next one
        subprocess.run(["modprobe", "-r", "vivid"], check=False)
        pytest.fail("vivid was left loaded")


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run a simfarm command in this process (Python starts slowly under emulation): code, out, err."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_provision_loads_vivid_and_teardown_unloads_it_leaving_no_node(capsys) -> None:
    code, out, err = cli(capsys, "provision", "--backend", "vivid", "--cameras", "2", "--size", "320x180",
                         "--farm", "vl")
    try:
        assert code == 0, err
        farm = Farm.attach("vl")
        assert vivid.loaded() and len(vivid_nodes()) == 4
        for cam in farm.cameras:
            assert cam.device in out and cam.metadata_device in out
        code, out, _ = cli(capsys, "status", "--farm", "vl")
        assert code == 0 and "(vivid, running)" in out and "ready" in out, out
    finally:
        code, _, err = cli(capsys, "teardown", "--farm", "vl")
    assert code == 0, err
    assert not vivid.loaded() and vivid_nodes() == [] and farm_names() == []


@pytest.mark.parametrize(("args", "words"), [
    (["--size", "800x600"], "vivid does not offer 800x600 in YUYV (it offers 320x180, 640x360"),
    (["--size", "1280x720", "--fps", "30"], "vivid does not offer 30 fps at 1280x720"),
])
def test_a_size_or_rate_vivid_does_not_offer_exits_2_and_leaves_vivid_unloaded(capsys, args: list[str],
                                                                               words: str) -> None:
    code, _, err = cli(capsys, "provision", "--backend", "vivid", "--farm", "bad", *args)
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
    assert not vivid.loaded() and farm_names() == []


def test_a_killed_supervisor_s_vivid_is_unloaded_by_the_next_command(capsys) -> None:
    farm = Farm.provision(1, name="killed", spec=SPEC, backend="vivid")
    exited = os.pidfd_open(farm.supervisor_pid)
    try:
        os.kill(farm.supervisor_pid, signal.SIGKILL)
        assert select.select([exited], [], [], 30)[0], "the supervisor did not die"
    finally:
        os.close(exited)
    assert vivid.loaded()
    code, out, err = cli(capsys, "status")
    assert code == 0 and "killed" not in out, err
    assert not vivid.loaded() and vivid_nodes() == [] and farm_names() == []


def test_teardown_waits_for_a_reader_and_names_it() -> None:
    farm = Farm.provision(1, name="held", spec=SPEC, backend="vivid")
    reader = os.open(farm.cameras[0].metadata_device, os.O_RDWR)
    try:
        with pytest.raises(EnvironmentProblem, match=f"still open \\(pids: {os.getpid()}\\)"):
            farm.teardown(timeout=0.5)
        assert vivid.loaded()
    finally:
        os.close(reader)
    farm.teardown()
    assert not vivid.loaded() and farm_names() == []


def test_a_vivid_simfarm_did_not_load_is_refused_and_left_alone(capsys) -> None:
    subprocess.run(["modprobe", "vivid", "n_devs=1", "node_types=0x1"], check=True)
    try:
        code, _, err = cli(capsys, "provision", "--backend", "vivid", "--farm", "theirs")
        assert code == 1 and "vivid is already loaded, and not by simfarm" in err, err
        assert vivid.loaded() and farm_names() == []
    finally:
        subprocess.run(["modprobe", "-r", "vivid"], check=True)
