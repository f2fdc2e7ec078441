"""The fault catalogue: parsing, validation messages, descriptions, durations."""

from __future__ import annotations

from fractions import Fraction

import pytest

from simfarm.errors import BadInput
from simfarm.faults import KINDS, FaultSpec, Role, describe, parse_duration
from simfarm.spec import PixelFormat, Size


@pytest.mark.parametrize(("text", "duration", "kind", "params", "seconds"), [
    ("drop frames=10", None, "drop", {"frames": 10}, None),
    ("drop rate=0.1", "2s", "drop", {"rate": 0.1}, 2.0),
    ("noise", None, "noise", {"amount": 0.25}, None),
    ("noise 0.5", "500ms", "noise", {"amount": 0.5}, 0.5),
    ("bitflip rate=0.001 frames=3", None, "bitflip", {"rate": 0.001, "frames": 3}, None),
    ("tear 100", None, "tear", {"row": 100}, None),
    ("stripe 10-19 style=shift", None, "stripe", {"rows": (10, 19), "style": "shift"}, None),
    ("stripe", None, "stripe", {"style": "garbage"}, None),
    ("jitter 20", "1m", "jitter", {"ms": 20}, 60.0),
    ("fps value=30000/1001", None, "fps", {"value": Fraction(30000, 1001)}, None),
    ("resize 640x480", "5s", "resize", {"size": Size(640, 480)}, 5.0),
    ("reformat i420", None, "reformat", {"format": PixelFormat.YU12}, None),
    ("unplug", "3s", "unplug", {}, 3.0),
    ("replug", None, "replug", {}, None),
    ("freeze frames=7", None, "freeze", {"frames": 7}, None),
])
def test_valid_faults_parse_with_defaults_filled_in(text, duration, kind, params, seconds):
    spec = FaultSpec.parse(text, duration=duration)
    assert (spec.kind, dict(spec.params), spec.duration_s) == (kind, params, seconds)
    # The scenario file's mapping form and the JSON form mean the same fault.
    assert FaultSpec.from_mapping({"kind": kind, **spec.to_json()["params"]}, duration=duration) == spec
    assert FaultSpec.parse(text.split(), duration=duration) == spec


@pytest.mark.parametrize(("text", "duration", "message"), [
    ("", None, "no fault given"),
    ("dorp", None, "unknown fault 'dorp' (known: unplug, replug, stall"),
    ("drop frame=1", None, "drop: unknown parameter 'frame' (known: frames, rate)"),
    ("drop rate=0", None, "drop: rate: 0 is outside (0, 1]"),
    ("drop rate=1.5", None, "drop: rate: 1.5 is outside (0, 1]"),
    ("drop frames=0", None, "drop: frames: 0 is outside [1, 1e+09]"),
    ("drop frames=2.5", None, "drop: frames: 2.5 is not an integer"),
    ("drop frames=ten", None, "drop: frames: 'ten' is not an integer"),
    ("drop 5", None, "drop takes no bare value, got '5'"),
    ("noise 0", None, "noise: amount: 0 is outside (0, 1]"),
    ("noise rate=0.1", None, "noise: unknown parameter 'rate' (known: amount, frames)"),
    ("noise 0.1 0.2", None, "noise: amount is given twice"),
    ("bitflip 0.7", None, "bitflip: rate: 0.7 is outside (0, 0.5]"),
    ("tear 0", None, "tear: row: 0 is outside [1, 8191]"),
    ("stripe 20-10", None, "stripe: rows: '20-10' is not a row range FIRST-LAST"),
    ("stripe style=wavy", None, "stripe: style: 'wavy' is not one of garbage, shift"),
    ("jitter", None, "jitter: parameter 'ms' is required"),
    ("jitter 20000", None, "jitter: ms: 20000 is outside (0, 10000]"),
    ("fps 0", None, "fps: value: fps 0 must be > 0 and <= 1000"),
    ("resize 641x480", None, "resize: size: size 641x480 must have even width and height"),
    ("reformat H264", None, "reformat: format: unknown pixel format 'H264'"),
    ("replug", "2s", "replug is instantaneous: it takes no duration"),
    ("unplug frames=3", None, "unplug: unknown parameter 'frames' (known: none)"),
    ("stall", "0s", "for '0s' must be a positive, finite duration"),
    ("stall", "soon", "for 'soon' is not a duration (e.g. 500ms, 2s, 1m, 1h)"),
])
def test_bad_faults_are_refused_with_one_clear_line(text, duration, message):
    with pytest.raises(BadInput) as caught:
        FaultSpec.parse(text, duration=duration)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_a_mapping_needs_a_kind():
    with pytest.raises(BadInput, match="needs a 'kind'"):
        FaultSpec.from_mapping({"frames": 3})


@pytest.mark.parametrize(("value", "seconds"), [
    (2, 2.0), (0.5, 0.5), ("500ms", 0.5), ("2s", 2.0), ("1.5s", 1.5), ("1m", 60.0), ("1h", 3600.0),
    ("3", 3.0), (" 250 ms ", 0.25), (".5s", 0.5),
])
def test_durations(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["", "2 days", "-1s", "1e3s", True, None, [1], 0, "0ms", float("inf")])
def test_bad_durations(value):
    with pytest.raises(BadInput, match="duration"):
        parse_duration(value, "duration")


def test_zero_is_a_duration_only_where_allowed():
    assert parse_duration("0s", allow_zero=True) == 0.0


def test_every_kind_documents_its_observable_effect_and_parameters():
    text = describe()
    for kind in KINDS.values():
        assert kind.describe() in text and kind.effect in kind.describe()
        for param in kind.params.values():
            assert param.doc in kind.describe()
    assert describe("jitter").startswith("jitter ms=MS [frames=FRAMES] [--for DURATION]")
    with pytest.raises(BadInput, match="unknown fault"):
        describe("nope")


VIVID_KINDS = {"disconnect", "buffer-error", "drop-buffers", "reqbufs-error", "qbuf-error", "streamon-error",
               "fatal-error", "wrap-sequence", "wrap-timestamp"}


def test_device_level_kinds_are_marked_for_the_supervisor():
    device = {name for name, kind in KINDS.items() if kind.device_level}
    assert device == {"unplug", "replug", "resize", "reformat", "reenumerate", "bus-reset"} | VIVID_KINDS
    assert FaultSpec.parse("resize 320x240").device_level
    assert FaultSpec.parse("drop").role is Role.SEQUENCE and not FaultSpec.parse("drop").device_level


def test_a_spec_reads_as_the_command_that_makes_it():
    assert str(FaultSpec.parse("stripe 10-19", duration="1500ms")) == "stripe rows=10-19 style=garbage for 1.5s"
    assert str(FaultSpec.parse("drop frames=3", duration=0.25)) == "drop frames=3 for 250ms"


STREAM_KINDS = {"kick", "publisher-loss", "bitstream-noise", "latency", "bandwidth", "reset", "timeout"}


def test_each_kind_names_the_backends_that_can_do_it():
    assert {name for name, kind in KINDS.items() if kind.backends == {"vivid"}} == VIVID_KINDS
    assert {name for name, kind in KINDS.items() if kind.backends == {"uvc"}} == {"reenumerate", "bus-reset"}
    # A webcam's reader picks the format, and only loopback farms publish.
    assert {name for name, kind in KINDS.items() if kind.backends == {"loopback"}} == \
        {"resize", "reformat"} | STREAM_KINDS
    produced = set(KINDS) - VIVID_KINDS - STREAM_KINDS - {"resize", "reformat", "reenumerate", "bus-reset"}
    assert produced >= {"unplug", "replug", "stall", "drop", "noise"}
    assert all(KINDS[name].backends == {"loopback", "uvc"} for name in produced)
    assert describe("disconnect").startswith("disconnect [--for DURATION]    [vivid backend]")
    assert "[loopback/uvc backend]" in describe("noise").splitlines()[0]


@pytest.mark.parametrize(("kind", "backend", "message"), [
    ("disconnect", "loopback", "disconnect needs the vivid backend (provision --backend vivid); "
                               "camera 0 of farm x is loopback"),
    ("noise", "vivid", "noise needs the loopback or uvc backend (provision --backend loopback); "
                       "camera 0 of farm x is vivid"),
    ("unplug", "vivid", "unplug needs the loopback or uvc backend"),
    ("resize", "uvc", "resize needs the loopback backend"),
    ("reenumerate", "loopback", "reenumerate needs the uvc backend"),
])
def test_a_kind_is_refused_on_a_backend_that_cannot_do_it(kind, backend, message):
    with pytest.raises(BadInput) as caught:
        KINDS[kind].require_backend(backend, "camera 0 of farm x")
    assert str(caught.value).startswith(message)
    KINDS[kind].require_backend(next(iter(KINDS[kind].backends)), "camera 0 of farm x")


@pytest.mark.parametrize(("text", "duration", "kind", "params", "seconds"), [
    ("disconnect", "2s", "disconnect", {}, 2.0),
    ("drop-buffers 50", None, "drop-buffers", {"percent": 50}, None),
    ("wrap-timestamp", None, "wrap-timestamp", {"bits": 64}, None),
    ("wrap-timestamp 32", None, "wrap-timestamp", {"bits": 32}, None),
    ("buffer-error", None, "buffer-error", {}, None),
])
def test_vivid_faults_parse(text, duration, kind, params, seconds):
    spec = FaultSpec.parse(text, duration=duration)
    assert (spec.kind, dict(spec.params), spec.duration_s) == (kind, params, seconds)


@pytest.mark.parametrize(("text", "duration", "message"), [
    ("drop-buffers", None, "drop-buffers: parameter 'percent' is required"),
    ("drop-buffers 0", None, "drop-buffers: percent: 0 is outside [1, 100]"),
    ("drop-buffers 101", None, "drop-buffers: percent: 101 is outside [1, 100]"),
    ("wrap-timestamp 16", None, "wrap-timestamp: bits: 16 is not 32 or 64"),
    ("streamon-error", "1s", "streamon-error is instantaneous"),
    ("buffer-error frames=3", None, "buffer-error: unknown parameter 'frames'"),
])
def test_bad_vivid_faults_are_one_line(text, duration, message):
    with pytest.raises(BadInput) as caught:
        FaultSpec.parse(text, duration=duration)
    assert str(caught.value).startswith(message)
def test_stream_kinds_are_neither_frame_nor_device_faults():
    stream = {name for name, kind in KINDS.items() if kind.role is Role.STREAM}
    assert stream == {"kick", "publisher-loss", "bitstream-noise", "latency", "bandwidth", "reset", "timeout"}
    for name in stream:
        assert not KINDS[name].frame_level and not KINDS[name].device_level
        assert "frames" not in KINDS[name].params  # a stream fault does not count camera frames
    assert all(kind.frame_level for kind in KINDS.values() if kind.role not in (Role.STREAM, Role.DEVICE))


@pytest.mark.parametrize(("text", "duration", "params", "seconds"), [
    ("kick", None, {"who": "readers"}, None),
    ("kick all", None, {"who": "all"}, None),
    ("publisher-loss", "3s", {}, 3.0),
    ("bitstream-noise 200", None, {"amount": 200}, None),
    ("latency 250 jitter=20", "1s", {"ms": 250, "jitter": 20}, 1.0),
    ("bandwidth 64", None, {"rate": 64}, None),
    ("reset", None, {"after": 0}, None),
    ("reset after=4096", None, {"after": 4096}, None),
    ("timeout", "2s", {"ms": 0}, 2.0),
])
def test_stream_kinds_parse(text, duration, params, seconds):
    spec = FaultSpec.parse(text, duration=duration)
    assert (dict(spec.params), spec.duration_s) == (params, seconds)


@pytest.mark.parametrize(("text", "duration", "message"), [
    ("kick", "1s", "kick is instantaneous"),
    ("kick some", None, "'some' is not one of readers, all"),
    ("latency", None, "ms"),
    ("bandwidth 0", None, "outside"),
    ("reset after=-1", None, "outside"),
    ("bitstream-noise 0.5", None, "not an integer"),
    ("publisher-loss frames=3", None, "unknown parameter 'frames'"),
])
def test_stream_kinds_refuse_bad_parameters(text, duration, message):
    with pytest.raises(BadInput, match=message):
        FaultSpec.parse(text, duration=duration)
