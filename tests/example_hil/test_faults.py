"""Faults: the service notices a camera whose picture froze.

The fault is left in force on purpose: the plugin clears a lent camera's
faults when the test ends and checks it streams again before lending it out.
"""

from __future__ import annotations

import pytest

from simfarm import Camera

from .codes import grabbed_codes

pytestmark = pytest.mark.hil


def test_service_sees_a_frozen_picture_repeat_one_code(simfarm_camera: Camera) -> None:
    simfarm_camera.inject("freeze")
    # The node's 4-buffer ring may still hold frames from before the freeze.
    codes = grabbed_codes(simfarm_camera, 10)[-4:]
    assert None not in codes and len({code.sequence for code in codes}) == 1, codes
