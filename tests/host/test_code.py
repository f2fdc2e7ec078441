"""Frame codes without codecs: layout, API contracts and robustness to damage.

The property tests run derandomized (fixed seeds, no example database), so
every run checks the same examples.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simfarm.errors import BadInput
from simfarm.frames.code import (
    BLACK, COLUMNS, MIN_WIDTH, ROWS, SEQUENCE_WRAP, TIME_WRAP, WHITE, CodeStrip, FrameCode,
    decode, decode_rgb, elapsed_ms, rgb_to_luma, strip_height,
)

PROPERTY = settings(derandomize=True, database=None, deadline=None, max_examples=150,
                    suppress_health_check=[HealthCheck.too_slow])
REFERENCE_CELLS = {(0, 0), (0, 1), (ROWS - 1, COLUMNS - 2), (ROWS - 1, COLUMNS - 1)}

codes = st.builds(FrameCode, st.integers(0, 255), st.integers(0, SEQUENCE_WRAP - 1),
                  st.integers(0, TIME_WRAP - 1))


def cell_box(width: int, row: int, column: int) -> tuple[slice, slice]:
    """Pixels of one cell, from the documented geometry (not the module's own maps)."""
    def edge(i: int) -> int:
        return round(i * width / COLUMNS)
    return slice(edge(row), edge(row + 1)), slice(edge(column), edge(column + 1))


def stamped(code: FrameCode, width: int = 320, height: int = 240, seed: int = 0) -> np.ndarray:
    """A noise frame with ``code`` stamped on top: the busiest background there is."""
    frame = np.random.default_rng(seed).integers(0, 256, (height, width), dtype=np.uint8)
    CodeStrip(width, height).stamp(frame, code)
    return frame


# -- FrameCode -------------------------------------------------------------

def test_full_values_are_reduced_to_what_the_strip_carries() -> None:
    code = FrameCode(3, SEQUENCE_WRAP + 5, 1_712_345_678_901)
    assert (code.sequence, code.time_ms) == (5, 1_712_345_678_901 % TIME_WRAP)
    assert code == FrameCode(3, 5, 1_712_345_678_901 % TIME_WRAP)


@pytest.mark.parametrize("camera", [-1, 256])
def test_camera_out_of_range_is_bad_input(camera: int) -> None:
    with pytest.raises(BadInput, match="camera id"):
        FrameCode(camera, 0, 0)


def test_float_fields_are_rejected() -> None:
    with pytest.raises(TypeError):
        FrameCode(1, 2.0, 3)  # type: ignore[arg-type]


def test_latency_is_recovered_across_the_time_wrap() -> None:
    sent = 5 * TIME_WRAP - 30  # 30 ms before a wrap
    code = FrameCode(0, 0, sent)
    assert code.latency_ms(sent + 75.5) == 75.5
    assert code.latency_ms(sent - 4) == -4  # receiver's clock slightly behind
    assert code.latency_ms(sent + TIME_WRAP / 2 - 1) == TIME_WRAP / 2 - 1


def test_elapsed_is_signed_and_wrap_invariant() -> None:
    assert elapsed_ms(TIME_WRAP - 10, 5) == 15
    assert elapsed_ms(5, TIME_WRAP - 10) == -15
    assert elapsed_ms(123 + 7 * TIME_WRAP, 223) == 100


# -- geometry and rendering ---------------------------------------------------

@pytest.mark.parametrize(("width", "height"), [(320, 30), (1280, 120), (1920, 180), (64, 6), (100, 9)])
def test_strip_height_is_three_cell_rows(width: int, height: int) -> None:
    assert strip_height(width) == height == round(3 * width / 32)
    assert CodeStrip(width, 1080).height == height


def test_render_draws_the_documented_cells() -> None:
    code = FrameCode(0xA5, 0x12345678, 0xABCDE)
    strip = CodeStrip(1280, 720).render(code)
    assert strip.shape == (120, 1280) and strip.dtype == np.uint8
    assert set(np.unique(strip)) == {BLACK, WHITE}
    cells = {(r, c): strip[cell_box(1280, r, c)] for r in range(ROWS) for c in range(COLUMNS)}
    assert all(len(np.unique(pixels)) == 1 for pixels in cells.values())
    bits = [int(cells[rc][0, 0] == WHITE) for rc in sorted(cells) if rc not in REFERENCE_CELLS]
    word = int("".join(map(str, bits)), 2)
    assert word >> 32 == (0xA5 << 52) | (0x12345678 << 20) | 0xABCDE
    assert word & 0xFFFFFFFF == code.check
    assert [cells[rc][0, 0] for rc in sorted(REFERENCE_CELLS)] == [WHITE, BLACK, WHITE, BLACK]


def test_stamp_writes_only_the_strip_and_into_strided_views() -> None:
    code = FrameCode(1, 2, 3)
    frame = np.full((240, 640), 77, np.uint8)  # every other byte is luma, as in YUYV
    CodeStrip(320, 240).stamp(frame[:, ::2], code)
    assert np.array_equal(frame[:30, ::2], CodeStrip(320, 240).render(code))
    assert (frame[:30, 1::2] == 77).all() and (frame[30:] == 77).all()
    assert decode(frame[:, ::2]) == code


def test_renders_are_independent_arrays() -> None:
    strip = CodeStrip(320, 240)
    first = strip.render(FrameCode(1, 1, 1))
    kept = first.copy()
    strip.render(FrameCode(2, 2, 2))
    assert np.array_equal(first, kept)


@pytest.mark.parametrize(("width", "height", "match"), [
    (MIN_WIDTH - 2, 240, "too narrow"), (320, 29, "no room"),
])
def test_strip_refuses_frames_it_cannot_fit(width: int, height: int, match: str) -> None:
    with pytest.raises(BadInput, match=match):
        CodeStrip(width, height)


@pytest.mark.parametrize("shape", [(240, 322), (29, 320), (240, 320, 3)])
def test_stamp_refuses_mismatched_planes(shape: tuple[int, ...]) -> None:
    with pytest.raises(BadInput, match="cannot stamp"):
        CodeStrip(320, 240).stamp(np.zeros(shape, np.uint8), FrameCode(0, 0, 0))


# -- decoding -------------------------------------------------------------------

@PROPERTY
@given(code=codes, width=st.integers(MIN_WIDTH // 2, 960).map(lambda half: 2 * half),
       extra_rows=st.integers(0, 64), seed=st.integers(0, 2**16))
def test_clean_frames_round_trip_at_any_width(code: FrameCode, width: int, extra_rows: int,
                                              seed: int) -> None:
    assert decode(stamped(code, width, strip_height(width) + extra_rows, seed)) == code


@PROPERTY
@given(code=codes, width=st.integers(160, 960).map(lambda half: 2 * half),
       factor=st.floats(0.5, 2.5))
def test_any_scale_factor_decodes(code: FrameCode, width: int, factor: float) -> None:
    frame = stamped(code, width, width * 3 // 4)
    size = (max(round(width * factor), 1), max(round(width * 3 // 4 * factor), 1))
    scaled = cv2.resize(frame, size, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR)
    assert decode(scaled) == code


def test_decode_rgb_uses_limited_range_luma() -> None:
    code = FrameCode(9, 99, 999)
    rgb = np.zeros((240, 320, 3), np.uint8)
    rgb[:30] = np.where(CodeStrip(320, 240).render(code)[..., None] == WHITE, 255, 0)
    assert decode_rgb(rgb) == code
    assert rgb_to_luma(np.array([[[0, 0, 0], [255, 255, 255], [0, 255, 0]]], np.uint8)).tolist() == \
        [[16, 235, 145]]


@pytest.mark.parametrize("bad", [np.zeros((240,), np.uint8), np.zeros((240, 320, 3), np.uint8)])
def test_decode_refuses_non_planes(bad: np.ndarray) -> None:
    with pytest.raises(BadInput):
        decode(bad)


def _frames_without_codes() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    column = np.arange(320)
    cell = (column * COLUMNS // 320)[None, :] + (np.arange(240) * COLUMNS // 320)[:, None]
    bars = np.array([180, 162, 131, 112, 84, 65, 35], np.uint8)  # 75 % colour bars' luma
    return {
        "black": np.full((240, 320), BLACK, np.uint8),
        "green (all Y 0)": np.zeros((240, 320), np.uint8),
        "white": np.full((240, 320), WHITE, np.uint8),
        "noise": rng.integers(0, 256, (240, 320), dtype=np.uint8),
        "gradient": np.broadcast_to((column * 255 // 319).astype(np.uint8), (240, 320)).copy(),
        "colour bars": np.broadcast_to(bars[column * 7 // 320], (240, 320)).copy(),
        # Passes the reference-cell check by construction, so only the CRC stops it.
        "cell-aligned checkerboard": np.where(cell % 2 == 0, WHITE, BLACK).astype(np.uint8),
        "too narrow": np.full((240, MIN_WIDTH - 1), WHITE, np.uint8),
        "shorter than the strip": stamped(FrameCode(1, 1, 1))[:29],
    }


@pytest.mark.parametrize("name", list(_frames_without_codes()))
def test_frames_without_a_code_decode_to_none(name: str) -> None:
    assert decode(_frames_without_codes()[name]) is None


def flip(frame: np.ndarray, cells: list[tuple[int, int]]) -> np.ndarray:
    out = frame.copy()
    for row, column in cells:
        box = cell_box(frame.shape[1], row, column)
        out[box] = BLACK + WHITE - out[box]
    return out


ALL_CELLS = [(r, c) for r in range(ROWS) for c in range(COLUMNS)]


def test_every_single_and_double_cell_flip_is_caught() -> None:
    frame = stamped(FrameCode(200, 0xDEADBEEF, 0x54321), width=128, height=12)
    assert decode(frame) is not None
    pairs = [[a, b] for i, a in enumerate(ALL_CELLS) for b in ALL_CELLS[i + 1:]]
    assert all(decode(flip(frame, cells)) is None for cells in [[c] for c in ALL_CELLS] + pairs)


@PROPERTY
@given(code=codes, cells=st.lists(st.sampled_from(ALL_CELLS), min_size=1, max_size=96, unique=True))
def test_flipped_cells_never_decode(code: FrameCode, cells: list[tuple[int, int]]) -> None:
    # Flipped cells are clean black or white, so nothing but the check bits stand
    # between them and a wrong code: up to 7 flips are caught by construction.
    assert decode(flip(stamped(code), cells)) is None


def _add_noise(frame: np.ndarray, rng: np.random.Generator, level: int) -> np.ndarray:
    return np.clip(frame + rng.normal(0, level, frame.shape), 0, 255).astype(np.uint8)


def _garbage_rectangle(frame: np.ndarray, rng: np.random.Generator, level: int) -> np.ndarray:
    out = frame.copy()
    y0, x0 = rng.integers(0, 40), rng.integers(0, 320)
    y1, x1 = y0 + 1 + rng.integers(0, 40), x0 + 1 + rng.integers(0, 320)
    patch = out[y0:y1, x0:x1]
    patch[:] = rng.integers(0, 256, patch.shape) if level % 2 else level
    return out


def _shift_rows(frame: np.ndarray, rng: np.random.Generator, level: int) -> np.ndarray:
    shift = 1 + level % 40
    return np.roll(frame, shift if rng.integers(0, 2) else -shift, axis=0)


def _shift_columns(frame: np.ndarray, rng: np.random.Generator, level: int) -> np.ndarray:
    shift = 1 + level % 40
    return np.roll(frame, shift if rng.integers(0, 2) else -shift, axis=1)


def _truncate(frame: np.ndarray, rng: np.random.Generator, level: int) -> np.ndarray:
    return frame[: rng.integers(0, 60)] if level % 2 else frame[:, : rng.integers(0, 320)]


CORRUPTIONS = [_add_noise, _garbage_rectangle, _shift_rows, _shift_columns, _truncate]


@PROPERTY
@given(code=codes, corruptions=st.lists(st.sampled_from(CORRUPTIONS), min_size=1, max_size=3),
       seed=st.integers(0, 2**32 - 1), level=st.integers(0, 255))
def test_damaged_frames_give_the_right_code_or_none(code: FrameCode, corruptions: list,
                                                    seed: int, level: int) -> None:
    rng = np.random.default_rng(seed)
    frame = stamped(code, seed=seed)
    for corrupt in corruptions:
        frame = corrupt(frame, rng, level)
    assert decode(frame) in (None, code)
