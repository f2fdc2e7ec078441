"""The pytest plugin on the host: registration, inertness, options and markers, skipping, naming, leases.

Provisioning needs a kernel with v4l2loopback, so here it is replaced by a
fake that records what it was asked for; the real thing is exercised by
tests/example_hil inside the VM.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path
from types import SimpleNamespace

import pytest

import simfarm.pytest_plugin as plugin
from simfarm.farm.farm import Camera
from simfarm.pytest_plugin import leases, naming, pool
from simfarm.spec import CameraSpec, Size
from simfarm.state.records import state_root

pytest_plugins = ["pytester"]


class FakeFarm:
    """Stands in for a provisioned Farm: cameras with the requested spec, a teardown that is counted."""

    backend = "loopback"

    def __init__(self, name: str, cameras: int, spec: CameraSpec, log: list) -> None:
        self.name = name
        self.cameras = [Camera(self, i, spec, f"simfarm-{name}-{i}", 100 + i) for i in range(cameras)]  # type: ignore[arg-type]
        self._log = log

    def teardown(self) -> None:
        self._log.append(("teardown", self.name))

    def request(self, message: dict) -> dict:
        assert message["op"] == "clear"  # the only request lending cameras makes
        return {"cleared": []}


@pytest.fixture
def provisioned(monkeypatch: pytest.MonkeyPatch) -> list:
    """Every provision and teardown the plugin does, with a kernel that can host cameras."""
    log: list = []
    farms: dict[str, FakeFarm] = {}

    def provision(cameras: int, *, name: str, spec: CameraSpec, backend: str) -> FakeFarm:
        assert backend == "loopback"
        log.append(("provision", name, cameras, spec))
        farms[name] = FakeFarm(name, cameras, spec, log)
        return farms[name]
    monkeypatch.setattr(plugin, "kernel_ready", lambda: True)
    monkeypatch.setattr(pool.Farm, "provision", provision)
    monkeypatch.setattr(pool.Farm, "attach", farms.__getitem__)
    monkeypatch.setattr(pool, "streaming_problem", lambda camera: None)
    return log


def test_registered_through_the_pytest11_entry_point() -> None:
    assert [e.value for e in entry_points(group="pytest11") if e.name == "simfarm"] == ["simfarm.pytest_plugin"]


def test_inert_for_a_suite_that_does_not_use_it(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    probes: list[str] = []

    def probe(*args: object, **kwargs: object) -> bool:
        probes.append("probed")
        return True
    monkeypatch.setattr(plugin, "kernel_ready", probe)
    monkeypatch.setattr(pool.Farm, "provision", probe)
    pytester.makepyfile("def test_plain(tmp_path):\n    assert tmp_path.exists()\n")
    pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
    assert probes == [] and not any(state_root().iterdir())


def test_skipped_with_how_to_run_it_where_the_kernel_cannot_host_cameras(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plugin, "kernel_ready", lambda: False)
    pytester.makepyfile("""
        import pytest
        def test_camera(simfarm_camera):
            pass
        @pytest.mark.simfarm(cameras=2)
        def test_marked():
            pass
    """)
    result = pytester.runpytest_inprocess("-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*SKIPPED [[]2]*this kernel cannot host fake cameras*simfarm vm -- python3 -m pytest*"])


def test_options_and_markers_decide_what_is_provisioned(pytester: pytest.Pytester, provisioned: list) -> None:
    pytester.makepyfile("""
        import pytest
        def test_defaults(simfarm_cameras):
            assert [c.spec.size.width for c in simfarm_cameras] == [640, 640, 640]
        @pytest.mark.simfarm(cameras=1)
        def test_fewer_cameras_share_the_farm(simfarm_camera, simfarm_farm):
            assert simfarm_camera.farm is simfarm_farm
        @pytest.mark.simfarm(cameras=1, size="352x288", fps=10, format="GREY", pattern="ball")
        def test_own_spec(simfarm_camera, simfarm_request):
            assert simfarm_camera.spec == simfarm_request.spec
    """)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--simfarm-cameras=3", "--simfarm-size=640x480")
    result.assert_outcomes(passed=3)
    made = [entry[1:] for entry in provisioned if entry[0] == "provision"]
    assert [(cameras, spec.size, spec.fps, spec.format.name, spec.pattern) for _, cameras, spec in made] == [
        (3, Size(640, 480), 15, "YUYV", "smpte75"), (1, Size(352, 288), 10, "GREY", "ball")]
    names = [name for name, _, _ in made]
    assert len(set(names)) == 2 and all(name.endswith(("-main-0", "-main-1")) for name in names)
    assert sorted(name for kind, name, *_ in provisioned if kind == "teardown") == sorted(names)
    assert not list(leases.lease_dir(state_root()).iterdir())


@pytest.mark.parametrize("marker, words", [
    ('size="abc"', "size 'abc' is not WxH"),
    ("cameras=0", "cameras must be 1..256"),
    ("colour=1", "@pytest.mark.simfarm has no setting 'colour'"),
    ("record=True", "record=True needs publish=True"),
])
def test_a_bad_marker_fails_its_test_with_one_line(pytester: pytest.Pytester, provisioned: list,
                                                   marker: str, words: str) -> None:
    pytester.makepyfile(f"""
        import pytest
        @pytest.mark.simfarm({marker})
        def test_bad(simfarm_camera):
            pass
    """)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*simfarm: {words}*"])
    assert provisioned == []


def test_a_bad_option_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest_inprocess("--simfarm-fps=-1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*simfarm: fps -1 must be > 0*"])


def test_a_camera_that_does_not_recover_is_reported_and_its_farm_replaced(
        pytester: pytest.Pytester, provisioned: list, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pool, "streaming_problem", lambda cam: "frozen" if cam.farm.name.endswith("-0") else None)
    pytester.makepyfile("""
        def test_breaks_it(simfarm_camera):
            pass
        def test_after(simfarm_camera):
            assert simfarm_camera.farm.name.endswith("-1")
    """)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*simfarm: cameras not returned clean: frozen*replaced*"])


def test_farm_names_differ_between_workers_and_runs() -> None:
    names = {naming.farm_name(run, worker, 0) for run in ("1a", "1b") for worker in ("gw0", "gw1", "main")}
    assert len(names) == 6
    longest = naming.farm_name(naming.base36(2**22), "gw99", 99)  # pid_max's ceiling
    assert len(longest) <= 16


def test_workers_share_the_controllers_run_id() -> None:
    node = SimpleNamespace(workerinput={"workerid": "gw1"})  # what xdist's controller and worker see
    plugin.pytest_configure_node(node)
    assert naming.run_id(node) == naming.base36(os.getpid()) == naming.controller_run_id()  # type: ignore[arg-type]
    assert naming.worker_id(node) == "gw1"  # type: ignore[arg-type]


def test_a_lease_is_exclusive_while_its_owner_lives(tmp_path: Path) -> None:
    lease = leases.take(tmp_path, "pt1-gw0-0")
    with pytest.raises(Exception, match="leased by another live pytest process"):
        leases.take(tmp_path, "pt1-gw0-0")
    assert leases.reclaim_dead(tmp_path, lambda name: pytest.fail("owner is alive")) == []
    lease.release()
    assert not list(leases.lease_dir(tmp_path).iterdir())


def test_the_farm_of_a_sigkilled_owner_is_torn_down_by_the_next_session(tmp_path: Path) -> None:
    owner = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from simfarm.pytest_plugin import leases; "
        f"leases.take(Path({str(tmp_path)!r}), 'pt1-gw0-0'); print('ok', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    assert owner.stdout is not None and owner.stdout.readline() == "ok\n"
    assert leases.reclaim_dead(tmp_path, lambda name: pytest.fail("owner is alive")) == []
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    torn: list[str] = []
    assert leases.reclaim_dead(tmp_path, torn.append) == ["pt1-gw0-0"] == torn
    assert not list(leases.lease_dir(tmp_path).iterdir())


@pytest.mark.parametrize("sequences, clean", [
    ([7, 7, 7, 7, 8, 9, 10, 11, 12], True),        # frozen frames left in the ring, then fresh ones
    ([7] * 12, False),                             # still frozen
    ([1, 2, 3, 4, None, 5, 6, 7, 8, 9], True),     # a frame without a code restarts the count
    ([5, 6, 7, 1, 2, 3, 4, 0, 1, 2], False),       # never enough in order before the reads run out
])
def test_a_camera_is_clean_once_more_codes_advance_than_its_ring_holds(
        monkeypatch: pytest.MonkeyPatch, sequences: list[int | None], clean: bool) -> None:
    from simfarm.frames.code import FrameCode
    from simfarm.pytest_plugin import frames
    codes = [None if s is None else FrameCode(0, s, 0) for s in sequences]
    monkeypatch.setattr(frames.capture, "read_luma",
                        lambda device, count, timeout: (SimpleNamespace(luma=code) for code in codes[:count]))
    monkeypatch.setattr(frames, "decode", lambda luma: luma)
    camera = Camera(SimpleNamespace(backend="loopback"), 0, CameraSpec(), "simfarm-x-0", 3)  # type: ignore[arg-type]
    assert (frames.streaming_problem(camera, n=10) is None) == clean
