"""`simfarm status` and `teardown`: what users run in loops, so they import no camera specs.

Provisioning lives in farm_cmd, whose options need the specs (dataclasses,
fractions, enum); these two read farm records and ask supervisors, and
start in little more than Python's own time.
"""

from __future__ import annotations

import argparse
import json

from ..farm.farm import Farm, running_farms, teardown, teardown_all
from . import publish_cmd, table
from .args import seconds


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("status")
    s.add_argument("--farm", help="only this farm")
    s.add_argument("--json", action="store_true")
    s.set_defaults(run=_status)

    t = sub.add_parser("teardown")
    g = t.add_mutually_exclusive_group()
    g.add_argument("--farm", default="default")
    g.add_argument("--all", action="store_true", help="every farm on this machine")
    t.add_argument("--timeout", type=seconds, default=10.0, help="seconds to wait for readers to close nodes")
    t.set_defaults(run=_teardown)


def _status(args: argparse.Namespace) -> int:
    names = [args.farm] if args.farm else running_farms()
    reports = [Farm.attach(name).status() for name in names]
    if args.json:
        print(json.dumps({"farms": reports}, indent=2))
        return 0
    if not reports:
        print("no farms running")
    for rep in reports:
        print(f"farm {rep['farm']} ({rep['backend']}, {rep['phase']}): supervisor pid {rep['supervisor_pid']}, "
              f"state {rep['state_dir']}")
        print(table.render(
            ["camera", "node", "state", "written", "fps", "late", "dropped", "uptime_s", "faults"],
            [[c["camera"], c["device"], c["state"], c.get("written"), c.get("fps"), c.get("late"),
              c.get("dropped"), c.get("uptime_s"), _faults_cell(c.get("faults", []))]
             for c in rep["cameras"]]))
        if workers := rep.get("workers"):
            print(table.render(["worker", "pid", "cameras", "restarts"],
                               [[w["worker"], w["pid"], ", ".join(map(str, w["cameras"])), w.get("restarts", 0)]
                                for w in workers]))
        for worker in rep.get("workers", []):
            if worker["error"]:
                print(f"error: {worker['error']} (cameras {', '.join(map(str, worker['cameras']))})")
        if "publish" in rep:
            print(publish_cmd.describe(rep))
        if "usbip" in rep:
            print(f"USB/IP server on {rep['usbip']['listen']}: " + ", ".join(
                f"{c['usbip']['busid']} ({c['label']}) {c['usbip']['state']}"
                + (f" by {c['usbip']['peer']}" if c["usbip"]["peer"] else "") for c in rep["cameras"]))
    return 0


def _faults_cell(faults: list[dict]) -> str:
    """One short cell for a camera's faults in force."""
    return ", ".join(f"{f['fault']} {f['kind']}" for f in faults) or "-"


def _teardown(args: argparse.Namespace) -> int:
    if args.all:
        names = teardown_all(timeout=args.timeout)
        print(f"torn down: {', '.join(names) if names else 'nothing to do'}")
    else:
        done = teardown(args.farm, timeout=args.timeout)
        print(f"farm {args.farm}: {'torn down' if done else 'not running (nothing to do)'}")
    return 0


