"""`simfarm labgrid exporter-config`: the labgrid exporter YAML for this host's exporting farms."""

from __future__ import annotations

import argparse
import socket

from ..farm.farm import Farm, running_farms
from ..farm.labgrid_config import exporter_config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("labgrid", description="labgrid support (the client side: pip install simfarm[labgrid])")
    actions = p.add_subparsers(dest="action", required=True)
    e = actions.add_parser("exporter-config", help="labgrid-exporter's YAML: one NetworkSimfarmWebcam per exported "
                                                   "webcam")
    e.add_argument("--farm", help="only this farm (default: every exporting farm here)")
    e.add_argument("--host", default=socket.getfqdn(),
                   help="the name DUTs and labgrid clients reach this host by (default: its FQDN)")
    e.set_defaults(run=_exporter_config)


def _exporter_config(args: argparse.Namespace) -> int:
    import yaml  # here: no other command needs the emitter

    names = [args.farm] if args.farm else running_farms()
    config = exporter_config([Farm.attach(name).status() for name in names], args.host)
    print(yaml.safe_dump(config, sort_keys=False), end="")
    return 0
