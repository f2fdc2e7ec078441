"""The lab of the labgrid example, on this one machine: a uvc farm exporting two webcams over USB/IP on
127.0.0.1, a real labgrid-coordinator and labgrid-exporter on free ports, and the place
``simfarm-example`` (camera 1) created and acquired with labgrid-client before labgrid's ``target``
fixture looks it up. Everything is stopped afterwards. Runs with ``--lg-env env.yaml`` only."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from simfarm import Farm
from simfarm.devices.usb import vhci
from simfarm.state.records import farm_names
from simfarm.spec import CameraSpec

PROFILE = str(Path(__file__).parents[1] / "data" / "uvc-test.yaml")
FARM, PLACE = "lgx", "simfarm-example"
WEBCAM = f"simfarm-{FARM}/NetworkSimfarmWebcam/simfarm-{FARM}-1"
SLOW = 300  # seconds: labgrid's start-up and the exporter's registration under TCG


@pytest.fixture(autouse=True)
def _private_state_dir() -> None:
    """The farm, `simfarm attach` and `simfarm fault` share the session's state directory."""


@pytest.fixture(scope="session", autouse=True)
def lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    if not request.config.getoption("lg_env", default=None):
        pytest.skip("the labgrid example runs with --lg-env tests/labgrid_example/env.yaml")
    work = tmp_path_factory.mktemp("lab")
    saved = {key: os.environ.get(key) for key in ("SIMFARM_STATE_DIR", "LG_COORDINATOR", "PATH")}
    os.environ["SIMFARM_STATE_DIR"] = str(work / "state")
    # labgrid's daemons and the DUT's `simfarm` are those installed beside this interpreter.
    os.environ["PATH"] = f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"
    started: list[subprocess.Popen] = []
    coordinator = f"127.0.0.1:{free_port()}"
    try:
        with Farm.provision(2, name=FARM, spec=CameraSpec.parse(size="320x240", fps=15, profile=PROFILE),
                            backend="uvc", usbip_listen="127.0.0.1:0"):
            started.append(spawn(["labgrid-coordinator", "--listen", coordinator], work, "coordinator"))
            wait_for(lambda: listening(coordinator), "the coordinator to listen")
            config = work / "exporter.yaml"
            config.write_text(run([sys.executable, "-m", "simfarm", "labgrid", "exporter-config", "--farm", FARM,
                                   "--host", "localhost"]))
            started.append(spawn(["labgrid-exporter", "--coordinator", coordinator, "--name", "farmhost",
                                  str(config)], work, "exporter"))
            client = ["labgrid-client", "--coordinator", coordinator, "--place", PLACE]
            # --verbose lists each resource as EXPORTER/GROUP/CLS[/NAME]
            wait_for(lambda: f"NetworkSimfarmWebcam[/simfarm-{FARM}-1]" in run(
                [*client[:3], "--verbose", "resources"], check=False), "the exporter's webcam on the coordinator")
            run([*client, "create"])
            run([*client, "add-match", f"farmhost/{WEBCAM}"])
            run([*client, "acquire"])
            os.environ["LG_COORDINATOR"] = coordinator
            yield
            run([*client, "release"])
    finally:
        subprocess.run([sys.executable, "-m", "simfarm", "detach", "--all"], capture_output=True, check=False)
        codes = [stop(process) for process in reversed(started)]
        farms_left = farm_names()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    # Nothing left: the driver detached, the daemons ended on SIGTERM, the farm is gone.
    assert not any(vhci.find(f"simfarm-{FARM}-{i}") for i in range(2)), "a webcam is still attached"
    assert all(code in (0, -signal.SIGTERM) for code in codes), f"killed or failed: {codes}"
    assert FARM not in farms_left, "the farm is still running"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listening(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError:
        return False
    return True


def spawn(argv: list[str], cwd: Path, name: str) -> subprocess.Popen:
    """Start a labgrid daemon in ``cwd`` (the coordinator keeps its places there), its output in NAME.log."""
    with open(cwd / f"{name}.log", "wb") as log:
        return subprocess.Popen(argv, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)


def run(argv: list[str], *, check: bool = True) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=SLOW, check=False)
    assert done.returncode == 0 or not check, f"{' '.join(argv)}: {done.stderr}"
    return done.stdout


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + SLOW
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(1)


def stop(process: subprocess.Popen) -> int | None:
    """SIGTERM, and its exit status; None when it had to be killed."""
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return None
