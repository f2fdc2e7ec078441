"""The kernel tier: every test here needs v4l2loopback >= 0.13 and its control
device, i.e. it runs inside `simfarm vm` (or on a host kernel that has them).
Elsewhere the tests are skipped, with the command that runs them."""

from __future__ import annotations

import functools
from collections.abc import Iterator

import pytest

from simfarm.devices.udev import rules
from simfarm.doctor import host_can_run_cameras

SKIP_REASON = ("needs v4l2loopback >= 0.13 with a usable /dev/v4l2loopback; "
               "run inside the VM: simfarm vm -- pytest -m hil")


@functools.cache
def _kernel_ready() -> bool:
    return host_can_run_cameras()


def pytest_runtest_setup(item: pytest.Item) -> None:
    # A runtest hook in this conftest applies to the tests of this directory only.
    if not _kernel_ready():
        pytest.skip(SKIP_REASON)


@pytest.fixture(scope="session", autouse=True)
def _udev_rules() -> None:
    # Stable by-id links for farm cameras. The VM's /etc is a throwaway overlay;
    # /run/udev/rules.d is udev's runtime rules dir.
    rules.install(rules.RUNTIME_DIR)


@pytest.fixture
def in_farm_state(farm, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """For a module whose tests share one farm (its ``farm`` fixture, made in a state directory of
    its own): each test works in that directory rather than its private one, and ends with no
    fault in force."""
    monkeypatch.setenv("SIMFARM_STATE_DIR", str(farm.state_dir.parent.parent))
    yield
    farm.clear_faults()
