"""Farm records: ownership ledger round trip, liveness by pid + start time, staleness."""

from __future__ import annotations

import subprocess
import sys

import pytest

from simfarm.errors import BadInput
from simfarm.farm.reclaim import reclaim, stale_farms
from simfarm.state.records import FarmRecord, NodeRecord, ProcessId, check_farm_name, farm_names


def test_record_round_trip() -> None:
    record = FarmRecord(name="lab", spec={"cameras": [{}]}, supervisor=ProcessId.me(),
                        nodes=[NodeRecord(0, "simfarm-lab-0", 7), NodeRecord(1, "simfarm-lab-1")])
    record.directory.mkdir(parents=True)
    record.save()
    loaded = FarmRecord.load("lab")
    assert loaded == record
    assert farm_names() == ["lab"]


def test_dead_process_is_not_alive_and_recycled_pid_is_not_ours() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    pid = ProcessId.of(child.pid)
    child.wait()
    assert pid is None or not pid.alive()
    me = ProcessId.me()
    assert me.alive()
    assert not ProcessId(me.pid, me.start_ticks + 1).alive()  # same pid, other process


def test_farm_with_dead_supervisor_is_stale_and_reclaimed() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    dead = ProcessId.of(child.pid) or ProcessId(child.pid, 0)
    child.wait()
    live = FarmRecord(name="live", spec={}, phase="running", supervisor=ProcessId.me())
    gone = FarmRecord(name="gone", spec={}, phase="running", supervisor=dead)
    starting = FarmRecord(name="new", spec={}, provisioner=ProcessId.me())
    for record in (live, gone, starting):
        record.directory.mkdir(parents=True)
        record.save()
    assert [r.name for r in stale_farms()] == ["gone"]
    reclaim(FarmRecord.load("gone"))  # no nodes, no live processes: just the state
    assert farm_names() == ["live", "new"]


@pytest.mark.parametrize("name", ["", "UPPER", "-dash", "a" * 17, "sp ace", "../up"])
def test_bad_farm_names(name: str) -> None:
    with pytest.raises(BadInput):
        check_farm_name(name)
