"""Worker processes in the kernel: a farm's cameras spread over processes stream their own
codes, take faults where their producers run, and a killed worker is seen and reclaimed
(loopback nodes, and uvc webcams, which their workers plug in themselves)."""

from __future__ import annotations

import os
import select
import signal
from pathlib import Path

import pytest

from simfarm import Farm
from simfarm.devices.usb import vhci
from simfarm.faults import read_log
from simfarm.procfs import stat_fields
from simfarm.spec import CameraSpec
from simfarm.state.records import FarmRecord, ProcessId

from kernel_helpers import simfarm, video_nodes, wait_until

pytestmark = pytest.mark.hil

SMALL = CameraSpec.parse(size="320x240", fps=15)
WEBCAM = CameraSpec.parse(size="320x240", fps=15, profile=str(Path(__file__).parents[1] / "data" / "uvc-test.yaml"))


def worker_pids(farm: Farm) -> list[int]:
    return [worker["pid"] for worker in farm.status()["workers"]]


def wait_gone(pid: int, timeout: float = 120) -> None:
    """Until ``pid`` (not our child) has exited: its pidfd turns readable."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        assert select.select([fd], [], [], timeout)[0], f"process {pid} still runs after {timeout:g} s"
    finally:
        os.close(fd)


def alive(pids: list[int]) -> list[int]:
    """Those of ``pids`` still running (a zombie has ended: nobody may have reaped it yet)."""
    return [pid for pid in pids if stat_fields(pid) is not None]


def test_cameras_spread_over_workers_stream_their_codes_and_take_faults_there() -> None:
    with Farm.provision(4, name="wrk", spec=SMALL, workers=2) as farm:  # verified each camera's codes
        status = farm.status()
        assert [worker["cameras"] for worker in status["workers"]] == [[0, 2], [1, 3]]
        pids = worker_pids(farm)
        assert len(set(pids)) == 2 and farm.supervisor_pid not in pids
        record = FarmRecord.load("wrk")
        assert record is not None and set(pids) <= {proc.pid for proc in record.processes}
        assert [(cam["worker"], cam["state"]) for cam in status["cameras"]] == \
            [(0, "streaming"), (1, "streaming"), (0, "streaming"), (1, "streaming")]

        drop = farm.camera(1).inject("drop", frames=5)  # acts in worker 1's producer
        wait_until(lambda: any(line["event"] == "end" and line["fault"] == drop.id
                               for line in read_log(farm.fault_log)), what="the drop to end")
        end = next(line for line in read_log(farm.fault_log) if line["event"] == "end" and line["fault"] == drop.id)
        assert end["reason"] == "frames" and end["frames"] == 5

        old = farm.camera(3).device
        with farm.camera(3).inject("unplug"):  # worker 1 removes the node and records it
            assert not os.path.exists(old)
            assert farm.status()["cameras"][3]["state"] == "unplugged"
        replugged = farm.reload()  # the record names the node worker 1 made again
        assert replugged.camera(3).device and farm.status()["cameras"][3]["state"] == "streaming"
        replugged.verify_frames()


def test_a_killed_worker_is_an_error_in_status_and_teardown_leaves_nothing() -> None:
    before = video_nodes()
    farm = Farm.provision(2, name="wkill", spec=SMALL, workers=2)
    pids = [farm.supervisor_pid, *worker_pids(farm)]
    os.kill(pids[2], signal.SIGKILL)
    wait_gone(pids[2])
    wait_until(lambda: "killed by signal 9" in (farm.status()["cameras"][1]["error"] or ""),
               what="the supervisor to see its worker die")
    status = farm.status()
    assert status["cameras"][1]["state"] == "error" and status["cameras"][0]["state"] == "streaming"
    assert status["workers"][1]["error"] == f"worker 1 (pid {pids[2]}) died: killed by signal 9"
    farm.teardown()
    assert video_nodes() == before and not farm.state_dir.exists() and not alive(pids)


def test_a_killed_supervisor_with_workers_is_reclaimed_by_the_next_command() -> None:
    before = video_nodes()
    farm = Farm.provision(2, name="wsup", spec=SMALL, workers=2)
    pids = [farm.supervisor_pid, *worker_pids(farm)]
    record = FarmRecord.load("wsup")
    assert record is not None and all(ProcessId.of(pid) in record.processes for pid in pids[1:])
    os.kill(farm.supervisor_pid, signal.SIGKILL)
    wait_gone(farm.supervisor_pid)
    assert simfarm("status").returncode == 0  # reclaims the farm: workers killed, nodes removed
    assert video_nodes() == before and not farm.state_dir.exists() and not alive(pids)


def test_uvc_webcams_run_in_workers_and_a_killed_worker_pulls_its_cable() -> None:
    before = video_nodes()
    farm = Farm.provision(2, name="wusb", spec=WEBCAM, backend="uvc", workers=2)  # verified each camera's codes
    status = farm.status()
    assert [worker["cameras"] for worker in status["workers"]] == [[0], [1]]
    assert [cam["state"] for cam in status["cameras"]] == ["idle", "idle"]  # plugged in, nobody streaming
    pids = [farm.supervisor_pid, *worker_pids(farm)]
    assert vhci.find("simfarm-wusb-0") and vhci.find("simfarm-wusb-1")
    os.kill(pids[2], signal.SIGKILL)  # its end of vhci-hcd's socket closes: the kernel unplugs the webcam
    wait_until(lambda: vhci.find("simfarm-wusb-1") is None, what="camera 1's webcam to leave the bus")
    wait_until(lambda: "killed by signal 9" in (farm.status()["cameras"][1]["error"] or ""),
               what="the supervisor to see its worker die")
    assert vhci.find("simfarm-wusb-0") is not None and farm.status()["cameras"][0]["state"] == "idle"
    farm.teardown()
    assert video_nodes() == before and vhci.find("simfarm-wusb-0") is None and not alive(pids)
