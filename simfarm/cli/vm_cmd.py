"""`simfarm vm -- COMMAND`: run a command inside the kernel-tier VM."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import BadInput
from ..vm import run_in_vm
from ..vm.network import Forward


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "vm",
        description="Boot the distribution kernel in QEMU (virtme-ng) with this machine's filesystem, "
                    "load v4l2loopback, start udev, and run COMMAND in the current directory with this "
                    "environment. Exits with COMMAND's exit code.")
    p.add_argument("--kernel", type=Path, help="kernel image to boot (default: newest under /boot "
                                                "with v4l2loopback built for it)")
    p.add_argument("--cpus", type=int, default=2, help="guest CPUs (default 2)")
    p.add_argument("--memory", default="2G", help="guest memory, e.g. 2G or 512M (default 2G)")
    p.add_argument("--rwdir", type=Path, action="append", default=[],
                   help="another directory whose writes must reach the host (the current one always does)")
    p.add_argument("--boot-timeout", type=float, metavar="SECONDS",
                   help="stop the VM (exit 124) if the guest shows no sign of life within SECONDS: "
                        "the kernel's first console line within a third of it, the guest script's start "
                        "within all of it (default: $SIMFARM_VM_BOOT_TIMEOUT, else 60 under KVM, 600 under TCG)")
    p.add_argument("--net", action="store_true",
                   help="user networking (QEMU's, no privileges needed): the guest reaches this host at 10.0.2.2 "
                        "(default: no network)")
    p.add_argument("--forward", type=Forward.parse, action="append", default=[],
                   metavar="[HOSTADDR:]HOSTPORT:GUESTPORT",
                   help="this host's TCP HOSTPORT (on HOSTADDR, default 127.0.0.1) leads to the guest's GUESTPORT; "
                        "implies --net; repeatable")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    p.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise BadInput("simfarm vm: missing command (usage: simfarm vm [options] -- COMMAND [ARGS...])")
    return run_in_vm(command, kernel=args.kernel, cpus=args.cpus, memory=args.memory, rwdirs=args.rwdir,
                     boot_timeout=args.boot_timeout, net=args.net, forwards=args.forward)
