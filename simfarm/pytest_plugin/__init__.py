"""pytest plugin: fake cameras as fixtures (registered through the ``pytest11`` entry point).

It does nothing for a test that uses none of its fixtures and no
``@pytest.mark.simfarm``: no farm, no kernel probe, no state. For the tests
that do:

- ``simfarm_camera`` / ``simfarm_cameras``: camera(s) lent to the test and,
  after it, given back clean (faults cleared, streaming its own codes again).
- ``simfarm_farm``: this worker's farm of the default spec (session scope).
- ``simfarm_stream``: a MediaMTX server publishing the test's cameras at
  ``cam<index>`` (``record=True`` in the marker records them too).
- ``simfarm_mediamtx``: a MediaMTX of the test's own on free ports, with no
  paths: for a service under test that adds its own through the API
  (``.api_url``, ``.rtsp_base_url``, ``.ports``); skipped without a binary.
- ``simfarm_new_farm``: make (and remove) farms of the test's own, e.g. to
  watch cameras appear and disappear.
- ``simfarm_request``: the FarmRequest this test asked for.
- ``@pytest.mark.simfarm(cameras=2, size="320x240", fps=15, format="YUYV",
  pattern="ball", publish=False, record=False)``; defaults from
  ``--simfarm-cameras/-size/-fps/-format/-pattern``. A test whose spec differs
  from the default gets a farm of its own.
- ``read_codes(camera, n)`` and ``assert_streaming(camera)`` to check frames.

Each pytest process (each xdist worker) has its own farms, named after the
run and the worker; all are torn down at the end of the session, and farms
left by a killed worker are removed when the next session starts. Where the
kernel cannot host cameras the tests are skipped, saying how to run them.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..errors import BadInput
from ..farm.farm import Camera, Farm
from ..publishers.mediamtx import MediaMTX
from ..state.records import state_root
from . import naming, publish
from .frames import assert_streaming, read_codes
from .pool import NewFarms, WorkerFarms
from .request import MARKER, MARKER_HELP, FarmRequest, add_options, for_marker, from_options

SKIP_REASON = ("simfarm: this kernel cannot host fake cameras (needs v4l2loopback >= 0.13 and a usable "
               "/dev/v4l2loopback); run the tests in the VM: simfarm vm -- python3 -m pytest ...")
# Using any of these (or the marker) makes a test a simfarm test.
FIXTURES = frozenset({"simfarm_farm", "simfarm_camera", "simfarm_cameras", "simfarm_stream", "simfarm_new_farm"})
_DEFAULT = pytest.StashKey[FarmRequest]()
_REQUEST = pytest.StashKey[FarmRequest]()


@functools.cache
def kernel_ready() -> bool:
    """Whether this kernel can host cameras (probed once, on first use)."""
    from ..doctor import host_can_run_cameras  # the probe pulls in the VM tooling: only when needed
    return host_can_run_cameras()


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_HELP)
    config.stash[_DEFAULT] = from_options(config)  # a bad --simfarm-* value stops the run here


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: object) -> None:
    """xdist controller: give every worker this run's id (see naming.py)."""
    node.workerinput[naming.RUN_KEY] = naming.controller_run_id()  # type: ignore[attr-defined]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    marker = item.get_closest_marker(MARKER)
    fixtures = getattr(item, "fixturenames", ())  # only test functions have fixtures
    if marker is None and FIXTURES.isdisjoint(fixtures):
        return
    try:
        request = for_marker(item.config.stash[_DEFAULT], marker)
    except BadInput as exc:
        pytest.fail(f"simfarm: {exc}", pytrace=False)
    item.stash[_REQUEST] = request
    if not kernel_ready():
        pytest.skip(SKIP_REASON)
    if (request.publish or "simfarm_stream" in fixtures) and (reason := publish.missing_reason()):
        pytest.skip(reason)


@pytest.fixture
def simfarm_request(request: pytest.FixtureRequest) -> FarmRequest:
    """What this test asked for: option defaults with its ``@pytest.mark.simfarm`` applied."""
    default = request.config.stash[_DEFAULT]
    return request.node.stash.get(_REQUEST, default)


@pytest.fixture(scope="session")
def simfarm_pool(pytestconfig: pytest.Config) -> Iterator[WorkerFarms]:
    """This process's farms; first removes farms left by killed pytest processes."""
    pool = WorkerFarms(naming.run_id(pytestconfig), naming.worker_id(pytestconfig), state_root(),
                       pytestconfig.stash[_DEFAULT])
    pool.reclaim_dead()
    yield pool
    pool.close()


@pytest.fixture(scope="session")
def simfarm_farm(simfarm_pool: WorkerFarms) -> Farm:
    """This worker's farm of the default spec, as first provisioned. Prefer the lent cameras:
    they come back clean, and are looked up again after an unplug moved a node."""
    return simfarm_pool.farm_for(simfarm_pool.default)


@pytest.fixture
def simfarm_cameras(simfarm_pool: WorkerFarms, simfarm_request: FarmRequest) -> Iterator[list[Camera]]:
    """The test's cameras (``cameras=`` of the marker), checked and cleaned after it."""
    cameras = simfarm_pool.cameras_for(simfarm_request)
    yield cameras
    if (problem := simfarm_pool.give_back(cameras)) is not None:
        pytest.fail(f"simfarm: cameras not returned clean: {problem}", pytrace=False)


@pytest.fixture
def simfarm_camera(simfarm_cameras: list[Camera]) -> Camera:
    """The test's first camera."""
    return simfarm_cameras[0]


@pytest.fixture
def simfarm_new_farm(simfarm_pool: WorkerFarms, simfarm_request: FarmRequest) -> Iterator[NewFarms]:
    """Farms of the test's own, e.g. to watch cameras appear and disappear (see NewFarms)."""
    made = NewFarms(simfarm_pool, simfarm_request.spec)
    yield made
    made.remove_all()


@pytest.fixture
def simfarm_stream(simfarm_cameras: list[Camera], simfarm_request: FarmRequest,
                   tmp_path: Path) -> Iterator[MediaMTX]:
    """MediaMTX publishing the test's cameras at ``cam<index>`` (see ``publish.path_name``)."""
    with publish.start(simfarm_cameras, tmp_path / "mediamtx", record=simfarm_request.record) as server:
        yield server


@pytest.fixture
def simfarm_mediamtx(tmp_path: Path) -> Iterator[MediaMTX]:
    """A MediaMTX for the service under test: free ports, no paths, its API open to 127.0.0.1; stopped after.

    Ask for it after the camera fixtures, so it stops (with the FFmpegs the
    service had it run on the nodes) before the cameras are given back.
    """
    if reason := publish.missing_reason():
        pytest.skip(reason)
    with MediaMTX.start(tmp_path / "service-mediamtx", {}) as server:
        yield server


__all__ = ["FIXTURES", "SKIP_REASON", "FarmRequest", "NewFarms", "assert_streaming", "kernel_ready", "read_codes"]
