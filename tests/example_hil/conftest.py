"""The example HIL suite's checks that its pytest-xdist workers never share a camera.

Every test that borrows cameras records them (farm, label, node number, what
the kernel says the node's card is, and when) in a file per worker, under a
directory all workers of the run share. When the run ends, the controller
compares the workers' records and looks for anything this run left behind:
farms, leases, nodes or supervisor processes.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from simfarm import Camera
from simfarm.devices.v4l2 import nodes
from simfarm.pytest_plugin import leases, naming
from simfarm.state.records import farm_names, state_root

CLAIMS = "simfarm-claims"


def shared_dir(config: pytest.Config) -> Path:
    """This run's directory shared by its workers (each xdist worker's basetemp is inside the controller's)."""
    base = config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    return (base.parent if hasattr(config, "workerinput") else base) / CLAIMS


@pytest.fixture(autouse=True)
def _record_claims(request: pytest.FixtureRequest) -> None:
    if "simfarm_cameras" not in request.fixturenames:
        return
    cameras: list[Camera] = request.getfixturevalue("simfarm_cameras")
    directory = shared_dir(request.config)
    directory.mkdir(exist_ok=True)
    worker = naming.worker_id(request.config)
    with open(directory / f"{worker}.jsonl", "a") as claims:
        for cam in cameras:
            claims.write(json.dumps({"worker": worker, "farm": cam.farm.name, "label": cam.label,
                                     "number": cam.number, "card": _identity(cam.number),
                                     "time": time.time()}) + "\n")


def _identity(number: int) -> str | None:
    """What marks node ``number`` as a farm camera: a loopback node's card, a USB webcam's serial."""
    return nodes.usb_serial(number) or nodes.card_label(number)


def _claims(directory: Path) -> list[dict]:
    return [json.loads(line) for path in sorted(directory.glob("*.jsonl")) for line in path.read_text().splitlines()]


def sharing_problems(claims: list[dict]) -> list[str]:
    """Cameras two workers shared, or that were not what the kernel said they were."""
    problems = [f"{c['worker']} used {c['label']} on video{c['number']}, whose card was {c['card']!r}"
                for c in claims if c["card"] != c["label"]]
    farms: dict[str, dict] = {}
    for claim in claims:
        farm = farms.setdefault(claim["farm"], {"worker": claim["worker"], "numbers": set(), "times": []})
        farm["numbers"].add(claim["number"])
        farm["times"].append(claim["time"])
    names = sorted(farms)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            left, right = farms[a], farms[b]
            if left["worker"] == right["worker"]:
                continue
            # A node number may be reused once the farm that had it is gone, so
            # only farms in use at the same time must have disjoint numbers.
            overlap = min(left["times"]) <= max(right["times"]) and min(right["times"]) <= max(left["times"])
            if overlap and left["numbers"] & right["numbers"]:
                problems.append(f"farms {a} and {b} of different workers shared nodes "
                                f"{sorted(left['numbers'] & right['numbers'])}")
    return problems


def leftovers(run: str) -> list[str]:
    """Farms, leases, nodes and supervisors of run ``run`` that still exist."""
    prefix = naming.run_prefix(run)
    found = [f"farm record {name}" for name in farm_names() if name.startswith(prefix)]
    directory = leases.lease_dir(state_root())
    found += [f"lease {p.name}" for p in directory.glob(f"{prefix}*")] if directory.is_dir() else []
    for entry in nodes.SYSFS.glob("video*"):
        label = _identity(int(entry.name[5:])) or ""
        if label.startswith(f"simfarm-{prefix}"):
            found.append(f"node {entry.name} ({label})")
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0") if proc.name.isdigit() else []
        except OSError:
            continue
        if b"simfarm.farm.supervisor" in argv and any(a.startswith(prefix.encode()) for a in argv):
            found.append(f"supervisor pid {proc.name}")
    return found


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """On the controller, after every worker has torn its farms down."""
    config = session.config
    if hasattr(config, "workerinput"):
        return
    directory = shared_dir(config)
    problems = sharing_problems(_claims(directory)) if directory.is_dir() else []
    problems += [f"left behind: {item}" for item in leftovers(naming.run_id(config))]
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if problems:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if reporter is not None:
        workers = sorted(p.stem for p in directory.glob("*.jsonl")) if directory.is_dir() else []
        reporter.write_sep("-", f"simfarm example: cameras of workers {workers} checked; "
                            + ("; ".join(problems) if problems else "none shared, nothing left behind"))
