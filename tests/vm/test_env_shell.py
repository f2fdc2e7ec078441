"""A user's script: provision, ``eval "$(simfarm env)"``, then drive and tear down the farm in the same shell.

What `simfarm env` exports must not change how simfarm behaves there
(it once exported the farm's directory as SIMFARM_STATE_DIR, the root
simfarm looks for farms under, and every later command lost the farm).
"""

from __future__ import annotations

import shlex
import subprocess
import sys

import pytest
from kernel_helpers import video_nodes

from simfarm.state.records import farm_names

pytestmark = pytest.mark.hil

SIMFARM = f"{shlex.quote(sys.executable)} -m simfarm"


def test_status_faults_and_teardown_work_after_eval_env() -> None:
    before = video_nodes()
    script = f"""
        {SIMFARM} provision --cameras 2 --farm svc --size 320x240 --fps 15
        eval "$({SIMFARM} env --farm svc)"
        test -e "$SIMFARM_CAMERA_1_DEVICE" && test -d "$SIMFARM_FARM_DIR"
        {SIMFARM} status --farm svc
        {SIMFARM} fault 1 freeze --for 500ms --farm svc
        {SIMFARM} fault 1 unplug --farm svc
        test ! -e "$SIMFARM_CAMERA_1_DEVICE"
        {SIMFARM} fault 1 replug --farm svc
        {SIMFARM} status --farm svc --json
        {SIMFARM} teardown --farm svc
    """
    done = subprocess.run(["bash", "-euxo", "pipefail", "-c", script], capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert farm_names() == [] and video_nodes() == before
