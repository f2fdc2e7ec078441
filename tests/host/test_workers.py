"""Worker processes, the parts that need no kernel: how many, where they are refused, and a
farm record that several processes change at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from simfarm import Farm
from simfarm.errors import BadInput
from simfarm.farm import config, worker_count
from simfarm.farm.publish_plan import PublishOptions
from simfarm.state.records import FarmRecord, NodeRecord, amend_record, farm_names


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
