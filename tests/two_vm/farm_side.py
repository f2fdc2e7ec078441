#!/usr/bin/env python3
"""VM A of the two-VM USB/IP run (see run.py): a uvc farm exporting two webcams to the network.

The farm listens on every guest address, allowing only 10.0.2.2, which is
where QEMU's user networking makes every forwarded peer come from (the host
and VM B alike). VM B drives what happens here over a second forwarded
port, one JSON line per request and per answer: ``status``, ``fault CAMERA
KIND`` (the CLI, as a lab would run it) and ``teardown``, after which this
side reports what is left here (vhci-hcd ports, a listener, the supervisor)
and exits.

    farm_side.py USBIP_PORT CONTROL_PORT
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from simfarm import Farm
from simfarm.devices.usb import vhci
from simfarm.spec import CameraSpec

NAME = "twovm"
LABELS = (f"simfarm-{NAME}-0", f"simfarm-{NAME}-1")
PROFILE = str(Path(__file__).parents[1] / "data" / "uvc-test.yaml")
SPEC = CameraSpec.parse(size="320x240", fps=15, profile=PROFILE)
SLIRP_PEER = "10.0.2.2/32"


def refuses(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=10).close()
    except ConnectionRefusedError:
        return True
    return False


def handle(farm: Farm, usbip_port: int, request: list[str]) -> dict:
    """The answer to one control request."""
    if request == ["status"]:
        return farm.status()
    if request[:1] == ["fault"]:
        done = subprocess.run([sys.executable, "-m", "simfarm", "fault", *request[1:], "--farm", NAME],
                              capture_output=True, text=True, check=False, timeout=600)
        return {"rc": done.returncode, "stderr": done.stderr}
    if request == ["teardown"]:
        supervisor = farm.supervisor_pid
        farm.teardown()
        return {"vhci": [label for label in LABELS if vhci.find(label)], "listening": not refuses(usbip_port),
                "supervisor_running": supervisor is not None and os.path.exists(f"/proc/{supervisor}")}
    return {"error": f"unknown request {request}"}


def main() -> int:
    usbip_port, control_port = int(sys.argv[1]), int(sys.argv[2])
    os.environ["SIMFARM_STATE_DIR"] = tempfile.mkdtemp(prefix="simfarm-twovm-")
    control = socket.create_server(("0.0.0.0", control_port))
    with Farm.provision(2, name=NAME, spec=SPEC, backend="uvc", usbip_listen=f"0.0.0.0:{usbip_port}",
                        usbip_allow=[SLIRP_PEER]) as farm:
        print(f"farm side: exporting {LABELS} on port {usbip_port}, control on {control_port}", flush=True)
        connection, peer = control.accept()
        print(f"farm side: driven by {peer}", flush=True)
        with connection, connection.makefile("rw") as stream:
            for line in stream:
                request = line.split()
                answer = handle(farm, usbip_port, request)
                print(f"farm side: {line.strip()} -> {json.dumps(answer)[:200]}", flush=True)
                stream.write(json.dumps(answer) + "\n")
                stream.flush()
                if request == ["teardown"]:
                    return 0 if answer == {"vhci": [], "listening": False, "supervisor_running": False} else 1
    return 1  # VM B hung up before the teardown


if __name__ == "__main__":
    sys.exit(main())
