"""What the kernel-tier tests share: running the CLI, waiting on a condition, listing nodes.

A plain module next to conftest.py (pytest puts this directory on sys.path
for the tests in it), for helpers that are called rather than requested.
"""

from __future__ import annotations

import contextlib
import glob
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest

from simfarm import Farm
from simfarm.spec import CameraSpec


def simfarm(*args: str) -> subprocess.CompletedProcess:
    """Run the CLI in a process of its own, as a user would; its output captured as text."""
    return subprocess.run([sys.executable, "-m", "simfarm", *args], capture_output=True, text=True,
                          timeout=120, check=False)


def wait_until(condition: Callable[[], object], what: str, timeout: float = 30.0) -> None:
    """Poll ``condition`` where the farm offers no event to wait on (a fault's end, a camera streaming)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def video_nodes() -> set[str]:
    return set(glob.glob("/dev/video*"))


@contextlib.contextmanager
def module_farm(tmp_path_factory: pytest.TempPathFactory, cameras: int, *, name: str, spec: CameraSpec,
                backend: str = "loopback", loopback_buffers: int | None = None) -> Iterator[Farm]:
    """One farm for a whole module (provisioning is slow under emulation), in a state directory of
    its own that each test gets back (in_farm_state in conftest.py) over the per-test one."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SIMFARM_STATE_DIR", str(tmp_path_factory.mktemp(name)))
        with Farm.provision(cameras, name=name, spec=spec, backend=backend,
                            loopback_buffers=loopback_buffers) as made:
            yield made
