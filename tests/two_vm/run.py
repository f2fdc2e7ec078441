#!/usr/bin/env python3
"""Issue 21's two-machine check: a farm in one VM, an importer in another, linked only by host ports.

Not part of CI (two VMs at once under TCG take many minutes); run it by hand:

    PYTHONPATH=$PWD tests/two_vm/run.py [--timeout SECONDS]

It holds the VM lock (/tmp/simfarm-vm.lock) for the whole run, picks two
free host ports, boots VM A (`simfarm vm --forward`, farm_side.py: the farm
on guest port 3240, its control on 3241), waits until the farm answers a
USB/IP device list through the host forward, then boots VM B (`simfarm vm
--net`, importer_side.py, dialling 10.0.2.2, the host), which runs the
checks and tears the farm down. Each VM's output is shown prefixed with A|
or B|. Both are bounded by --timeout; whatever is still running then is
stopped (simfarm vm ends its QEMU), and the run fails if a QEMU with
simfarm vm's network is left. Exit 0 when both sides passed.
"""

from __future__ import annotations

import argparse
import fcntl
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from simfarm.publishers.usbip.client import list_remote
from simfarm.vm.network import NETDEV

HERE = Path(__file__).parent
LOCK = "/tmp/simfarm-vm.lock"
# Inside VM A nothing else listens, so the guest ports can be the protocol's own; the host ports cannot.
GUEST_USBIP, GUEST_CONTROL = 3240, 3241


def free_port() -> int:
    """A TCP port free on the host's loopback now (QEMU binds it a moment later)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_vm(tag: str, vm_options: list[str], command: list[str]) -> subprocess.Popen:
    """`simfarm vm` running ``command``, its output relayed with ``tag``."""
    process = subprocess.Popen([sys.executable, "-m", "simfarm", "vm", *vm_options, "--", *command],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)

    def relay() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            print(f"{tag}| {line}", end="", flush=True)

    threading.Thread(target=relay, daemon=True).start()
    return process


def wait_exported(port: int, vm: subprocess.Popen, deadline: float) -> bool:
    """Whether the farm in VM A lists its two webcams through the host forward before ``deadline``."""
    while time.monotonic() < deadline and vm.poll() is None:
        try:
            if len(list_remote("127.0.0.1", port, timeout=10)) == 2:
                return True
        except Exception:  # noqa: BLE001 - not up yet: the forward accepts and drops, or the farm refuses
            pass
        time.sleep(5)
    return False


def stop(vm: subprocess.Popen, until: float) -> int:
    """``vm``'s exit code, once it ended by ``until`` or was stopped (SIGTERM: simfarm vm ends its QEMU)."""
    try:
        return vm.wait(timeout=max(1.0, until - time.monotonic()))
    except subprocess.TimeoutExpired:
        vm.terminate()
        try:
            return vm.wait(timeout=60)
        except subprocess.TimeoutExpired:
            vm.kill()
            return vm.wait()


def qemu_left() -> list[int]:
    """Pids of QEMUs with simfarm vm's NIC: while we hold the VM lock, only ours can have one."""
    left = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "qemu-system" in cmdline and f"id={NETDEV}" in cmdline:
            left.append(int(entry.name))
    return left


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=3600, help="bound of the whole run, seconds")
    args = parser.parse_args()
    with open(LOCK, "a") as lock:
        print(f"waiting for {LOCK}", flush=True)
        fcntl.flock(lock, fcntl.LOCK_EX)
        started = time.monotonic()
        deadline = started + args.timeout
        usbip, control = free_port(), free_port()
        farm = start_vm("A", ["--forward", f"{usbip}:{GUEST_USBIP}", "--forward", f"{control}:{GUEST_CONTROL}"],
                        [sys.executable, str(HERE / "farm_side.py"), str(GUEST_USBIP), str(GUEST_CONTROL)])
        importer = None
        try:
            if not wait_exported(usbip, farm, deadline):
                print("VM A's farm never listed its webcams through the host forward", flush=True)
                return 1
            print(f"host: VM A exports 2 webcams at 127.0.0.1:{usbip} after {time.monotonic() - started:.0f} s",
                  flush=True)
            importer = start_vm("B", ["--net"], [sys.executable, str(HERE / "importer_side.py"), "10.0.2.2",
                                                 str(usbip), str(control)])
            codes = {"B": stop(importer, deadline), "A": stop(farm, min(deadline, time.monotonic() + 300))}
        finally:
            for vm in (importer, farm):
                if vm is not None and vm.poll() is None:
                    stop(vm, time.monotonic())
        left = qemu_left()
        print(f"host: VM A exit {codes['A']}, VM B exit {codes['B']}, {time.monotonic() - started:.0f} s, "
              f"QEMU left: {left or 'none'}", flush=True)
        return 0 if codes == {"A": 0, "B": 0} and not left else 1


if __name__ == "__main__":
    sys.exit(main())
