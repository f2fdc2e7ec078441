"""The frames CLI for real: patterns list/render and verify, through the console entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from simfarm.frames.code import decode_rgb


def simfarm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "simfarm", *args], capture_output=True, text=True, timeout=120)


def test_patterns_list_json_names_every_builtin() -> None:
    result = simfarm("patterns", "list", "--json")
    assert result.returncode == 0
    names = {p["name"] for p in json.loads(result.stdout)}
    assert len(names) >= 14 and {"smpte75", "ball", "clock", "noise", "still", "clip"} <= names


def test_render_png_carries_the_code_and_the_pattern(tmp_path: Path) -> None:
    out = tmp_path / "bars.png"
    result = simfarm("patterns", "render", "smpte75", "--size", "640x480", "--camera", "9", "-o", str(out))
    assert result.returncode == 0, result.stderr
    rgb = cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB)
    assert rgb.shape == (480, 640, 3)
    code = decode_rgb(rgb)
    assert code is not None and (code.camera, code.sequence) == (9, 0)
    # first of the seven 75% bars, sampled below the code strip: 75% white
    assert np.abs(rgb[200, 40].astype(int) - 191).max() <= 3


def test_rendered_video_with_planted_drops_is_analysed_exactly(tmp_path: Path) -> None:
    clean = tmp_path / "clean.mp4"
    assert simfarm("patterns", "render", "ball", "--size", "320x240", "--frames", "40", "--camera", "3",
                   "-o", str(clean)).returncode == 0
    # drop frames 10 and 11 with FFmpeg's select filter, re-encoding with x264 at crf 30
    damaged = tmp_path / "damaged.mp4"
    keep = "+".join(f"eq(n\\,{i})" for i in [*range(10), *range(12, 40)])
    subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(clean), "-vf",
                    f"select='{keep}',setpts=N/30/TB", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "30",
                    str(damaged)], check=True)
    report = json.loads(simfarm("verify", str(damaged), "--json").stdout)
    assert report["cameras"] == [3] and report["undecodable"] == 0
    assert report["missing"] == {"3": [10, 11]}
    assert report["received"] == 38 and report["latency_ms"] is None


@pytest.mark.parametrize("args, words", [
    (["patterns", "render", "nope", "-o", "{out}/x.png"], "unknown pattern 'nope'"),
    (["patterns", "render", "ball", "--size", "640", "-o", "{out}/x.png"], "is not WxH"),
    (["patterns", "render", "ball", "--size", "9000x480", "-o", "{out}/x.png"], "out of range"),
    (["patterns", "render", "ball", "--fps", "0", "-o", "{out}/x.png"], "fps 0"),
    (["patterns", "render", "ball", "--frames", "5", "-o", "{out}/x.png"], "video file with --frames"),
    (["patterns", "--patterns-dir", "{out}/bad", "list"], "bad.yaml:2"),
    (["verify", "{out}/missing.mp4"], "cannot read"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path: Path, args: list[str], words: str) -> None:
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "bad.yaml").write_text("base: solid\nparams: {colour: [1, 2]}\n")
    result = simfarm(*[a.format(out=tmp_path) for a in args])
    assert result.returncode == 2, result.stderr
    assert words in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.png").exists()
