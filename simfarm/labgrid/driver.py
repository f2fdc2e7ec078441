"""The driver: a farm webcam attached on the target (the DUT), and the farm's faults injected into it.

On activate it imports the webcam on the target through the target's
CommandProtocol (a ShellDriver, an SSHDriver): with ``via="simfarm"`` by
``simfarm attach --json`` (simfarm installed on the DUT), with ``via="usbip"``
by Debian's stock ``usbip attach`` (vhci-hcd loaded on the DUT). It then
offers the capture node and its /dev/v4l/by-id link on the target, and
detaches on deactivate. Faults run ``simfarm fault`` on the farm's host, the
way labgrid's network drivers run their tools on the exporter: through the
resource's ``wrap_command`` (SSH for a remote place, locally otherwise).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import time

import attr
from labgrid.driver.common import Driver
from labgrid.driver.exception import ExecutionError
from labgrid.factory import target_factory
from labgrid.protocol import CommandProtocol
from labgrid.step import step

from .resource import SimfarmWebcam

POLL = 1.0  # seconds between looks for the node uvcvideo makes on the target


@target_factory.reg_driver
@attr.s(eq=False)
class SimfarmWebcamDriver(Driver):
    """Attach ``webcam`` on the target ``via`` simfarm or usbip; ``timeout`` bounds the wait for its node
    (uvcvideo's probing takes a while, under emulation minutes)."""

    # NetworkSimfarmWebcam is a SimfarmWebcam: naming both would find a remote one twice.
    bindings = {"webcam": "SimfarmWebcam", "command": CommandProtocol}

    via = attr.ib(default="simfarm", validator=attr.validators.in_(("simfarm", "usbip")))
    timeout = attr.ib(default=120.0, converter=float)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._node: str | None = None
        self._by_id: str | None = None

    @property
    def node(self) -> str | None:
        """The webcam's capture node on the target (/dev/videoN); None while it is not attached."""
        return self._node

    @property
    def by_id(self) -> str | None:
        """The node's /dev/v4l/by-id link on the target, when udev made one."""
        return self._by_id

    def on_activate(self) -> None:
        self._attach()

    def on_deactivate(self) -> None:
        self._detach()

    @Driver.check_active
    @step(result=True)
    def attach(self) -> str:
        """Import the webcam on the target again (after a replug ended the last import); returns its node."""
        return self._attach()

    @Driver.check_active
    @step()
    def detach(self) -> None:
        """End the target's import of the webcam, if it still has one (an unplug fault ends it too)."""
        self._detach()

    def _attach(self) -> str:
        cam: SimfarmWebcam = self.webcam
        if self.via == "simfarm":
            out = self.command.run_check(
                f"simfarm attach {shlex.quote(_server(cam))} --busid {shlex.quote(cam.busid)} --json",
                timeout=self.timeout)
            made = json.loads(out[-1])
            self._node, self._by_id = made["node"], made["by_id"]
        else:
            self.command.run_check(f"usbip --tcp-port {cam.usbip_port} attach -r {shlex.quote(cam.usbip_host)} "
                                   f"-b {shlex.quote(cam.busid)}", timeout=self.timeout)
            self._node = self._wait_node(cam.label)
            self._by_id = self._link_of(self._node)
        return self._node

    def _detach(self) -> None:
        cam: SimfarmWebcam = self.webcam
        if self.via == "simfarm":
            self.command.run_check(f"simfarm detach --busid {shlex.quote(cam.busid)} || true",
                                   timeout=self.timeout)
        elif (port := self._vhci_port()) is not None:
            self.command.run_check(f"usbip detach -p {port}", timeout=self.timeout)
        self._node = self._by_id = None

    @Driver.check_active
    @step(args=["kind", "words"], result=True)
    def fault(self, kind: str, *words: str) -> str:
        """Run ``simfarm fault CAMERA KIND WORDS... --farm FARM`` on the farm's host (e.g. ``fault("unplug")``,
        ``fault("replug")``, ``fault("drop", "--rate", "0.5")``); returns its output. An unplug ends the
        target's import: call ``attach`` after the replug."""
        cam: SimfarmWebcam = self.webcam
        argv = ["simfarm", "fault", str(cam.camera), kind, *words, "--farm", cam.farm]
        done = subprocess.run(cam.wrap_command(argv), capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise ExecutionError(" ".join(argv), done.stdout.splitlines(), done.stderr.splitlines())
        return done.stdout

    def _wait_node(self, label: str) -> str:
        """The capture node (uvcvideo's index 0) of the USB device with serial ``label`` on the target."""
        find = ("for d in /sys/bus/usb/devices/*; do "
                f"[ \"$(cat $d/serial 2>/dev/null)\" = {shlex.quote(label)} ] || continue; "
                "for v in $d/*/video4linux/video*; do "
                "[ \"$(cat $v/index 2>/dev/null)\" = 0 ] && echo /dev/${v##*/}; done; done; true")
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if found := [line for line in self.command.run_check(find) if line.startswith("/dev/")]:
                return found[0]
            time.sleep(POLL)
        raise ExecutionError(f"no capture node for {label} on the target within {self.timeout:.0f} s")

    def _link_of(self, node: str) -> str | None:
        self.command.run("udevadm settle --timeout=30")
        found = self.command.run_check(
            f"for l in /dev/v4l/by-id/*; do [ \"$(readlink -f \"$l\")\" = {shlex.quote(node)} ] && echo \"$l\"; "
            "done; true")
        return found[0] if found else None

    def _vhci_port(self) -> int | None:
        """The vhci-hcd port the stock tool attached the webcam to (`usbip port`: "Port 00: ..." and then
        the line "LOCAL_BUSID -> usbip://HOST:PORT/BUSID" of each import)."""
        cam: SimfarmWebcam = self.webcam
        port = None
        for line in self.command.run_check("usbip port"):
            if line.startswith("Port ") and ":" in line:
                port = int(line.split()[1].rstrip(":"))
            elif port is not None and line.strip().endswith(f":{cam.usbip_port}/{cam.busid}"):
                return port
        return None


def _server(cam: SimfarmWebcam) -> str:
    """``HOST:PORT`` as simfarm attach reads it (an IPv6 address in brackets)."""
    host = f"[{cam.usbip_host}]" if ":" in cam.usbip_host else cam.usbip_host
    return f"{host}:{cam.usbip_port}"
