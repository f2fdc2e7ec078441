"""`simfarm doctor [--json]`: what this machine can run, and how to fix the rest."""

from __future__ import annotations

import argparse
import json

from .. import doctor
from . import table


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("doctor")
    p.add_argument("--json", action="store_true", help="machine-readable report")
    p.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    report = doctor.run()
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(table.render(["check", "ok", "detail", "fix"],
                           [[c.name, "ok" if c.ok else "FAIL", c.detail, c.fix] for c in report.checks]))
        if report.ready("host"):
            print("cameras can run on this kernel")
        elif report.ready("vm"):
            print("cameras can run in the VM: simfarm vm -- COMMAND")
        else:
            print("cameras cannot run here: apply the fixes above")
    return 0 if report.ok else 1
