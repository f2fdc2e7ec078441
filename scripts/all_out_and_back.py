#!/usr/bin/env python3
"""Every camera out, then every camera back: a power cut on the USB hub.

Unplugs all cameras of a farm, waits, plugs them all in again and checks
each one delivers its own codes. Prints the node numbers before and after
(they may change) and how long the way back took.

    scripts/all_out_and_back.py [--farm default] [--out 5]
"""

from __future__ import annotations

import argparse
import sys
import time

from simfarm import Farm


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--farm", default="default")
    parser.add_argument("--out", type=float, default=5.0, help="seconds every camera stays out")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds an unplug waits for readers")
    args = parser.parse_args()

    farm = Farm.attach(args.farm)
    before = [camera.device for camera in farm.cameras]
    for camera in farm.cameras:
        camera.inject("unplug", timeout=args.timeout)
    print(f"all {len(before)} cameras out: {', '.join(before)}", flush=True)
    time.sleep(args.out)
    began = time.monotonic()
    for camera in farm.cameras:
        camera.inject("replug")
    farm = farm.reload()
    farm.verify_frames()
    after = [camera.device for camera in farm.cameras]
    print(f"all {len(after)} cameras back in {time.monotonic() - began:.1f} s, streaming their codes: "
          f"{', '.join(after)}")
    return 0 if len(after) == len(before) else 1


if __name__ == "__main__":
    sys.exit(main())
