"""Farm files: per-camera specs, precedence, and errors that name the line."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from simfarm import backends
from simfarm.cli import main
from simfarm.errors import BadInput
from simfarm.farm import config
from simfarm.spec import PixelFormat, Size
from simfarm.state.records import farm_names


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "farm.yaml"
    path.write_text(text)
    return str(path)


def test_per_camera_specs_and_precedence(tmp_path: Path) -> None:
    plan = config.load(write(tmp_path, """\
name: lab
nodes: 40-41
patterns_dirs: [mine]
defaults: {size: 320x240, fps: 15}
cameras:
  - {pattern: ball}
  - {format: MJPEG, fps: 10}
"""))
    assert plan.name == "lab" and plan.nodes == [40, 41]
    assert plan.patterns_dirs == [str(tmp_path / "mine")]
    first, second = plan.cameras(None, {})
    assert (first.size, first.fps, first.pattern) == (Size(320, 240), Fraction(15), "ball")
    assert (second.format, second.fps) == (PixelFormat.MJPEG, Fraction(10))
    # command-line flags win over the file
    assert {c.fps for c in plan.cameras(None, {"fps": "5"})} == {Fraction(5)}


def test_count_form_and_contradiction(tmp_path: Path) -> None:
    plan = config.load(write(tmp_path, "cameras: 3\n"))
    assert len(plan.cameras(None, {})) == 3
    with pytest.raises(BadInput, match="contradicts"):
        plan.cameras(2, {})


def test_backend_and_its_default_spec(tmp_path: Path) -> None:
    plan = config.load(write(tmp_path, "backend: vivid\ncameras:\n  - {}\n  - {fps: 60, size: 320x180}\n"))
    assert plan.backend == "vivid" and config.load(write(tmp_path, "cameras: 1\n")).backend is None
    first, second = plan.cameras(None, {}, backends.get("vivid").default_spec)
    assert (first.size, first.fps) == (Size(640, 360), Fraction(30))  # vivid offers 640x480 only up to 25 fps
    assert (second.size, second.fps) == (Size(320, 180), Fraction(60))


@pytest.mark.parametrize("text, line, words", [
    ("name: lab\nbogus: 1\n", 2, "unknown farm file key 'bogus'"),
    ("cameras:\n  - {size: 320x240}\n  - fps: 0\n", 3, "fps 0"),
    ("defaults: {size: 0x0}\n", 1, "width 0"),
    ("nodes: forty\n", 1, "node numbers"),
    ("cameras: [1, 2\nname: x\n", 2, "expected"),
    ("name: a\nname: b\n", 2, "duplicate key"),
    ("cameras:\n  - {colour: red}\n", 2, "unknown camera setting 'colour'"),
    ("name: a\nbackend: vivd\n", 2, "backend 'vivd' is not one of loopback, vivid"),
    ("name: a\nworkers: -1\n", 2, "workers is a count of processes"),
    ("workers: yes\n", 1, "workers is a count of processes"),
    ("name: a\nloopback_buffers: 3\n", 2, "loopback buffers must be a whole number 4..32 (default 4), not 3"),
    ("loopback_buffers: 33\n", 1, "not 33"),
    ("loopback_buffers: yes\n", 1, "not True"),
    ("loopback_buffers: 16.0\n", 1, "not 16.0"),
    ("backend: vivid\nloopback_buffers: 16\n", 2, "loopback_buffers sizes a loopback node's ring, not a vivid"),
])
def test_errors_name_the_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(BadInput) as info:
        config.load(path)
    assert str(info.value).startswith(f"{path}:{line}:")
    assert words in str(info.value)


def test_loopback_buffers_default_and_set(tmp_path: Path) -> None:
    assert config.load(write(tmp_path, "cameras: 1\n")).loopback_buffers is None  # the node's default: 4
    assert config.load(write(tmp_path, "backend: loopback\nloopback_buffers: 32\n")).loopback_buffers == 32


def test_loopback_buffers_on_another_backend_from_the_command_line_is_refused_before_anything_is_made(
        capsys, tmp_path: Path) -> None:
    path = write(tmp_path, "loopback_buffers: 8\n")
    assert main(["provision", "--config", path, "--backend", "vivid"]) == 2
    err = capsys.readouterr().err
    assert "loopback buffers size a v4l2loopback node's ring, not a vivid camera's" in err
    assert len(err.strip().splitlines()) == 1 and farm_names() == []


@pytest.mark.parametrize("args, words", [
    (["--nodes", "3-4"], "the vivid backend cannot choose node numbers"),
    (["--pattern", "ball"], "the vivid backend draws its own test pattern"),
    (["--producer", "ffmpeg"], "the vivid backend draws its own test pattern"),
])
def test_what_vivid_cannot_do_is_refused_before_anything_is_made(capsys, args: list[str], words: str) -> None:
    assert main(["provision", "--backend", "vivid", "--cameras", "2", *args]) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1
    assert farm_names() == []


@pytest.mark.parametrize("args, words", [
    (["--nodes", "3-4"], "the uvc backend cannot choose node numbers"),
    (["--producer", "ffmpeg"], "the uvc backend feeds patterns"),
    (["--profile", "lowres", "--size", "640x480"], "profile lowres offers no YUYV 640x480@30 (it offers YUYV "
                                                   "320x240@30/15; YUYV 160x120@30; MJPEG 320x240@30)"),
    (["--profile", "lowres", "--format", "MJPEG", "--fps", "15"], "offers no MJPEG 320x240@15"),
    (["--profile", "nope"], "no camera profile 'nope' (available: generic-720p, lowres, mjpeg-1080p"),
])
def test_what_a_uvc_webcam_cannot_do_is_refused_before_anything_is_made(capsys, args: list[str], words: str) -> None:
    assert main(["provision", "--backend", "uvc", "--cameras", "2", *args]) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1
    assert farm_names() == []


def test_a_uvc_camera_defaults_to_its_profiles_first_stream_and_a_farm_file_can_name_the_profile(
        tmp_path: Path) -> None:
    plan = config.load(write(tmp_path, "backend: uvc\ncameras:\n  - {profile: lowres}\n  - {format: MJPEG}\n"))
    lowres, generic = plan.cameras(None, {}, backends.get("uvc").default_spec)
    assert (lowres.size, lowres.fps, lowres.format, lowres.profile) == (Size(320, 240), 30, PixelFormat.YUYV, "lowres")
    assert (generic.size, generic.format, generic.profile) == (Size(640, 480), PixelFormat.MJPEG, "generic-720p")


def test_a_bad_profile_file_is_one_line_naming_its_line_with_nothing_made(capsys, tmp_path: Path) -> None:
    profile = tmp_path / "cam.yaml"
    profile.write_text("vendor_id: 0x1d6b\nproduct_id: 0x0102\nmanufacturer: a\nproduct: b\nformats: []\nzoom: 3\n")
    assert main(["provision", "--backend", "uvc", "--profile", str(profile)]) == 2
    err = capsys.readouterr().err
    assert f"{profile}:6" in err and "zoom" in err and len(err.strip().splitlines()) == 1
    assert farm_names() == []


@pytest.mark.parametrize("args, words", [
    (["provision", "--nodes", "5-2"], "node numbers '5-2': the range ends before it starts"),
    (["provision", "--profile", "lowres"], "a camera profile describes a USB webcam (--backend uvc)"),
    (["teardown", "--timeout", "-1"], "-1 must be a number of seconds >= 0"),
    (["verify", "/dev/null"], "/dev/null is not a V4L2 device"),
])
def test_bad_input_is_one_line_before_any_module_or_device_is_touched(capsys, args: list[str], words: str) -> None:
    try:
        code = main(args)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1
