#!/usr/bin/env python3
"""Chaos soak: random faults on a running farm for N minutes, from a seed.

Every few seconds (exponential gaps, mean --gap) a camera and a fault are
drawn and the fault is put in force for a drawn time; unplugs (--unplug)
end by plugging the camera in again. At the end every fault is cleared and
every camera must deliver its own codes again. Prints what was injected, per
kind and camera, and every injection the farm refused. The same seed on the
same farm draws the same faults.

    scripts/chaos_soak.py [--farm default] [--minutes 10] [--seed 0] [--gap 3] [--unplug]
"""

from __future__ import annotations

import argparse
import collections
import sys
import time

import numpy as np

from simfarm import Farm
from simfarm.errors import SimfarmError

# (kind, parameters, weight): frame-level faults a consumer must ride out.
FAULTS = [
    ("drop", {"rate": 0.2}, 4), ("duplicate", {"rate": 0.1}, 2), ("reorder", {"rate": 0.1}, 2),
    ("freeze", {}, 2), ("stall", {}, 1), ("black", {}, 1), ("noise", {"amount": 0.3}, 2),
    ("bitflip", {"rate": 0.001}, 1), ("tear", {}, 1), ("stripe", {}, 1), ("jitter", {"ms": 20}, 2),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--farm", default="default")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gap", type=float, default=3.0, help="mean seconds between faults")
    parser.add_argument("--unplug", action="store_true", help="also unplug cameras for a while")
    args = parser.parse_args()

    farm = Farm.attach(args.farm)
    cameras = len(farm.cameras)
    rng = np.random.default_rng(args.seed)
    menu = FAULTS + ([("unplug", {}, 1)] if args.unplug else [])
    weights = np.array([weight for *_, weight in menu], float)
    injected: collections.Counter[tuple[str, int]] = collections.Counter()
    refused: list[str] = []
    end = time.monotonic() + args.minutes * 60
    while (left := end - time.monotonic()) > 0:
        time.sleep(min(left, rng.exponential(args.gap)))
        kind, params, _ = menu[rng.choice(len(menu), p=weights / weights.sum())]
        camera, seconds = int(rng.integers(cameras)), round(float(rng.uniform(0.5, 4.0)), 1)
        try:
            farm.reload().camera(camera).inject(kind, for_=seconds, **params)
            injected[kind, camera] += 1
        except SimfarmError as exc:  # e.g. the camera is unplugged right now
            refused.append(f"{kind} on camera {camera}: {exc}")

    farm.clear_faults()
    farm = farm.reload()
    print(f"farm {farm.name}: {sum(injected.values())} faults in {args.minutes:g} min (seed {args.seed})")
    for kind, *_ in menu:
        per_camera = [injected[kind, camera] for camera in range(cameras)]
        print(f"  {kind:10} {sum(per_camera):4}  per camera: {per_camera}")
    for line in refused:
        print(f"  refused: {line}")
    if len(farm.cameras) != cameras:
        print(f"FAIL: {cameras - len(farm.cameras)} cameras did not come back", file=sys.stderr)
        return 1
    farm.verify_frames()
    print(f"all {cameras} cameras stream their own codes again")
    return 0


if __name__ == "__main__":
    sys.exit(main())
