#!/usr/bin/env python3
"""A flapping camera: unplug one camera and plug it in again every T seconds.

Each cycle waits for the camera to be gone, then for it to be back and
delivering its own codes, and prints the node it came back as (the number may
change, as with real USB). Readers holding the node delay the unplug; their
pids are printed.

    scripts/flapping_camera.py [--farm default] [--camera 0] [--every 5] [--cycles 10]
"""

from __future__ import annotations

import argparse
import sys
import time

from simfarm import Farm


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--farm", default="default")
    parser.add_argument("--camera", type=int, default=0)
    parser.add_argument("--every", type=float, default=5.0, help="seconds between changes")
    parser.add_argument("--cycles", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds an unplug waits for readers")
    args = parser.parse_args()

    farm = Farm.attach(args.farm)
    for cycle in range(1, args.cycles + 1):
        camera = farm.reload().camera(args.camera)
        unplugged = camera.inject("unplug", timeout=args.timeout)
        held = unplugged.info["held_by"]
        print(f"cycle {cycle}: {unplugged.info['removed']} unplugged"
              f"{f' after readers {held} closed it' if held else ''}", flush=True)
        time.sleep(args.every)
        replugged = camera.inject("replug")
        farm = farm.reload()
        farm.verify_frames()
        print(f"cycle {cycle}: back as {replugged.info['device']}, streaming its codes", flush=True)
        time.sleep(args.every)
    return 0


if __name__ == "__main__":
    sys.exit(main())
