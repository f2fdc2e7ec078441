#!/usr/bin/env python3
"""Render one frame of every built-in pattern into a labelled grid: patterns/gallery.png.

    python scripts/gallery.py [--out FILE] [--columns 4] [--tile 320x180]

Moving patterns show a frame a third of the way into their cycle; the clock
shows a fixed time so the image only changes when a pattern does.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from simfarm.patterns import PatternLibrary
from simfarm.spec import Size

OUT = Path(__file__).resolve().parent.parent / "patterns" / "gallery.png"
LABEL_HEIGHT = 24
FIXED_TIME = 1_700_000_000.123  # 2023-11-14 22:13:20.123 UTC


def tile(library: PatternLibrary, name: str, size: Size) -> np.ndarray:
    """One frame of ``name`` with its name written underneath (RGB)."""
    rendered = library.get(name).render(size, 30)
    frame = rendered.composed(len(rendered.frames) // 3, FIXED_TIME)
    label = np.full((LABEL_HEIGHT, size.width, 3), 24, np.uint8)
    cv2.putText(label, name, (6, LABEL_HEIGHT - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1,
                cv2.LINE_AA)
    return np.concatenate([frame, label])


def gallery(library: PatternLibrary, columns: int, size: Size) -> np.ndarray:
    tiles = [tile(library, name, size) for name in library.names()]
    blank = np.zeros_like(tiles[0])
    tiles += [blank] * (-len(tiles) % columns)
    rows = [np.concatenate(tiles[i:i + columns], axis=1) for i in range(0, len(tiles), columns)]
    return np.concatenate(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--columns", type=int, default=4)
    parser.add_argument("--tile", type=Size.parse, default=Size(320, 180))
    args = parser.parse_args()
    image = gallery(PatternLibrary(), args.columns, args.tile)
    cv2.imwrite(str(args.out), image[:, :, ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"wrote {args.out} ({image.shape[1]}x{image.shape[0]})")


if __name__ == "__main__":
    main()
