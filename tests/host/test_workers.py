"""Worker processes, the parts that need no kernel: how many, where they are refused, a farm
record that several processes change at once, and a worker killed and restarted (FIFO nodes)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from fifo_farm import worker_farm
from test_fault_cli import wait_until

from simfarm import Farm
from simfarm.cli import main as simfarm
from simfarm.errors import BadInput
from simfarm.farm import config, control, restarts, worker_count
from simfarm.farm.publish_plan import PublishOptions
from simfarm.faults import read_log
from simfarm.state.records import FarmRecord, NodeRecord, ProcessId, amend_record, farm_names


@pytest.mark.parametrize("requested, cameras, expected", [
    (None, 1, 0),  # one camera: the supervisor writes it, no process to spare
    (None, 3, 3),
    (None, 16, 4),  # one per core
    (2, 16, 2),
    (8, 3, 3),  # never more than the cameras
    (0, 16, 0),
])
def test_worker_count(monkeypatch: pytest.MonkeyPatch, requested: int | None, cameras: int, expected: int) -> None:
    monkeypatch.setattr(worker_count.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert worker_count.worker_count(requested, cameras) == expected


def test_workers_are_refused_where_cameras_run_in_the_supervisor() -> None:
    assert worker_count.worker_count(None, 8, in_supervisor="the vivid backend") == 0
    with pytest.raises(BadInput, match="the vivid backend runs its cameras in the supervisor"):
        worker_count.worker_count(2, 8, in_supervisor="the vivid backend")
    with pytest.raises(BadInput, match="workers must be 0 or more"):
        worker_count.worker_count(-1, 8)


@pytest.mark.parametrize("kwargs, words", [
    ({"backend": "vivid"}, "the vivid backend runs its cameras in the supervisor"),
    ({"publish": PublishOptions()}, "publishing runs its cameras in the supervisor"),
])
def test_provision_refuses_workers_before_making_anything(kwargs: dict, words: str) -> None:
    with pytest.raises(BadInput, match=words):
        Farm.provision(2, name="wk", workers=2, **kwargs)
    assert farm_names() == []


def test_farm_file_workers(tmp_path: Path) -> None:
    path = tmp_path / "farm.yaml"
    path.write_text("cameras: 4\nworkers: 2\n")
    assert config.load(str(path)).workers == 2


def test_amending_the_record_keeps_what_other_processes_wrote() -> None:
    record = FarmRecord(name="lab", spec={},
                        nodes=[NodeRecord(0, "simfarm-lab-0", 3), NodeRecord(1, "simfarm-lab-1", 4)])
    record.directory.mkdir(parents=True)
    record.save()
    # A worker replugs camera 1 while the supervisor marks the farm running: neither undoes the other.
    amend_record("lab", lambda disk: setattr(disk.nodes[1], "number", 9))
    amend_record("lab", lambda disk: setattr(disk, "phase", "running"))
    loaded = FarmRecord.load("lab")
    assert loaded is not None and loaded.phase == "running" and [n.number for n in loaded.nodes] == [3, 9]


def _status(name: str) -> dict:
    record = FarmRecord.load(name)
    assert record is not None
    return control.request(record.directory / control.SOCKET, {"op": "status"})


def _gone(pids: list[int]) -> bool:
    return not [pid for pid in pids if (found := ProcessId.of(pid)) is not None and found.alive()]


def test_a_killed_worker_is_restarted_and_its_cameras_number_on_across_the_gap(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with worker_farm("heal", tmp_path) as (proc, log, readers):
        before = _status("heal")
        (dead,) = [w for w in before["workers"] if w["cameras"] == [1]]
        first = readers[1].wait_frames(0, 3)
        os.kill(dead["pid"], signal.SIGKILL)
        log.wait_for("worker 1 restarted")
        resumed = readers[1].wait_frames(1, 3)
        after = _status("heal")
        old = readers[1].sessions[0]  # complete: its writer has died
        workers = {w["worker"]: w for w in after["workers"]}
        cameras = {c["camera"]: c for c in after["cameras"]}
        sessions = len(readers[0].sessions)
        capsys.readouterr()
        assert simfarm(["status", "--farm", "heal"]) == 0
        shown = capsys.readouterr().out

    rows = [line.split() for line in shown.splitlines()]
    assert ["worker", "pid", "cameras", "restarts"] in rows and ["1", str(workers[1]["pid"]), "1", "1"] in rows

    assert workers[1]["restarts"] == 1 and workers[1]["pid"] != dead["pid"] and workers[1]["error"] is None
    assert workers[0]["restarts"] == 0 and cameras[1]["state"] == "streaming"
    assert all(code is not None and code.camera == 1 for code in old + resumed)
    # Numbered on, not from 0: the frames its slots would have made while it was down are missing...
    last, next_ = old[-1].sequence, resumed[0].sequence
    gap = next_ - last - 1
    assert gap >= 1 and [c.sequence for c in resumed] == list(range(next_, next_ + len(resumed)))
    assert [c.sequence for c in old] == list(range(first[0].sequence, last + 1))
    # ...and counted as dropped, the counters carried on. (Slots a loaded machine makes a writer skip
    # count as dropped too, with no number taken: the count may exceed the gap, never fall short of it.)
    was = next(c for c in before["cameras"] if c["camera"] == 1)
    assert cameras[1]["dropped"] - was["dropped"] >= gap
    assert cameras[1]["written"] >= was["written"] + len(resumed)
    # The other worker's camera streamed on in one session.
    assert sessions == 1
    assert _gone([dead["pid"], *(w["pid"] for w in after["workers"])])
    assert proc.returncode == 0


def test_a_worker_that_keeps_dying_is_given_up_with_its_cameras_in_error(tmp_path: Path) -> None:
    with worker_farm("doom", tmp_path) as (proc, log, readers):
        (dead,) = [w for w in _status("doom")["workers"] if w["cameras"] == [1]]
        readers[1].wait_frames(0, 1)
        (tmp_path / "broken").touch()  # every restart's start fails: the worker dies again at once
        os.kill(dead["pid"], signal.SIGKILL)
        given_up = f"worker 1 crashed {restarts.LIMIT} times in {restarts.WINDOW_S:g} s: given up"
        log.wait_for(given_up)
        status = _status("doom")
        restarted = log.wait_for("worker 1 (pid", restarts.LIMIT)
    workers = {w["worker"]: w for w in status["workers"]}
    cameras = {c["camera"]: c for c in status["cameras"]}
    assert workers[1]["error"] == given_up and workers[1]["restarts"] == restarts.LIMIT - 1
    assert cameras[1]["state"] == "error" and given_up in cameras[1]["error"]
    assert cameras[0]["state"] == "streaming" and workers[0]["restarts"] == 0
    assert len([line for line in restarted if "restarting" in line]) == restarts.LIMIT - 1
    assert _gone([workers[0]["pid"], dead["pid"]]) and proc.returncode == 0


def test_crashes_back_off_doubling_and_are_given_up_within_the_window() -> None:
    history = restarts.CrashHistory(limit=5, window_s=60.0)
    assert [history.crashed(t) for t in (0.0, 1.0, 2.0, 3.0)] == [0.1, 0.2, 0.4, 0.8]
    assert history.crashed(4.0) is None
    history = restarts.CrashHistory(limit=5, window_s=60.0)
    assert [history.crashed(t) for t in (0.0, 30.0, 61.0, 62.0)] == [0.1, 0.2, 0.2, 0.4]  # the first has aged out
    assert restarts.CrashHistory(limit=12).crashed(0.0) == 0.1
    many = restarts.CrashHistory(limit=12)
    assert [many.crashed(float(t)) for t in range(8)][-1] == restarts.MAX_DELAY_S


def test_a_scenario_run_ends_when_a_worker_with_a_part_of_it_dies(tmp_path: Path) -> None:
    scenario, log = tmp_path / "run.yaml", tmp_path / "run.jsonl"
    scenario.write_text("timeline:\n  - {camera: 0, fault: drop frames=2}\n  - {camera: 1, fault: freeze, for: 1h}\n")
    with worker_farm("part", tmp_path) as (_, supervisor_log, readers):
        readers[1].wait_frames(0, 1)
        (dead,) = [w for w in _status("part")["workers"] if w["cameras"] == [1]]
        record = FarmRecord.load("part")
        assert record is not None
        reply = control.request(record.directory / control.SOCKET,
                                {"op": "scenario", "path": str(scenario), "log": str(log)})
        assert reply["events"] == 2
        os.kill(dead["pid"], signal.SIGKILL)  # its part (the hour's freeze) ends with it
        supervisor_log.wait_for("worker 1 restarted")
        wait_until(lambda: read_log(log) and read_log(log)[-1]["event"] == "done", "the run log's done line")
