"""Issue 12: the kernel's own conformance suite agrees that uvc cameras are real cameras.

`v4l2-compliance -d NODE -s` (scripts/compliance.py) on one camera of each
backend: a uvc webcam fails no more of its tests than a vivid camera, the
kernel's reference test driver. The figures are printed for the README.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.hil

SCRIPT = Path(__file__).parents[2] / "scripts" / "compliance.py"


def test_a_uvc_webcam_fails_no_more_compliance_tests_than_vivid(capsys: pytest.CaptureFixture[str]) -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--json"], capture_output=True, text=True, timeout=3600,
                          check=False)
    assert done.returncode == 0, done.stderr
    scores = json.loads(done.stdout)
    with capsys.disabled():
        for backend, score in scores.items():
            print(f"\nv4l2-compliance {backend}: {score['succeeded']}/{score['total']} passed; "
                  f"failed: {', '.join(score['failures']) or '-'}")
    assert all(score["succeeded"] + score["failed"] == score["total"] > 0 for score in scores.values())
    assert scores["uvc"]["failed"] <= scores["vivid"]["failed"], scores
