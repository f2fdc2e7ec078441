#!/usr/bin/env python3
"""Regenerate the built-in pattern assets: a synthetic test card and a short clip.

Nothing is downloaded: the card is drawn with OpenCV, the clip is FFmpeg's
own testsrc2 encoded small. Run from anywhere; writes into patterns/assets/.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import numpy as np

ASSETS = Path(__file__).resolve().parent.parent / "patterns" / "assets"
WIDTH, HEIGHT = 640, 360


def test_card() -> np.ndarray:
    """A 16:9 card (BGR): grid, centre circle, colour and grey strips, a caption."""
    card = np.full((HEIGHT, WIDTH, 3), 96, np.uint8)
    for x in range(0, WIDTH, 40):
        card[:, x] = 160
    for y in range(0, HEIGHT, 40):
        card[y, :] = 160
    bgr = [(191, 191, 191), (0, 191, 191), (191, 191, 0), (0, 191, 0), (191, 0, 191), (0, 0, 191), (191, 0, 0)]
    for i, colour in enumerate(bgr):
        x0 = 80 + i * 480 // 7
        card[80:140, x0:80 + (i + 1) * 480 // 7] = colour
    for i in range(8):
        x0 = 80 + i * 60
        card[220:280, x0:x0 + 60] = i * 255 // 7
    cv2.circle(card, (WIDTH // 2, HEIGHT // 2), 150, (255, 255, 255), 3, cv2.LINE_AA)
    cv2.line(card, (WIDTH // 2, 20), (WIDTH // 2, HEIGHT - 20), (255, 255, 255), 1)
    cv2.line(card, (20, HEIGHT // 2), (WIDTH - 20, HEIGHT // 2), (255, 255, 255), 1)
    caption = "simfarm test card"
    (text_w, text_h), baseline = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, 0.8, 2)
    left, top = (WIDTH - text_w) // 2, (HEIGHT - text_h) // 2
    card[top - 8:top + text_h + baseline + 4, left - 10:left + text_w + 10] = 0
    cv2.putText(card, caption, (left, top + text_h), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2,
                cv2.LINE_AA)
    return card


def main() -> None:
    ASSETS.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(ASSETS / "testcard.png"), test_card(), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi",
                    "-i", "testsrc2=size=320x180:rate=15:duration=2", "-c:v", "libx264", "-preset", "veryslow",
                    "-crf", "30", "-pix_fmt", "yuv420p", "-g", "30", "-movflags", "+faststart",
                    str(ASSETS / "testsrc2.mp4")], check=True)


if __name__ == "__main__":
    main()
