"""Worker processes in the kernel: a farm's cameras spread over processes stream their own
codes, take faults where their producers run, and a killed worker is restarted, its cameras
numbering on where a reader expects them (loopback nodes, and uvc webcams, which their
workers plug in themselves)."""

from __future__ import annotations

import os
import select
import signal
import threading
from pathlib import Path

import pytest

from simfarm import Farm
from simfarm.devices.usb import vhci
from simfarm.devices.v4l2 import capture
from simfarm.faults import read_log
from simfarm.frames.code import FrameCode, decode
from simfarm.pytest_plugin.frames import read_codes
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


def test_a_killed_worker_is_restarted_and_a_reader_sees_its_codes_resume_with_a_gap() -> None:
    before = video_nodes()
    farm = Farm.provision(2, name="wkill", spec=SMALL, workers=2)
    pids = [farm.supervisor_pid, *worker_pids(farm)]
    codes: list[FrameCode | None] = []
    reading, failed = threading.Event(), []

    def read() -> None:  # one reader, streaming the node all along: the restart is invisible but for the gap
        try:
            for frame in capture.luma_frames(farm.camera(1).device, None, count=75, timeout=60):
                codes.append(decode(frame.luma))
                if len(codes) == 15:
                    reading.set()
        except Exception as exc:  # noqa: BLE001 - reported by the test
            failed.append(exc)
            reading.set()

    reader = threading.Thread(target=read)
    reader.start()
    assert reading.wait(120) and not failed, failed
    was = farm.status()["cameras"][1]
    os.kill(pids[2], signal.SIGKILL)
    reader.join()
    assert not failed, failed
    status = farm.status()
    worker = status["workers"][1]
    assert worker["restarts"] == 1 and worker["error"] is None and worker["pid"] != pids[2]
    assert [cam["state"] for cam in status["cameras"]] == ["streaming", "streaming"]
    assert status["workers"][0]["restarts"] == 0
    sequences = [code.sequence for code in codes if code is not None and code.camera == 1]
    assert len(sequences) >= 70, codes
    steps = [b - a for a, b in zip(sequences, sequences[1:])]
    # Numbered on, never back to 0; the restart is the largest gap, and counted as dropped.
    assert min(steps) >= 1 and max(steps) > 1, sequences
    assert status["cameras"][1]["dropped"] - was["dropped"] >= max(steps) - 1
    farm.teardown()
    assert video_nodes() == before and not farm.state_dir.exists()
    assert not alive([*pids, worker["pid"]])


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


def test_uvc_webcams_run_in_workers_and_a_killed_worker_replugs_them() -> None:
    before = video_nodes()
    farm = Farm.provision(2, name="wusb", spec=WEBCAM, backend="uvc", workers=2)  # verified each camera's codes
    status = farm.status()
    assert [worker["cameras"] for worker in status["workers"]] == [[0], [1]]
    assert [cam["state"] for cam in status["cameras"]] == ["idle", "idle"]  # plugged in, nobody streaming
    pids = [farm.supervisor_pid, *worker_pids(farm)]
    assert vhci.find("simfarm-wusb-0") and vhci.find("simfarm-wusb-1")
    first = [code for code in read_codes(farm.camera(1), 5) if code is not None]
    os.kill(pids[2], signal.SIGKILL)  # its end of vhci-hcd's socket closes: the kernel unplugs the webcam
    wait_until(lambda: farm.status()["workers"][1]["restarts"] == 1 and farm.status()["workers"][1]["error"] is None,
               what="the supervisor to restart the worker", timeout=120)
    # The new worker plugged the webcam in again: same serial, nodes uvcvideo numbered anew.
    assert vhci.find("simfarm-wusb-1") is not None and vhci.find("simfarm-wusb-0") is not None
    replugged = farm.reload()
    again = [code for code in read_codes(replugged.camera(1), 5) if code is not None]
    assert again and all(code.camera == 1 for code in first + again)
    assert again[0].sequence > first[-1].sequence  # numbered on from the last stream, not from 0
    status = farm.status()
    assert status["cameras"][0]["state"] == "idle"
    farm.teardown()
    assert video_nodes() == before and vhci.find("simfarm-wusb-1") is None
    assert not alive([*pids, status["workers"][1]["pid"]])
