#!/usr/bin/env python3
"""The kernel's own conformance suite on one camera of each backend: `v4l2-compliance -d NODE -s`.

Provisions a one-camera farm per backend (loopback, vivid, uvc), runs
v4l2-compliance (Debian's v4l-utils) on its capture node with streaming
tests, prints each backend's totals and the tests that failed, and tears
the farm down. Needs a kernel that can make all three (inside the VM:
`simfarm vm -- scripts/compliance.py`). ``--json`` prints the figures as
JSON for the kernel tier's test.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys

from simfarm import Farm
from simfarm.backends.uvc.backend import UvcBackend

BACKENDS = ("loopback", "vivid", "uvc")
_TOTALS = re.compile(r"^Total for .*: (\d+), Succeeded: (\d+), Failed: (\d+), Warnings: (\d+)", re.M)
_TEST = re.compile(r"^\s*test (.+): (\w+)")
_CHECK = re.compile(r"fail: (v4l2-test-[\w-]+\.cpp\(\d+\): .*)")


def score(device: str) -> dict:
    """v4l2-compliance's totals for ``device``, and for each test that failed the checks it failed."""
    done = subprocess.run(["v4l2-compliance", "-d", device, "-s"], capture_output=True, text=True,
                          timeout=1800, check=False)
    totals = _TOTALS.search(done.stdout)
    if totals is None:
        raise SystemExit(f"v4l2-compliance printed no totals for {device}: {done.stderr.strip() or done.stdout[-500:]}")
    total, succeeded, failed, warnings = map(int, totals.groups())
    failures: dict[str, list[str]] = {}
    checks: list[str] = []  # a test's "fail:" lines come before its verdict
    for line in done.stdout.splitlines():
        checks += _CHECK.findall(line)
        if verdict := _TEST.match(line):
            if verdict.group(2) == "FAIL":
                failures[verdict.group(1)] = checks
            checks = []
    return {"total": total, "succeeded": succeeded, "failed": failed, "warnings": warnings, "failures": failures}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", action="append", choices=BACKENDS, help="only these (default: all)")
    parser.add_argument("--profile", help="the uvc camera's profile (default: the backend's)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    scores = {}
    for backend in args.backend or BACKENDS:
        spec = UvcBackend().default_spec({"profile": args.profile}) if backend == "uvc" and args.profile else None
        with Farm.provision(1, name=f"cmp-{backend}", spec=spec, backend=backend) as farm:
            scores[backend] = score(farm.cameras[0].device)
    if args.json:
        print(json.dumps(scores))
        return 0
    for backend, result in scores.items():
        print(f"{backend:9} {result['succeeded']}/{result['total']} passed, {result['failed']} failed, "
              f"{result['warnings']} warnings")
        for test, checks in result["failures"].items():
            print(f"    {test}: {'; '.join(checks)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
