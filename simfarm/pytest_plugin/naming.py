"""Farm names for pytest sessions: distinct per worker and per run, without coordination.

A run is identified by its controller's pid: two pytest runs alive at the
same time on one machine have different controller pids, so their farms
cannot collide, and no lock or random draw is needed to agree on it. xdist
workers learn the controller's pid through ``workerinput`` (see
``pytest_configure_node``), so every worker of a run shares one run id.
Inside a run each worker id (``gw0``, ``gw1``, ``main`` without xdist) is
unique, and a worker numbers the farms it makes.
"""

from __future__ import annotations

import os

import pytest

from ..state.records import check_farm_name

PREFIX = "pt"
RUN_KEY = "simfarm_run"  # the workerinput key carrying the controller's run id
NO_XDIST = "main"
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def base36(number: int) -> str:
    """A pid in at most 5 characters (pid_max is at most 2**22)."""
    text = ""
    while True:
        number, digit = divmod(number, 36)
        text = _DIGITS[digit] + text
        if not number:
            return text


def controller_run_id() -> str:
    """The run id a controller (or a run without xdist) makes for itself."""
    return base36(os.getpid())


def run_id(config: pytest.Config) -> str:
    workerinput = getattr(config, "workerinput", None)
    return workerinput[RUN_KEY] if workerinput and RUN_KEY in workerinput else controller_run_id()


def worker_id(config: pytest.Config) -> str:
    workerinput = getattr(config, "workerinput", None)
    return workerinput["workerid"] if workerinput else NO_XDIST


def run_prefix(run: str) -> str:
    """What every farm name of run ``run`` starts with."""
    return f"{PREFIX}{run}-"


def farm_name(run: str, worker: str, serial: int) -> str:
    """E.g. ``pt1a2b-gw0-0``: at most 16 characters for any pid, up to 100 workers and 100 farms each."""
    return check_farm_name(f"{run_prefix(run)}{worker}-{serial}")
