"""`simfarm env`: a farm's devices and addresses as shell assignments, for ``eval "$(simfarm env)"``."""

from __future__ import annotations

import argparse
import shlex

from ..farm.farm import Farm


def register(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser("env", description="Print `export NAME=value` lines for a running farm: its camera nodes, "
                                          "labels, by-id links and, when it has a MediaMTX, its API and RTSP URLs "
                                          "and ports. Wire a service to the farm with: "
                                          "eval \"$(simfarm env --farm NAME)\"")
    e.add_argument("--farm", default="default")
    e.set_defaults(run=_env)


def _env(args: argparse.Namespace) -> int:
    for name, value in Farm.attach(args.farm).environment().items():
        print(f"export {name}={shlex.quote(value)}")
    return 0
