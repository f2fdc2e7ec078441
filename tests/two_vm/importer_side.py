#!/usr/bin/env python3
"""VM B of the two-VM USB/IP run (see run.py): its own kernel imports VM A's webcams over the host.

It reaches VM A only through the host's forwarded ports (10.0.2.2 is the
host under QEMU's user networking): the stock `usbip` lists both webcams
and attaches camera 0, `simfarm attach` camera 1; FFmpeg and OpenCV read
each node's codes; an unplug fault on the farm removes camera 1's node
here and `simfarm attach --watch` gets it back after the replug; detach
and the farm's teardown leave nothing attached, listening or running on
either side. Every check that fails ends the run with its message.

    importer_side.py HOST USBIP_PORT CONTROL_PORT
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "vm"))

from simfarm.devices.kmod import kmodule  # noqa: E402
from simfarm.devices.udev import uevents  # noqa: E402
from simfarm.devices.usb import vhci  # noqa: E402
from simfarm.spec import PixelFormat  # noqa: E402

from farm_side import LABELS, SPEC  # noqa: E402
from test_usbip_network import stock_node, unplugged_and_back, watching  # noqa: E402
from test_uvc_farm import assert_codes_of, read_ffmpeg, read_opencv  # noqa: E402

SLOW = 600  # seconds: enumeration and uvcvideo's probing under TCG, with the other VM sharing the cores


class Farm:
    """VM A's control port: one JSON answer per request."""

    def __init__(self, host: str, port: int) -> None:
        self._stream = socket.create_connection((host, port), timeout=SLOW).makefile("rw")

    def ask(self, *request: str) -> dict:
        self._stream.write(" ".join(request) + "\n")
        self._stream.flush()
        return json.loads(self._stream.readline())

    def state(self, camera: int) -> str:
        return self.ask("status")["cameras"][camera]["usbip"]["state"]


def run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=SLOW, check=False)


def step(what: str) -> None:
    print(f"importer side: {what}", flush=True)


def read_both(node: str, camera: int) -> None:
    """FFmpeg and OpenCV each read ``node`` and get ``camera``'s codes."""
    assert_codes_of(read_ffmpeg(node, PixelFormat.YUYV, SPEC.size), camera)
    assert_codes_of(read_opencv(node, PixelFormat.YUYV, SPEC.size), camera)
    step(f"FFmpeg and OpenCV read camera {camera}'s codes from {node}")


def main() -> int:
    host, port, control = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    simfarm = [sys.executable, "-m", "simfarm"]
    usbip = ["usbip", "--tcp-port", str(port)]
    farm = Farm(host, control)
    busids = [cam["usbip"]["busid"] for cam in farm.ask("status")["cameras"]]

    listed = run(*usbip, "list", "-r", host)
    assert listed.returncode == 0 and all(b in listed.stdout for b in busids), listed.stdout + listed.stderr
    step(f"usbip list -r {host} lists {busids}:\n{listed.stdout.strip()}")

    for module in kmodule.WEBCAM_MODULES:  # the stock tool loads neither vhci-hcd nor uvcvideo
        kmodule.ensure(module)
    watch = uevents.Watch("usb", "video4linux")
    attached = run(*usbip, "attach", "-r", host, "-b", busids[0])
    assert attached.returncode == 0, attached.stderr
    node0 = stock_node(LABELS[0], watch)
    stock = vhci.find(LABELS[0])
    assert stock is not None and farm.state(0) == "imported"
    step(f"usbip attach: camera 0 is {node0} on vhci port {stock.port}")

    made = run(*simfarm, "attach", f"{host}:{port}", "--camera", LABELS[1], "--json")
    assert made.returncode == 0, made.stderr
    one = json.loads(made.stdout)
    assert one["busid"] == busids[1] and one["by_id"], one
    step(f"simfarm attach: camera 1 is {one['node']} ({one['by_id']})")
    read_both(node0, 0)
    read_both(one["node"], 1)
    gone = run(*simfarm, "detach", "--busid", busids[1])
    assert gone.returncode == 0 and not os.path.exists(one["node"]), gone.stderr

    def fault(kind: str) -> None:
        done = farm.ask("fault", "1", kind)
        assert done["rc"] == 0, done
        step(f"{kind} on the farm")

    with watching(f"{host}:{port}", LABELS[1]) as watcher:
        again = unplugged_and_back(watcher, fault)
        step(f"simfarm attach --watch attached camera 1 again after the replug: {again['node']}")
        read_both(again["node"], 1)
    assert not os.path.exists(again["node"]) and vhci.find(LABELS[1]) is None

    gone_watch = uevents.Watch("video4linux")
    assert run(*usbip, "detach", "-p", str(stock.port)).returncode == 0
    vhci.wait_nodes_gone(stock.busid, gone_watch)
    left = farm.ask("teardown")
    assert left == {"vhci": [], "listening": False, "supervisor_running": False}, left
    ports = run("usbip", "port")
    assert not any(vhci.find(label) for label in LABELS) and "Port " not in ports.stdout, ports.stdout
    step(f"detached and torn down: nothing attached here (usbip port: {ports.stdout.strip()!r}), "
         f"farm side {left}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
