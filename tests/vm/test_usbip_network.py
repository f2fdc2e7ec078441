"""Issue 21 in the kernel, over 127.0.0.1 in one VM: a uvc farm's webcams imported over USB/IP.

The farm (--usbip-listen 127.0.0.1:0) plugs nothing into vhci-hcd itself: it
offers two webcams; the stock `usbip` tool lists both and attaches one,
`simfarm attach` the other, and each node delivers its own camera's codes.
An unplug fault on the farm removes the importer's node, `simfarm attach
--watch` gets it back after the replug, and detach and teardown leave no
vhci-hcd port, listener or process behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from simfarm import Farm
from simfarm.devices.kmod import kmodule
from simfarm.devices.udev import uevents
from simfarm.devices.usb import vhci
from simfarm.devices.v4l2 import nodes
from simfarm.spec import CameraSpec, PixelFormat

from kernel_helpers import simfarm, wait_until
from test_uvc_farm import assert_codes_of, read_ffmpeg

pytestmark = [pytest.mark.hil]

PROFILE = str(Path(__file__).parents[1] / "data" / "uvc-test.yaml")
SPEC = CameraSpec.parse(size="320x240", fps=15, profile=PROFILE)
LABELS = ("simfarm-net-0", "simfarm-net-1")
SLOW = 300  # seconds: enumeration and uvcvideo's probing under TCG


@pytest.fixture
def farm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Farm]:
    monkeypatch.setenv("SIMFARM_STATE_DIR", str(tmp_path))
    with Farm.provision(2, name="net", spec=SPEC, backend="uvc", usbip_listen="127.0.0.1:0") as made:
        yield made


def cli(*args: str) -> subprocess.CompletedProcess:
    """The CLI, allowed the time an attach takes under emulation."""
    return subprocess.run([sys.executable, "-m", "simfarm", *args], capture_output=True, text=True, timeout=SLOW,
                          check=False)


def usbip(port: int, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["usbip", "--tcp-port", str(port), *args], capture_output=True, text=True, timeout=SLOW,
                          check=False)


def stock_node(label: str, watch: uevents.Watch) -> str:
    """The capture node of the webcam with serial ``label`` attached here, once uvcvideo made it."""
    return watch.until(lambda: (found := vhci.find(label)) and nodes.usb_capture_node(found.busid),
                       f"a node for {label}", SLOW)


def next_json(process: subprocess.Popen) -> dict:
    """The next JSON line ``process`` prints (simfarm attach --json: one per attachment)."""
    assert process.stdout is not None
    assert select.select([process.stdout], [], [], SLOW)[0], "simfarm attach --watch printed nothing"
    line = process.stdout.readline()
    assert line, process.stderr.read() if process.stderr else "simfarm attach --watch ended"
    return json.loads(line)


@contextlib.contextmanager
def watching(server: str, label: str) -> Iterator[subprocess.Popen]:
    """`simfarm attach SERVER --camera LABEL --watch --json`, which must detach and exit 0 on SIGTERM
    at the end of the block (killed if the block failed)."""
    watcher = subprocess.Popen([sys.executable, "-m", "simfarm", "attach", server, "--camera", label, "--watch",
                                "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield watcher
        watcher.send_signal(signal.SIGTERM)
        assert watcher.wait(timeout=SLOW) == 0, watcher.stderr.read() if watcher.stderr else ""
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait()


def unplugged_and_back(watcher: subprocess.Popen, fault: Callable[[str], None]) -> dict:
    """What ``watcher`` (simfarm attach --watch --json) printed after ``fault("unplug")`` on the farm
    removed its node and ``fault("replug")`` brought the webcam back."""
    first = next_json(watcher)
    removed = uevents.Watch("video4linux")
    fault("unplug")
    removed.until(lambda: None if os.path.exists(first["node"]) else True, "the importer's node to go", SLOW)
    fault("replug")
    return next_json(watcher)


def export_state(farm: Farm, camera: int) -> str:
    return farm.status()["cameras"][camera]["usbip"]["state"]


def test_two_webcams_imported_by_usbip_and_simfarm_attach_deliver_codes_through_unplug_and_replug(
        farm: Farm) -> None:
    status = farm.status()
    listen = status["usbip"]["listen"]
    port = int(listen.rsplit(":", 1)[1])
    assert [c["usbip"]["state"] for c in status["cameras"]] == ["offered", "offered"]
    assert not any(vhci.find(label) for label in LABELS), "an exported webcam is plugged in on the farm's side"
    busids = [c["usbip"]["busid"] for c in status["cameras"]]

    listed = usbip(port, "list", "-r", "127.0.0.1")
    assert listed.returncode == 0 and all(b in listed.stdout for b in busids), listed.stdout + listed.stderr

    # Camera 0 through the stock tool, which needs vhci-hcd loaded (the exporting farm loaded nothing).
    for module in kmodule.WEBCAM_MODULES:
        kmodule.ensure(module)
    watch = uevents.Watch("usb", "video4linux")
    attached = usbip(port, "attach", "-r", "127.0.0.1", "-b", busids[0])
    assert attached.returncode == 0, attached.stderr
    node0 = stock_node(LABELS[0], watch)
    stock = vhci.find(LABELS[0])
    assert stock is not None
    assert export_state(farm, 0) == "imported" and farm.status()["cameras"][0]["usbip"]["peer"].startswith("127.0.0.1:")

    # Camera 1 through simfarm attach, by label; simfarm detach leaves the stock tool's port alone.
    made = cli("attach", listen, "--camera", LABELS[1], "--json")
    assert made.returncode == 0, made.stderr
    one = json.loads(made.stdout)
    assert one["busid"] == busids[1] and one["label"] == LABELS[1] and one["by_id"], one
    assert_codes_of(read_ffmpeg(node0, PixelFormat.YUYV, SPEC.size), 0)
    assert_codes_of(read_ffmpeg(one["node"], PixelFormat.YUYV, SPEC.size), 1)
    assert farm.status()["cameras"][1]["usbip"]["frames"] > 0
    refused = cli("detach", "--busid", busids[0])
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and os.path.exists(node0), refused.stderr
    gone = cli("detach", "--busid", busids[1])
    assert gone.returncode == 0 and not os.path.exists(one["node"]), gone.stderr
    wait_until(lambda: export_state(farm, 1) == "offered", "the detached export offered again", SLOW)

    # --watch through an unplug and a replug on the farm.
    def fault(kind: str) -> None:
        # Before the replug, with the importer's node gone: the unplugged webcam is withdrawn.
        assert kind == "unplug" or export_state(farm, 1) == "withdrawn"
        done = simfarm("fault", "1", kind, "--farm", "net")
        assert done.returncode == 0, done.stderr

    with watching(listen, LABELS[1]) as watcher:
        again = unplugged_and_back(watcher, fault)
        assert_codes_of(read_ffmpeg(again["node"], PixelFormat.YUYV, SPEC.size), 1)
    assert not os.path.exists(again["node"]) and vhci.find(LABELS[1]) is None

    # The stock tool's detach; then teardown leaves no port, listener or process.
    gone_watch = uevents.Watch("video4linux")
    assert usbip(port, "detach", "-p", str(stock.port)).returncode == 0
    vhci.wait_nodes_gone(stock.busid, gone_watch)
    wait_until(lambda: export_state(farm, 0) == "offered", "the stock tool's import to end", SLOW)
    supervisor = farm.supervisor_pid
    farm.teardown()
    assert not any(vhci.find(label) for label in LABELS)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=10).close()
    assert supervisor is not None and not os.path.exists(f"/proc/{supervisor}")

