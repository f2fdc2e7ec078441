"""`simfarm env` in a user's shell, `status --json`'s by-id links, and commands piped into a reader that quits.

The farm is real but for its nodes (pipe_farm.py: a supervisor process whose
cameras write into pipes), and every command runs as a user runs it: a fresh
``python3 -m simfarm`` in bash, after ``eval "$(simfarm env)"``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from pipe_farm import ROOT, farm_process

from simfarm.cli import EXIT_BROKEN_PIPE

FARM = "envtrip"
SIMFARM = f"{shlex.quote(sys.executable)} -m simfarm"
SCENARIO = ROOT / "tests" / "data" / "repeat.yaml"


def bash(script: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300, check=False)


def test_after_eval_env_every_farm_command_still_finds_the_farm(tmp_path: Path) -> None:
    # Each command that takes --farm, as a fault script runs them one after another in one shell.
    script = f"""
        eval "$({SIMFARM} env --farm {FARM})"
        {SIMFARM} status --farm "$SIMFARM_FARM" --json > status.json
        {SIMFARM} env --farm "$SIMFARM_FARM" > again.env
        {SIMFARM} fault 0 freeze --for 1m --farm "$SIMFARM_FARM"
        {SIMFARM} fault list --farm "$SIMFARM_FARM" --json > faults.json
        {SIMFARM} fault clear --all --farm "$SIMFARM_FARM"
        {SIMFARM} scenario run {SCENARIO} --farm "$SIMFARM_FARM"
        {SIMFARM} recordings --farm "$SIMFARM_FARM" || test $? = 2  # not a --record farm: it says so
        {SIMFARM} teardown --farm "$SIMFARM_FARM"
        test ! -e "$SIMFARM_FARM_DIR"
    """
    with farm_process(FARM) as supervisor:
        done = bash(script, tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        assert supervisor.wait(timeout=30) == 0  # teardown ended it
    status = json.loads((tmp_path / "status.json").read_text())
    assert [farm["farm"] for farm in status["farms"]] == [FARM]
    assert [fault["kind"] for fault in json.loads((tmp_path / "faults.json").read_text())] == ["freeze"]


def read_only_variables() -> set[str]:
    """The variables that change what simfarm does, as docs/cli.md lists them."""
    text = (ROOT / "docs" / "cli.md").read_text().partition("## Environment variables")[2]
    return set(re.findall(r"^\| `(SIMFARM_[A-Z_]+)", text, re.MULTILINE))


def test_env_exports_none_of_the_variables_simfarm_reads(tmp_path: Path) -> None:
    with farm_process(FARM):
        done = bash(f"{SIMFARM} env --farm {FARM}", tmp_path)
    exported = set(re.findall(r"^export (\w+)=", done.stdout, re.MULTILINE))
    assert {"SIMFARM_FARM", "SIMFARM_FARM_DIR", "SIMFARM_CAMERA_0_BY_ID"} <= exported, done.stdout + done.stderr
    assert "SIMFARM_STATE_DIR" in read_only_variables()
    assert exported & read_only_variables() == set()


def test_status_json_gives_each_camera_the_by_id_link_env_exports(tmp_path: Path) -> None:
    with farm_process(FARM):
        env = bash(f"{SIMFARM} env --farm {FARM}", tmp_path).stdout
        status = json.loads(bash(f"{SIMFARM} status --farm {FARM} --json", tmp_path).stdout)
    cameras = status["farms"][0]["cameras"]
    assert [cam["by_id"] for cam in cameras] == [f"/dev/v4l/by-id/{cam['label']}-video-index0" for cam in cameras]
    for cam in cameras:
        assert f"export SIMFARM_CAMERA_{cam['camera']}_BY_ID={cam['by_id']}\n" in env


def run_into_closed_pipe(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """``simfarm ARGV`` with its stdout a pipe whose reader has already gone, as behind `head -1`."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run([sys.executable, "-m", "simfarm", *argv], stdout=write_end, stderr=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300, check=False)
    finally:
        os.close(write_end)


def test_verify_status_and_env_end_quietly_when_the_reader_quits(coded_clip) -> None:
    with farm_process(FARM):
        runs = [run_into_closed_pipe(argv) for argv in (["verify", str(coded_clip.path), "--json"],
                                                        ["status", "--json"], ["status"], ["env", "--farm", FARM])]
    for done in runs:
        assert (done.returncode, done.stderr) == (EXIT_BROKEN_PIPE, ""), done.args


@pytest.mark.parametrize("reader", ["head -1", "head -c1"])
def test_a_pipe_into_head_reports_the_shells_status_and_no_traceback(reader: str, coded_clip, tmp_path: Path) -> None:
    done = bash(f"set +e; {SIMFARM} verify {coded_clip.path} --json | {reader}; echo \"status ${{PIPESTATUS[0]}}\"",
                tmp_path)
    # Whether simfarm wrote before head quit is a race: either it finished, or it ended as the shell expects.
    assert re.search(rf"status (0|{EXIT_BROKEN_PIPE})$", done.stdout.strip()), done.stdout
    assert done.stderr == ""
