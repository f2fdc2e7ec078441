"""Every built-in pattern renders, and looks the way its file says, by pixel statistics."""

from __future__ import annotations

import itertools
from fractions import Fraction
from functools import cache

import cv2
import numpy as np
import pytest

from simfarm.frames import pixfmt
from simfarm.patterns import DEFAULT_MAX_SECONDS, PatternLibrary, RenderedPattern
from simfarm.patterns.library import BUILTIN_DIR
from simfarm.spec import PixelFormat, Size

SMALL, HD = Size(320, 240), Size(1280, 720)
SIZES = [SMALL, HD]
LIBRARY = PatternLibrary()
BARS75 = [(191, 191, 191), (191, 191, 0), (0, 191, 191), (0, 191, 0), (191, 0, 191), (191, 0, 0), (0, 0, 191)]


@cache
def render(name: str, size: Size, fps: int = 30) -> RenderedPattern:
    return LIBRARY.get(name).render(size, fps)


def first(name: str, size: Size) -> np.ndarray:
    return render(name, size).frames[0]


def centroid(weights: np.ndarray) -> tuple[float, float]:
    """(y, x) of the weighted centre of mass, in pixel-centre coordinates."""
    m = cv2.moments(weights.astype(np.float32))
    return m["m01"] / m["m00"], m["m10"] / m["m00"]


def test_there_are_enough_builtins_and_each_has_a_description() -> None:
    assert len(LIBRARY.names()) >= 14
    assert all(LIBRARY.get(name).description for name in LIBRARY.names())


@pytest.mark.parametrize("size", SIZES, ids=str)
@pytest.mark.parametrize("name", LIBRARY.names())
def test_every_builtin_renders_a_bounded_cycle_of_rgb_frames(name: str, size: Size) -> None:
    # 10 fps keeps the HD renders of moving patterns quick; the look tests use 30.
    rendered = render(name, size, 10)
    assert 1 <= len(rendered.frames) <= DEFAULT_MAX_SECONDS * 10
    for frame in rendered.frames:
        assert frame.shape == (size.height, size.width, 3) and frame.dtype == np.uint8
        assert frame.flags.c_contiguous
    assert rendered.nbytes == len(rendered.frames) * size.width * size.height * 3


@pytest.mark.parametrize("size", SIZES, ids=str)
def test_smpte75_bars_castellations_and_bottom_row(size: Size) -> None:
    frame = first("smpte75", size)
    bar_x = [int((i + 0.5) * size.width / 7) for i in range(7)]
    assert [tuple(frame[size.height // 3, x]) for x in bar_x] == BARS75
    castellations = [(0, 0, 191), (0, 0, 0), (191, 0, 191), (0, 0, 0), (0, 191, 191), (0, 0, 0), (191, 191, 191)]
    assert [tuple(frame[int(size.height * 17 / 24), x]) for x in bar_x] == castellations
    bottom = int(size.height * 0.9)
    centres = [(i + 0.5) * 5 / 4 for i in range(4)] + [5 + 5 / 6]  # in bar widths
    expected = [(0, 33, 76), (255, 255, 255), (50, 0, 106), (0, 0, 0), (10, 10, 10)]
    assert [tuple(frame[bottom, int(c * size.width / 7)]) for c in centres] == expected


@pytest.mark.parametrize("size", SIZES, ids=str)
def test_smpte_hd_layout(size: Size) -> None:
    frame = first("smpte-hd", size)
    bar = size.width * 3 / 4 / 7
    bar_x = [int(size.width / 8 + (i + 0.5) * bar) for i in range(7)]
    rows = [int(size.height * f) for f in (0.3, 15 / 24, 17 / 24, 0.9)]
    assert [tuple(frame[rows[0], x]) for x in bar_x] == BARS75
    assert tuple(frame[rows[0], size.width // 16]) == tuple(frame[rows[0], -size.width // 16]) == (102, 102, 102)
    assert tuple(frame[rows[1], 2]) == (0, 255, 255) and tuple(frame[rows[1], -2]) == (0, 0, 255)
    assert tuple(frame[rows[2], 2]) == (255, 255, 0) and tuple(frame[rows[2], -2]) == (255, 0, 0)
    ramp = frame[rows[2], int(size.width / 8 + bar) + 1:int(size.width / 8 + 7 * bar) - 1, 0].astype(int)
    assert np.all(np.diff(ramp) >= 0) and ramp[0] < 8 and ramp[-1] > 247
    assert tuple(frame[rows[3], 2]) == (38, 38, 38)
    assert tuple(frame[rows[3], int(size.width / 8 + 2.5 * bar)]) == (255, 255, 255)


def test_squares_are_flat_saturated_colours_in_reading_order() -> None:
    frame = first("squares", SMALL)
    centres = [frame[60 + 120 * row, 40 + 80 * col] for row in range(2) for col in range(4)]
    assert [tuple(c) for c in centres] == [(255, 255, 255), (255, 255, 0), (0, 255, 255), (0, 255, 0),
                                           (255, 0, 255), (255, 0, 0), (0, 0, 255), (0, 0, 0)]
    packed = frame.astype(np.int32) @ np.array([65536, 256, 1], np.int32)
    assert np.unique(packed).size == 8


@pytest.mark.parametrize("size", SIZES, ids=str)
def test_ramp_is_a_monotonic_grey_ramp_from_black_to_white(size: Size) -> None:
    frame = first("ramp", size).astype(int)
    assert np.all(frame == frame[:, :, :1]) and np.all(frame == frame[:1])
    row = frame[0, :, 0]
    assert row[0] == 0 and row[-1] == 255 and np.all(np.diff(row) >= 0)


def test_steps_are_eleven_flat_grey_levels_top_to_bottom() -> None:
    column = first("steps", SMALL)[:, 0, 0].astype(int)
    assert np.all(np.diff(column) >= 0)
    assert np.unique(column).tolist() == [int(i * 25.5 + 0.5) for i in range(11)]


def test_gradient_runs_from_start_to_end_colour() -> None:
    frame = first("gradient", SMALL)
    assert tuple(frame[100, 0]) == (0, 0, 255) and tuple(frame[100, -1]) == (255, 128, 0)
    assert np.all(np.diff(frame[100, :, 0].astype(int)) >= 0)


def test_vignette_is_white_in_the_middle_and_black_in_the_corners() -> None:
    frame = first("vignette", SMALL)[:, :, 0].astype(int)
    assert frame[120, 160] >= 250 and frame[0, 0] == frame[-1, -1] == 0


@pytest.mark.parametrize("size", SIZES, ids=str)
def test_checkerboard_has_the_cell_period(size: Size) -> None:
    frame = first("checkerboard", size)[:, :, 0].astype(int)
    cell = 32
    assert frame[0, 0] == 255 and frame[0, cell] == 0 and frame[cell, 0] == 0 and frame[cell, cell] == 255
    assert np.array_equal(frame[:, :-2 * cell], frame[:, 2 * cell:])
    assert np.array_equal(frame[:-2 * cell], frame[2 * cell:])
    assert np.all(frame[:, :-cell] + frame[:, cell:] == 255)


def test_pixel_checkerboard_alternates_every_pixel() -> None:
    frame = first("pixel-checkerboard", SMALL)[:, :, 0].astype(int)
    assert np.all(frame[:, :-1] + frame[:, 1:] == 255) and np.all(frame[:-1] + frame[1:] == 255)


def test_zoneplate_rings_move_and_the_cycle_closes() -> None:
    frames = render("zoneplate", SMALL).frames
    assert len(frames) == 60  # period 2 s at 30 fps
    assert frames[0][120, 160, 0] > 250  # phase 0 at the centre: peak
    assert frames[30][120, 160, 0] < 5  # half a turn later: trough
    step = np.abs(frames[1].astype(int) - frames[0]).mean()
    wrap = np.abs(frames[0].astype(int) - frames[-1]).mean()
    assert step > 1 and abs(wrap - step) < 0.1 * step  # the loop seam is just another step
    assert abs(frames[0].mean() - 127.5) < 10


# HD at 10 fps reuses the render above and keeps the test quick.
@pytest.mark.parametrize(("size", "fps"), [(SMALL, 30), (HD, 10)], ids=str)
def test_ball_moves_at_its_speed_and_loops(size: Size, fps: int) -> None:
    frames = render("ball", size, fps).frames
    # Measure above the text overlay; the ball is white (255) on 40 grey.
    centres = np.array([centroid(np.clip(f[: int(size.height * 0.85), :, 0].astype(np.float32) - 40, 0, None))
                        for f in frames])
    radius = 0.08 * size.height
    steps = np.diff(centres[:, 1])
    travelling = np.abs(centres[1:, 1] - size.width / 2) < size.width / 2 - 2 * radius - size.width / fps
    assert np.allclose(np.abs(steps[travelling]), 1.0 * size.width / fps, rtol=0.03)
    assert np.abs(np.diff(centres[:, 0])).max() > 0  # it moves vertically too
    assert np.hypot(*(centres[0] - centres[-1])) < 2 * size.width / fps  # the loop has no jump


def test_ball_carries_its_text_overlay_in_every_frame() -> None:
    for frame in render("ball", SMALL).frames:
        corner = frame[200:, 240:, 0]
        assert (corner == 0).sum() > 200 and (corner > 200).any()  # black box, white letters


def test_box_slides_horizontally_at_its_speed() -> None:
    frames = render("box", SMALL).frames
    # Orange (255, 140, 0) over blue 40: the missing blue is the box's coverage.
    centres = np.array([centroid(40 - f[:, :, 2].astype(np.float32)) for f in frames])
    assert np.allclose(centres[:, 0], 119.5, atol=0.5)
    steps = np.abs(np.diff(centres[:, 1]))
    assert np.median(steps) == pytest.approx(320 / 30, rel=0.03)


def test_noise_is_reproducible_per_seed_and_differs_across_seeds() -> None:
    pattern = LIBRARY.get("noise")
    frames = pattern.render(SMALL, 30).frames
    assert len(frames) == 8 and not np.array_equal(frames[0], frames[1])
    assert all(np.array_equal(a, b) for a, b in zip(frames, pattern.render(SMALL, 30).frames, strict=True))
    assert not np.array_equal(frames[0], pattern.render(SMALL, 30, {"seed": 2}).frames[0])
    assert abs(frames[0].mean() - 127.5) < 2


def test_solid_and_black_are_exact() -> None:
    assert np.all(first("solid", HD) == 128)
    assert not first("black", HD).any()


@pytest.mark.parametrize("size", SIZES, ids=str)
def test_still_shows_the_test_card(size: Size) -> None:
    card = cv2.imread(str(BUILTIN_DIR / "assets" / "testcard.png"))[:, :, ::-1]
    frame = first("still", size)
    picture_rows = round(size.width * card.shape[0] / card.shape[1])  # letterboxed: full width
    top = (size.height - picture_rows) // 2
    assert not frame[:max(top - 1, 0)].any() and not frame[top + picture_rows + 1:].any()
    picture = frame[top + 1:top + picture_rows - 1]
    assert np.allclose(picture.mean(axis=(0, 1)), card.mean(axis=(0, 1)), atol=3)


def test_clip_frames_change_over_time_and_loop_within_the_limit() -> None:
    frames = render("clip", SMALL, 15).frames
    assert len(frames) == 30  # the whole 2 s, 15 fps clip
    differences = [np.abs(a.astype(int) - b).mean() for a, b in itertools.pairwise(frames)]
    assert min(differences) > 0.1  # testsrc2 moves every frame
    short = LIBRARY.get("clip").render(SMALL, 15, max_seconds=1).frames
    assert len(short) == 15 and np.array_equal(short[5], frames[5])


@pytest.mark.parametrize(("fps", "count"), [(10, 20), (30, 60)])
def test_clip_is_resampled_to_the_camera_rate(fps: int, count: int) -> None:
    assert len(render("clip", SMALL, fps).frames) == count


def test_clock_patch_shows_time_and_frame_and_fits_any_raw_format() -> None:
    rendered = render("clock", HD)
    (clock,) = rendered.dynamic_overlays
    y, x, patch = clock.patch(7, 1_700_000_000.5)
    assert y % 2 == x % 2 == patch.shape[0] % 2 == patch.shape[1] % 2 == 0
    assert y + patch.shape[0] <= HD.height and x + patch.shape[1] <= HD.width and y > HD.height / 2
    assert patch.shape[0] < 0.15 * HD.height and patch.shape[1] < HD.width / 2  # small: cheap per frame
    assert (patch == 0).mean() > 0.5 and (patch > 200).any()
    assert not np.array_equal(patch, clock.patch(7, 1_700_000_001.5)[2])
    assert not np.array_equal(patch, clock.patch(8, 1_700_000_000.5)[2])
    for fmt in (PixelFormat.YUYV, PixelFormat.NV12, PixelFormat.RGB24):
        buf = pixfmt.from_rgb(rendered.frames[0], fmt)
        pixfmt.write_rgb_patch(buf, fmt, HD, y, x, patch)
        shown = pixfmt.to_rgb(buf, fmt, HD)[y:y + patch.shape[0], x:x + patch.shape[1]]
        assert np.abs(shown.astype(int) - patch).mean() < 8


def test_every_pattern_loads_with_a_fraction_fps() -> None:
    assert len(LIBRARY.get("zoneplate").render(SMALL, Fraction(30000, 1001)).frames) == 60
