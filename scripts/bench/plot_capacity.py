#!/usr/bin/env python3
"""Draw bench_capacity.py's figures as a PNG: late frames (%) against cameras, simfarm, FFmpeg-per-camera, the floor.

    scripts/bench/plot_capacity.py capacity.json -o docs/capacity.png

The y axis is the share of frame slots not served on time: late or dropped
for simfarm and the floor, the shortfall of frames written for FFmpeg (see
bench_capacity.py).
Both axes are logarithmic (cameras 1, 2, 4, ...; 0.01 % to 100 %, values
below 0.01 drawn at 0.01); the 1 % line is the target's threshold.
Drawn with OpenCV, which simfarm already depends on.
"""

from __future__ import annotations

import argparse
import json
import math

import cv2
import numpy as np

WIDTH, HEIGHT = 900, 520
LEFT, RIGHT, TOP, BOTTOM = 80, 260, 50, 60
FLOOR, CEILING = 0.01, 100.0  # late % range drawn
INK, GRID = (40, 40, 40), (225, 225, 225)
# BGR, by (tool, size): simfarm blue, simfarm in one process green, FFmpeg red, the bare paced loop grey;
# the smaller series lighter.
COLOURS = {("simfarm", "640x480"): (180, 80, 20), ("simfarm", "320x240"): (230, 170, 110),
           ("simfarm-1proc", "640x480"): (60, 140, 40), ("simfarm-1proc", "320x240"): (140, 210, 130),
           ("ffmpeg", "640x480"): (40, 40, 200), ("ffmpeg", "320x240"): (120, 130, 240),
           ("floor", "640x480"): (90, 90, 90), ("floor", "320x240"): (170, 170, 170)}
FONT = cv2.FONT_HERSHEY_SIMPLEX


def plot(data: dict) -> np.ndarray:
    points = data["points"]
    most = max([p["cameras"] for p in points] or [1])
    span = max(1, math.ceil(math.log2(most)))
    image = np.full((HEIGHT, WIDTH, 3), 255, np.uint8)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def at(cameras: int, late: float) -> tuple[int, int]:
        x = LEFT + plot_w * math.log2(cameras) / span
        y = TOP + plot_h * (1 - (math.log10(max(late, FLOOR)) - math.log10(FLOOR)) /
                            (math.log10(CEILING) - math.log10(FLOOR)))
        return round(x), round(y)

    for k in range(span + 1):
        x, _ = at(2 ** k, FLOOR)
        cv2.line(image, (x, TOP), (x, TOP + plot_h), GRID, 1)
        _text(image, str(2 ** k), (x - 8, TOP + plot_h + 22))
    for late in (0.01, 0.1, 1, 10, 100):
        _, y = at(1, late)
        cv2.line(image, (LEFT, y), (LEFT + plot_w, y), (150, 150, 150) if late == 1 else GRID, 2 if late == 1 else 1)
        _text(image, f"{late:g}", (LEFT - 50, y + 5))
    cv2.rectangle(image, (LEFT, TOP), (LEFT + plot_w, TOP + plot_h), INK, 1)
    _text(image, "cameras", (LEFT + plot_w // 2 - 30, HEIGHT - 15))
    _text(image, "frames late or dropped %", (10, TOP - 20))
    _text(image, f"({data['where']}, {data['cpus']} CPUs, {data['seconds']:g} s per point)", (LEFT + 250, TOP - 20))
    for row, ((tool, size), colour) in enumerate(COLOURS.items()):
        line = sorted((p for p in points if p["tool"] == tool and p["size"] == size), key=lambda p: p["cameras"])
        coords = [at(p["cameras"], p["late_pct"] + p["dropped_pct"]) for p in line]
        for a, b in zip(coords, coords[1:]):
            cv2.line(image, a, b, colour, 2, cv2.LINE_AA)
        for xy in coords:
            cv2.circle(image, xy, 4, colour, -1, cv2.LINE_AA)
        if line:
            legend_y = TOP + 20 + 26 * row
            cv2.line(image, (WIDTH - RIGHT + 15, legend_y - 5), (WIDTH - RIGHT + 40, legend_y - 5), colour, 3)
            _text(image, f"{tool} {size}@{line[0]['fps']}", (WIDTH - RIGHT + 48, legend_y))
    return image


def _text(image: np.ndarray, text: str, where: tuple[int, int]) -> None:
    cv2.putText(image, text, where, FONT, 0.5, INK, 1, cv2.LINE_AA)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", help="bench_capacity.py --json output")
    parser.add_argument("-o", "--output", default="docs/capacity.png")
    args = parser.parse_args()
    with open(args.json) as source:
        image = plot(json.load(source))
    if not cv2.imwrite(args.output, image):
        raise SystemExit(f"could not write {args.output}")
    print(args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
