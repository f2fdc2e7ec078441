"""Scenario files: loading, seeded schedules, and errors that name the file and line."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from simfarm.errors import BadInput
from simfarm.faults import FaultSpec, Scenario

EXAMPLES = sorted((Path(__file__).parents[2] / "scripts" / "scenarios").glob("*.yaml"))
CAMERAS = [0, 1, 2, 3]


def _scenario(tmp_path: Path, text: str) -> Scenario:
    path = tmp_path / "scenario.yaml"
    path.write_text(text)
    return Scenario.load(path)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_the_example_scenarios_load_and_schedule(path):
    events = Scenario.load(path).schedule(CAMERAS)
    assert events and [e.time_s for e in events] == sorted(e.time_s for e in events)
    assert len({(e.camera, e.fault_id) for e in events}) == len(events)


def test_examples_exist():
    assert {p.name for p in EXAMPLES} >= {"smoke.yaml", "chaos.yaml", "hotplug.yaml", "network.yaml"}


def test_occurrences_follow_at_every_and_repeat(tmp_path):
    scenario = _scenario(tmp_path, """\
timeline:
  - {at: 1s, every: 500ms, repeat: 3, camera: [1, 2], for: 200ms, fault: drop}
  - {camera: 0, fault: noise 0.3}
""")
    events = scenario.schedule(CAMERAS)
    assert [(e.time_s, e.camera, e.fault_id) for e in events] == [
        (0.0, 0, "e1.0.c0"),
        (1.0, 1, "e0.0.c1"), (1.0, 2, "e0.0.c2"),
        (1.5, 1, "e0.1.c1"), (1.5, 2, "e0.1.c2"),
        (2.0, 1, "e0.2.c1"), (2.0, 2, "e0.2.c2")]
    assert events[1].spec == FaultSpec.parse("drop", duration=0.2)
    assert events[0].spec == FaultSpec.parse("noise 0.3")


def test_every_without_repeat_runs_until_the_duration(tmp_path):
    scenario = _scenario(tmp_path, """\
duration: 10s
timeline:
  - {at: 2s, every: 3s, camera: 0, fault: stall}
  - {at: 12s, camera: 0, fault: stall}
""")
    assert [e.time_s for e in scenario.schedule(CAMERAS)] == [2.0, 5.0, 8.0]


_RANDOM = """\
seed: 5
timeline:
  - at: 0
    every: 1s
    repeat: 200
    camera: random
    choice:
      - {fault: drop, weight: 3}
      - {fault: black, weight: 1, for: 2s}
"""


def test_the_same_seed_gives_the_same_schedule_and_another_seed_another(tmp_path):
    scenario = _scenario(tmp_path, _RANDOM)
    first = scenario.schedule(CAMERAS)
    assert first == _scenario(tmp_path, _RANDOM).schedule(CAMERAS) == scenario.schedule(CAMERAS, seed=5)
    assert first != scenario.schedule(CAMERAS, seed=6)
    kinds = Counter(e.spec.kind for e in first)
    assert 120 <= kinds["drop"] <= 180 and kinds["drop"] + kinds["black"] == 200
    assert {e.spec.duration_s for e in first if e.spec.kind == "black"} == {2.0}
    assert set(Counter(e.camera for e in first)) == set(CAMERAS)


def test_appending_an_entry_leaves_the_draws_of_the_others_alone(tmp_path):
    before = _scenario(tmp_path, _RANDOM).schedule(CAMERAS)
    after = _scenario(tmp_path, _RANDOM + "  - {at: 0, camera: random, fault: stall}\n").schedule(CAMERAS)
    assert [e for e in after if e.fault_id.startswith("e0.")] == before


@pytest.mark.parametrize(("text", "line", "message"), [
    ("- at: 1s\n", 1, "a scenario is a mapping with a 'timeline' list"),
    ("seed: 1\ntimelines: []\n", 2, "unknown scenario key 'timelines'"),
    ("seed: -1\ntimeline: []\n", 1, "seed -1 is not a non-negative integer"),
    ("seed: 1\n", 1, "timeline must be a non-empty list"),
    ("timeline: []\n", 1, "timeline must be a non-empty list"),
    ("duration: soon\ntimeline: []\n", 1, "duration 'soon' is not a duration"),
    ("timeline:\n  - drop\n", 1, "timeline entry 1 is not a mapping"),
    ("timeline:\n  - camera: 0\n    fault: drop\n    when: 2s\n", 4, "unknown timeline entry key 'when'"),
    ("timeline:\n  - camera: 0\n    at: -2s\n    fault: drop\n", 3, "at '-2s' is not a duration"),
    ("timeline:\n  - camera: 0\n    fault: dorp frames=3\n", 3, "unknown fault 'dorp'"),
    ("timeline:\n  - camera: 0\n\n    fault: drop frames=0\n", 4, "drop: frames: 0 is outside"),
    ("timeline:\n  - camera: 0\n    fault: {kind: noise, amount: 3}\n", 3, "noise: amount: 3 is outside"),
    ("timeline:\n  - camera: 0\n    fault: [drop]\n", 3, "fault ['drop'] is neither text"),
    ("timeline:\n  - camera: 0\n    for: forever\n    fault: stall\n", 3, "for 'forever' is not a duration"),
    ("timeline:\n  - camera: 0\n    for: 1s\n    fault: replug\n", 4, "replug is instantaneous"),
    ("timeline:\n  - camera: 0\n", 2, "a timeline entry needs exactly one of fault and choice"),
    ("timeline:\n  - camera: 0\n    fault: drop\n    choice: []\n", 2,
     "a timeline entry needs exactly one of fault and choice"),
    ("timeline:\n  - fault: drop\n", 2, "a timeline entry needs a camera"),
    ("timeline:\n  - camera: first\n    fault: drop\n", 2, "camera 'first' is not an index"),
    ("timeline:\n  - camera: [0, -1]\n    fault: drop\n", 2, "camera [0, -1] is not an index"),
    ("timeline:\n  - camera: 0\n    repeat: 3\n    fault: drop\n", 3, "repeat needs every"),
    ("timeline:\n  - camera: 0\n    repeat: 0\n    fault: drop\n", 3, "repeat 0 is not a positive integer"),
    ("timeline:\n  - camera: 0\n    every: 1s\n    fault: drop\n", 3, "every without repeat needs the scenario's duration"),
    ("timeline:\n  - camera: 0\n    choice: drop\n", 3, "choice must be a non-empty list"),
    ("timeline:\n  - camera: 0\n    choice:\n      - {fault: drop, weight: 0}\n", 4, "weight 0 is not a positive"),
    ("timeline:\n  - camera: 0\n    choice:\n      - {weight: 1}\n", 4, "a choice needs a fault"),
    ("timeline:\n  - camera: 0\n    choice:\n      - {fault: drop, odds: 1}\n", 4, "unknown choice key 'odds'"),
    ("timeline:\n  - camera: 0\n    choice:\n      - fault: drop\n        for: never\n", 5,
     "for 'never' is not a duration"),
    ("timeline:\n  - {camera: 0, fault: drop}\n  - {camera: 0, fault: drop, camera: 1}\n", 3,
     "duplicate key 'camera'"),
    ("timeline:\n  - camera: 0\n    fault: drop: 3\n", 3, "mapping values are not allowed"),
])
def test_malformed_scenarios_name_the_file_and_line(tmp_path, text, line, message):
    path = tmp_path / "scenario.yaml"
    path.write_text(text)
    with pytest.raises(BadInput) as caught:
        Scenario.load(path)
    assert str(caught.value).startswith(f"{path}:{line}: {message}")


def test_a_camera_outside_the_farm_is_named_at_its_line(tmp_path):
    scenario = _scenario(tmp_path, "timeline:\n  - {at: 1s, camera: 0, fault: drop}\n  - camera: [1, 3]\n"
                                   "    fault: drop\n")
    assert len(scenario.schedule(CAMERAS)) == 3
    with pytest.raises(BadInput, match=r"scenario\.yaml:3: camera 3 is not in the farm \(cameras: 0, 1\)"):
        scenario.schedule(CAMERAS[:2])


def test_runaway_repetition_is_refused(tmp_path):
    scenario = _scenario(tmp_path, "duration: 10h\ntimeline:\n  - {every: 1ms, camera: 0, fault: drop}\n")
    with pytest.raises(BadInput, match=r"scenario\.yaml:3: more than 100000 occurrences"):
        scenario.schedule(CAMERAS)


def test_schedule_rejects_a_negative_seed_and_an_empty_farm(tmp_path):
    scenario = _scenario(tmp_path, "timeline:\n  - {camera: all, fault: drop}\n")
    with pytest.raises(BadInput, match="seed -3"):
        scenario.schedule(CAMERAS, seed=-3)
    with pytest.raises(BadInput, match="no cameras"):
        scenario.schedule([])


def test_a_refused_step_is_logged_in_both_logs_and_frees_the_run(tmp_path):
    from simfarm.farm.scenario_run import Router
    from simfarm.faults import FaultLog, ScheduledFault, read_log

    router = Router(FaultLog.open(tmp_path / "farm.jsonl"))
    step = ScheduledFault(75.0, 1, "e4.0.c1", FaultSpec.build("replug", {}, None))
    run_log = FaultLog.open(tmp_path / "run.jsonl")
    router.route([(step.camera, step.fault_id)], run_log)
    router.step_refused(step, "camera 1 is plugged in: unplug it first")
    router.farm_log.close()
    assert read_log(tmp_path / "run.jsonl")[-1]["event"] == "done"  # the run's last step: its log is complete
    for name in ("farm.jsonl", "run.jsonl"):
        line = read_log(tmp_path / name)[0]
        assert line["event"] == "refused" and line["fault"] == "e4.0.c1" and line["kind"] == "replug"
        assert line["camera"] == 1 and "plugged in" in line["error"]
    assert run_log.closed
    router.route([(step.camera, step.fault_id)], FaultLog.open(tmp_path / "again.jsonl"))  # free to run again
