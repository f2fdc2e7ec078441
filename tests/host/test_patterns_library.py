"""Pattern files: every mistake is caught at load time with its line; user directories; rendering options."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import numpy as np
import pytest

from simfarm.errors import BadInput
from simfarm.patterns import GENERATORS, OVERLAYS, PatternLibrary, load_pattern
from simfarm.patterns.library import BUILTIN_DIR
from simfarm.spec import Size

SMALL = Size(64, 48)


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def load_error(path: Path) -> str:
    with pytest.raises(BadInput) as caught:
        load_pattern(path)
    return str(caught.value)


@pytest.mark.parametrize(("body", "line", "words"), [
    ("base: solid\nparams: {colour: [1, 2, 3]\n", 3, "expected ',' or '}'"),
    ("base: solid\ncolor: [1, 2, 3]\n", 2, "unknown pattern key 'color'"),
    ("description: x\nbase: fractal\n", 2, "unknown base 'fractal' (known: checkerboard, clip,"),
    ("description: no base\n", 1, "missing 'base'"),
    ("base: solid\nparams: [1, 2]\n", 2, "params is a mapping"),
    ("base: solid\nparams:\n  colour: [1, 2, 3]\n  shade: 4\n", 4, "unknown parameter 'shade' (known: colour)"),
    ("base: solid\nparams:\n  colour: [300, 0, 0]\n", 3, "colour: [300, 0, 0] is not a colour"),
    ("base: moving-ball\nparams:\n  speed: 1\n  radius: 2\n", 4, "radius: 2 is outside [0.005, 0.5]"),
    ("base: moving-ball\nparams:\n  speed: fast\n", 3, "speed: 'fast' is not a number"),
    ("base: checkerboard\nparams:\n  cell: 2.5\n", 3, "cell: 2.5 is not an integer"),
    ("base: noise\nparams:\n  mono: 1\n", 3, "mono: 1 is not true or false"),
    ("base: ramp\nparams:\n  direction: sideways\n", 3, "'sideways' is not one of horizontal, vertical"),
    ("name: bad name\nbase: solid\n", 1, "name 'bad name' is not"),
    ("base: solid\n\nparams: {}\n\nbase: ramp\n", 5, "duplicate key 'base'"),
    ("base: still\n", 1, "parameter 'file' is required"),
    ("base: still\nparams:\n  file: nowhere.png\n", 3, "nowhere.png does not exist"),
    ("base: solid\noverlays: {kind: text}\n", 2, "overlays is a list"),
    ("base: solid\noverlays:\n  - {kind: hologram}\n", 3, "unknown overlay kind 'hologram' (known: clock, text)"),
    ("base: solid\noverlays:\n  - kind: text\n    text: hi\n    position: middle\n", 5,
     "position: 'middle' is not one of"),
    ("base: solid\noverlays:\n  - text: hi\n", 3, "overlay without a kind"),
    ("base: solid\noverlays:\n  -\n    kind: text\n", 4, "parameter 'text' is required"),
    ("base: solid\noverlays:\n  - plain\n", 2, "overlay 'plain' is not a mapping"),
    ("- base: solid\n", 1, "a pattern file is a mapping"),
])
def test_malformed_files_are_refused_naming_file_and_line(tmp_path: Path, body: str, line: int, words: str) -> None:
    path = write(tmp_path, "broken.yaml", body)
    message = load_error(path)
    assert message.startswith(f"{path}:{line}: "), message
    assert words in message


def test_an_unreadable_image_is_bad_input_naming_it(tmp_path: Path) -> None:
    write(tmp_path, "fake.png", "not really a PNG")
    pattern = load_pattern(write(tmp_path, "fake.yaml", "base: still\nparams: {file: fake.png}\n"))
    with pytest.raises(BadInput, match=re.escape(str(tmp_path / "fake.png"))):
        pattern.render(SMALL, 30)


def test_asset_paths_are_relative_to_the_pattern_file(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "card.png").write_bytes((BUILTIN_DIR / "assets" / "testcard.png").read_bytes())
    pattern = load_pattern(write(tmp_path / "sub", "card.yaml", "base: still\nparams: {file: card.png}\n"))
    assert pattern.params["file"] == (tmp_path / "sub" / "card.png").resolve()


def test_unknown_pattern_name_lists_the_known_ones() -> None:
    with pytest.raises(BadInput, match=r"unknown pattern 'nope' \(known: ball, black, box, .*smpte75"):
        PatternLibrary().get("nope")


def test_user_directories_add_patterns_and_override_builtins(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    write(first, "smpte75.yaml", "description: mine\nbase: solid\nparams: {colour: [1, 2, 3]}\n")
    write(first, "red.yaml", "base: solid\nparams: {colour: '#ff0000'}\n")
    write(second, "crimson.yml", "name: red\nbase: solid\nparams: {colour: [200, 0, 20]}\n")
    library = PatternLibrary([first, str(second)])
    assert library.get("smpte75").description == "mine"
    assert np.all(library.get("smpte75").render(SMALL, 30).frames[0] == (1, 2, 3))
    assert np.all(library.get("red").render(SMALL, 30).frames[0] == (200, 0, 20))  # later directory wins
    assert set(PatternLibrary().names()) < set(library.names())


def test_two_files_with_one_name_in_a_directory_are_refused(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "name: same\nbase: solid\n")
    write(tmp_path, "b.yaml", "name: same\nbase: ramp\n")
    with pytest.raises(BadInput, match="'same' is also defined in"):
        PatternLibrary([tmp_path])


def test_a_missing_directory_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="does not exist"):
        PatternLibrary([tmp_path / "absent"])


def test_render_overrides_are_checked_like_file_params() -> None:
    solid = PatternLibrary().get("solid")
    assert np.all(solid.render(SMALL, 30, {"colour": [9, 8, 7]}).frames[0] == (9, 8, 7))
    with pytest.raises(BadInput, match="pattern solid: override colour: 'red' is not a colour"):
        solid.render(SMALL, 30, {"colour": "red"})
    with pytest.raises(BadInput, match="unknown parameter 'speed'"):
        solid.render(SMALL, 30, {"speed": 2})


def test_a_cycle_over_the_limit_is_refused_with_the_fix(tmp_path: Path) -> None:
    ball = PatternLibrary().get("ball")
    with pytest.raises(BadInput, match=r"pattern ball .* one cycle is .* s .*limit; raise speed"):
        ball.render(SMALL, 30, {"speed": 0.2})
    assert len(ball.render(SMALL, 30, {"speed": 0.2}, max_seconds=10).frames) > 60


def test_static_patterns_render_one_frame() -> None:
    assert len(PatternLibrary().get("smpte75").render("640x480", "30000/1001").frames) == 1


def test_clock_without_background_keeps_the_picture_under_it(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yaml", """
        base: ramp
        overlays:
          - {kind: clock, background: null, timezone: utc, position: center, frame_number: false}
    """)
    rendered = load_pattern(path).render(Size(320, 240), 30)
    y, x, patch = rendered.dynamic_overlays[0].patch(0, 0.0)
    under = rendered.frames[0][y:y + patch.shape[0], x:x + patch.shape[1]]
    assert (patch == under).mean() > 0.6 and (patch != under).any()
    assert np.array_equal(rendered.composed(0, 0.0)[y:y + patch.shape[0], x:x + patch.shape[1]], patch)


def test_the_pattern_readme_names_every_base_overlay_and_parameter() -> None:
    readme = (BUILTIN_DIR / "README.md").read_text()
    for kind in [*GENERATORS.values(), *OVERLAYS.values()]:
        assert f"`{kind.name}`" in readme
        for param in kind.params:
            assert f"`{param}`" in readme, f"{kind.name}.{param} is not documented"
