"""`simfarm fault` (inject, clear, list) and `simfarm scenario run`, on a running farm.

Faults and scenario files are checked here before the farm is asked, so a
mistake is one line on stderr and exit code 2 with the farm untouched; the
farm checks the camera and anything it alone knows (a row outside a resized
frame, a camera already unplugged) with the same outcome.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from ..errors import BadInput
from ..farm.farm import Farm
from . import table
from .args import seconds

# The catalogue (dataclasses, the specs) is loaded only to check a fault or show
# help: `simfarm fault list` and `clear`, run in loops, do without it.
if TYPE_CHECKING:
    from ..faults.catalogue import FaultSpec

_USAGE = """\
simfarm fault CAMERA KIND [VALUE] [--for DURATION] [--rate P] [--frames N] [--param K=V ...] [--farm NAME]
simfarm fault clear CAMERA [--id ID] | --all [--farm NAME]
simfarm fault list [--farm NAME] [--json]"""


def register(sub: argparse._SubParsersAction) -> None:
    f = sub.add_parser("fault", usage=_USAGE,
                       epilog=_kinds_help, formatter_class=argparse.RawDescriptionHelpFormatter)
    f.add_argument("target", help="a camera index, or clear / list")
    f.add_argument("words", nargs="*", help="KIND [VALUE] (or, after clear, the camera)")
    f.add_argument("--for", dest="duration", help="how long: 500ms, 2s, 1m")
    f.add_argument("--rate", help="probability per frame (drop, duplicate, reorder; bitflip: per bit)")
    f.add_argument("--frames", help="end after exactly this many frames")
    f.add_argument("--param", action="append", default=[], metavar="K=V", help="a parameter of the kind")
    f.add_argument("--timeout", type=seconds, default=10.0, help="seconds an unplug waits for readers")
    f.add_argument("--id", help="clear: only this fault")
    f.add_argument("--all", action="store_true", help="clear: every fault on the farm")
    f.add_argument("--farm", default="default")
    f.add_argument("--json", action="store_true", help="print the reply as JSON")
    f.set_defaults(run=_fault)

    s = sub.add_parser("scenario")
    ssub = s.add_subparsers(dest="action", required=True, parser_class=type(s))
    r = ssub.add_parser("run", help="schedule FILE on the farm and return")
    r.add_argument("file")
    r.add_argument("--seed", type=int, help="overrides the file's seed")
    r.add_argument("--log", help="write this run's fault log (JSON lines) here")
    r.add_argument("--farm", default="default")
    r.set_defaults(run=_scenario)


def _kinds_help() -> str:
    from ..faults.catalogue import describe
    return "fault kinds:\n\n" + describe()


def _fault(args: argparse.Namespace) -> int:
    if args.target == "list":
        return _list(args)
    if args.target == "clear":
        return _clear(args)
    camera = _camera_index(args.target)
    spec = _spec(args)
    reply = Farm.attach(args.farm).request({"op": "fault", "camera": camera, "kind": spec.kind, "params": spec.to_json()["params"],
                          "for": spec.duration_s, "timeout": args.timeout}, timeout=args.timeout + 30)
    if args.json:
        print(json.dumps(reply, indent=2))
    else:
        held = f"; waited for pids {', '.join(map(str, reply['held_by']))}" if reply.get("held_by") else ""
        print(f"camera {camera}: {reply['fault']} {spec}{held}")
    return 0


def _spec(args: argparse.Namespace) -> FaultSpec:
    from ..faults.catalogue import FaultSpec

    if not args.words:
        raise BadInput("fault: give a camera and a KIND, e.g. simfarm fault 0 drop --frames 10")
    words = list(args.words)
    words += [f"{name}={value}" for name, value in (("rate", args.rate), ("frames", args.frames)) if value]
    for param in args.param:
        if "=" not in param:
            raise BadInput(f"--param {param!r} is not K=V")
        words.append(param)
    return FaultSpec.parse(words, duration=args.duration)


def _camera_index(text: str) -> int:
    if not text.isdigit():
        raise BadInput(f"camera {text!r} is not an index (or clear / list)")
    return int(text)


def _clear(args: argparse.Namespace) -> int:
    if args.all == bool(args.words):
        raise BadInput("fault clear: give a CAMERA or --all, not both or neither")
    message: dict = {"op": "clear", "all": True} if args.all else {
        "op": "clear", "camera": _camera_index(args.words[0]), "id": args.id}
    cleared = Farm.attach(args.farm).request(message)["cleared"]
    print(f"cleared: {', '.join(cleared) if cleared else 'nothing was in force'}")
    return 0


def _list(args: argparse.Namespace) -> int:
    faults = Farm.attach(args.farm).request({"op": "faults"})["faults"]
    if args.json:
        print(json.dumps(faults, indent=2))
    elif not faults:
        print("no faults in force")
    else:
        print(table.render(["camera", "fault", "kind", "params", "for_s", "since seq", "frames"],
                           [[f["camera"], f["fault"], f["kind"], _params(f["params"]), f.get("for_s"),
                             (f["started"] or {}).get("sequence"), f["frames"]] for f in faults]))
    return 0


def _params(params: dict) -> str:
    return " ".join(f"{name}={value}" for name, value in params.items())


def _scenario(args: argparse.Namespace) -> int:
    from ..faults.scenario import Scenario  # here: numpy, which `simfarm fault` does without

    Scenario.load(args.file)  # a malformed file names its line here, before the farm is asked
    reply = Farm.attach(args.farm).run_scenario(args.file, args.seed, log=args.log)
    origins = ", ".join(f"camera {cam} at {seq}" for cam, seq in reply["origins"].items())
    print(f"scenario {reply['scenario']} (seed {reply['seed']}): {reply['events']} faults scheduled"
          f"{'; starts ' + origins if origins else ''}{'; log ' + reply['log'] if reply['log'] else ''}")
    return 0
