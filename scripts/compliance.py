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

BACKENDS = ("loopback", "vivid", "uvc")
_TOTALS = re.compile(r"^Total for .*: (\d+), Succeeded: (\d+), Failed: (\d+), Warnings: (\d+)", re.M)
_FAILED = re.compile(r"^\s*test (.+): FAIL", re.M)


def score(device: str) -> dict:
    """v4l2-compliance's totals for ``device`` and the names of the tests that failed."""
    done = subprocess.run(["v4l2-compliance", "-d", device, "-s"], capture_output=True, text=True,
                          timeout=1800, check=False)
    totals = _TOTALS.search(done.stdout)
    if totals is None:
        raise SystemExit(f"v4l2-compliance printed no totals for {device}: {done.stderr.strip() or done.stdout[-500:]}")
    total, succeeded, failed, warnings = map(int, totals.groups())
    return {"total": total, "succeeded": succeeded, "failed": failed, "warnings": warnings,
            "failures": _FAILED.findall(done.stdout)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", action="append", choices=BACKENDS, help="only these (default: all)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    scores = {}
    for backend in args.backend or BACKENDS:
        with Farm.provision(1, name=f"cmp-{backend}", backend=backend) as farm:
            scores[backend] = score(farm.cameras[0].device)
    if args.json:
        print(json.dumps(scores))
        return 0
    for backend, result in scores.items():
        print(f"{backend:9} {result['succeeded']}/{result['total']} passed, {result['failed']} failed, "
              f"{result['warnings']} warnings; failed: {', '.join(result['failures']) or '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
