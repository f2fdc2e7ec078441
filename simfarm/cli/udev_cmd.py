"""`simfarm udev install`."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..devices.udev import rules


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("udev")
    actions = p.add_subparsers(dest="action", required=True)
    i = actions.add_parser("install", help="stable /dev/v4l/by-id links and group video on the control device")
    i.add_argument("--runtime", action="store_true",
                   help=f"install into {rules.RUNTIME_DIR} (lost at reboot; for read-only /etc)")
    i.add_argument("--dir", type=Path, help="install into this directory instead")
    i.set_defaults(run=_install)


def _install(args: argparse.Namespace) -> int:
    directory = args.dir or (rules.RUNTIME_DIR if args.runtime else rules.SYSTEM_DIR)
    print(f"installed {rules.install(directory)}")
    return 0
