"""A labgrid test of a DUT with a farm webcam: the place's NetworkSimfarmWebcam, attached on the
target by SimfarmWebcamDriver; frames carry camera 1's codes; an unplug fault injected through the
driver removes the node on the target, and after the replug it attaches again."""

from __future__ import annotations

import json
import time

import pytest

pytestmark = [pytest.mark.hil]

SLOW = 300  # seconds: uvcvideo's probing under TCG


def camera_ids(command, node: str) -> list[int]:
    """The camera ids the frames read from ``node`` on the target decode to (simfarm verify there)."""
    out = command.run_check(f"simfarm verify {node} --frames 4 --json", timeout=SLOW)
    return json.loads("\n".join(out))["cameras"]


def test_webcam_delivers_its_codes_through_an_unplug_and_replug(target) -> None:
    command = target.get_driver("CommandProtocol")
    webcam = target.get_driver("SimfarmWebcamDriver")
    node = webcam.node
    assert node and webcam.by_id, (node, webcam.by_id)
    assert camera_ids(command, node) == [1]

    webcam.fault("unplug")
    deadline = time.monotonic() + SLOW
    while command.run(f"test -e {node}")[2] == 0:
        assert time.monotonic() < deadline, f"{node} still exists after the unplug"
        time.sleep(1)

    webcam.fault("replug")
    again = webcam.attach()
    assert camera_ids(command, again) == [1]
