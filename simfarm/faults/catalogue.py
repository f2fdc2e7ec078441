"""The fault catalogue: every kind, its parameters, what a consumer observes, and parsing.

A fault is written ``KIND [VALUE] [NAME=VALUE ...]`` on the command line
(``drop frames=10``, ``noise 0.3``, ``resize 640x480``) or as a mapping in a
scenario file (``{kind: drop, frames: 10}``); both go through the same
checks, and every mistake is a one-line :class:`BadInput`.

How long a fault lasts is common to all kinds: a duration (``--for 2s`` /
``for: 2s``), ``frames=N`` (exactly N frames affected, or N slots for stall
and fps), ``rate=P`` for drop, duplicate and reorder (each frame affected
with probability P, from a seeded generator), or until it is cleared; when
several are given the fault ends at whichever comes first.

Each kind names the backends that can carry it out: frame-level faults and
unplug/replug need simfarm's own producer (a v4l2loopback node or a uvc USB
webcam); resize/reformat and the stream faults a v4l2loopback node (a USB
webcam's reader chooses its format); disconnect-while-open and the
driver-level errors need vivid; re-enumeration and bus reset a USB webcam. A camera of another backend refuses them, naming one that can.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..errors import BadInput
from ..patterns.params import REQUIRED, Param, ParamError, choice, number, resolve
from ..spec import PixelFormat, Size, parse_fps

LOOPBACK, VIVID, UVC = frozenset({"loopback"}), frozenset({"vivid"}), frozenset({"uvc"})
PRODUCED = LOOPBACK | UVC  # simfarm's producers write every frame
from .durations import format_duration, parse_duration


class Role(enum.Enum):
    """Who carries a fault out, and at which point of a frame slot it acts."""

    DEVICE = "device"  # the supervisor: node removal, renegotiation, vivid's driver controls
    STALL = "stall"  # the slot writes nothing
    FREEZE = "freeze"  # the slot repeats the last frame written
    SEQUENCE = "sequence"  # which sequence numbers reach the wire, how often, in what order
    CONTENT = "content"  # the bytes of a freshly rendered frame
    PACING = "pacing"  # when frames are written
    STREAM = "stream"  # the farm's publisher (MediaMTX) or its TCP fault proxy: published farms only


@dataclass(frozen=True)
class Kind:
    """One entry of the catalogue.

    ``primary`` is the parameter a bare value sets (``noise 0.3`` means
    ``noise amount=0.3``); ``timed`` is False for instantaneous kinds (replug,
    vivid's one-shot error injections); ``backends`` are those that can carry it out.
    """

    name: str
    role: Role
    effect: str
    params: Mapping[str, Param] = field(default_factory=dict)
    primary: str | None = None
    timed: bool = True
    backends: frozenset[str] = PRODUCED

    @property
    def device_level(self) -> bool:
        return self.role is Role.DEVICE

    def require_backend(self, backend: str, camera: str) -> None:
        """Refuse this kind on ``camera`` (e.g. "camera 0 of farm lab") when its ``backend`` cannot do it."""
        if backend not in self.backends:
            needed = sorted(self.backends)
            raise BadInput(f"{self.name} needs the {' or '.join(needed)} backend "
                           f"(provision --backend {needed[0]}); {camera} is {backend}")
    @property
    def frame_level(self) -> bool:
        """Carried out by the camera's producer, frame slot by frame slot."""
        return self.role not in (Role.DEVICE, Role.STREAM)

    def usage(self) -> str:
        """One line: the kind and its parameters, optional ones in brackets."""
        words = [self.name]
        for name, param in self.params.items():
            word = f"{name}={name.upper()}"
            words.append(word if param.default is REQUIRED else f"[{word}]")
        if self.timed:
            words.append("[--for DURATION]")
        return " ".join(words)

    def describe(self) -> str:
        """Usage, observable effect and one line per parameter: the text behind ``simfarm fault --help``."""
        lines = [f"{self.usage()}    [{'/'.join(sorted(self.backends))} backend]", f"    {self.effect}"]
        width = max((len(name) for name in self.params), default=0)
        for name, param in self.params.items():
            default = "" if param.default in (None, REQUIRED) else f" (default {param.default})"
            lines.append(f"    {name.ljust(width)}  {param.doc}{default}")
        return "\n".join(lines)


def _adapted(parse: Callable[[Any], Any]) -> Callable[[Any, Path], Any]:
    """A Param check from one of simfarm's parsers, which raise BadInput rather than ValueError."""

    def check(value: Any, _base: Path) -> Any:
        try:
            return parse(value)
        except BadInput as exc:
            raise ValueError(str(exc)) from None

    return check


def _row_range(value: Any) -> tuple[int, int]:
    """``A-B`` (inclusive, A <= B) as a pair of row numbers."""
    first, dash, last = str(value).partition("-")
    if not (dash and first.isdigit() and last.isdigit()) or int(first) > int(last):
        raise BadInput(f"{value!r} is not a row range FIRST-LAST (e.g. 100-139)")
    return int(first), int(last)


def _optional(param: Param) -> Param:
    """``param`` with no default: absent means not given (e.g. no frame limit)."""
    return replace(param, default=None)


_FRAMES = _optional(number(1, 1, 10**9, "end after exactly this many frames affected", integer=True))
_SLOTS = replace(_FRAMES, doc="end after exactly this many frame slots")
_RATE = _optional(number(1, 0, 1, "probability that each frame is affected, drawn from a seeded generator "
                                  "(default: every frame)", low_open=True))


def _kind(name: str, role: Role, effect: str, params: Mapping[str, Param] | None = None, *,
          primary: str | None = None, timed: bool = True, backends: frozenset[str] | None = None) -> Kind:
    if backends is None:  # stream faults act on a publisher, and only loopback farms publish
        backends = LOOPBACK if role is Role.STREAM else PRODUCED
    table = dict(params or {})
    if role is Role.SEQUENCE:
        table["rate"] = _RATE
    if role not in (Role.DEVICE, Role.STREAM):
        table["frames"] = _SLOTS if role is Role.STALL or name == "fps" else _FRAMES
    return Kind(name, role, effect, MappingProxyType(table), primary, timed, backends)


def _vivid(name: str, effect: str, params: Mapping[str, Param] | None = None, *,
           primary: str | None = None, timed: bool = True) -> Kind:
    """A fault vivid carries out through one of its driver controls (see simfarm.devices.vivid)."""
    return _kind(name, Role.DEVICE, effect, params, primary=primary, timed=timed, backends=VIVID)


def _clock_bits(value: Any, _base: Path) -> int:
    if value not in (32, 64) or isinstance(value, bool):
        raise ValueError(f"{value!r} is not 32 or 64")
    return int(value)


_CATALOGUE = [
    _kind("unplug", Role.DEVICE,
          "The node disappears (udev remove); with a duration it is added again afterwards, "
          "possibly under another number, as a real USB camera would be. A uvc camera is detached "
          "from the USB bus: a reader streaming it gets ENODEV, as with a pulled cable."),
    _kind("replug", Role.DEVICE,
          "The node is added again with the same label and serial (udev add); its number may differ.",
          timed=False),
    _kind("stall", Role.STALL,
          "Nothing is written: reads block or time out. Sequence numbers resume without a gap."),
    _kind("freeze", Role.FREEZE,
          "The frame written in the fault's first slot is written again in every following slot: the "
          "frame code stops advancing (same sequence, same send time); no sequence number is lost."),
    _kind("black", Role.CONTENT,
          "Frames are replaced by black ones in the camera's format: no frame code, so a decoder "
          "counts those sequence numbers as missing."),
    _kind("green", Role.CONTENT,
          "Frames are replaced by all-zero buffers (bright green in YUV formats, black in GREY and "
          "RGB, an undecodable image in MJPEG): no frame code."),
    _kind("noise", Role.CONTENT,
          "Every byte moves by a uniform random offset of up to amount x 255: the image metric drops; "
          "the frame code either still decodes exactly (mild noise) or fails its check (amount near 1).",
          {"amount": number(0.25, 0, 1, "noise strength, as a fraction of the 0..255 range",
                            low_open=True)},
          primary="amount"),
    _kind("bitflip", Role.CONTENT,
          "Bits of the frame as written (MJPEG: the compressed bytes) flip at random: codes fail "
          "their check or decode exactly, never as another code.",
          {"rate": number(1e-4, 0, 0.5, "probability that each bit flips", low_open=True)},
          primary="rate"),
    _kind("tear", Role.CONTENT,
          "From the given row down the picture comes from the previous frame written: a horizontal "
          "tear; the frame code (top rows) stays correct while the row is below it.",
          {"row": _optional(number(1, 1, 8191, "first row taken from the previous frame (default: "
                                                 "the middle)", integer=True))},
          primary="row"),
    _kind("stripe", Role.CONTENT,
          "A band of rows is replaced by random bytes (style=garbage) or by itself shifted right by "
          "a quarter of the width (style=shift), like a partly written buffer; a band over the top "
          "rows destroys the frame code.",
          {"rows": Param(None, _adapted(_row_range), "rows FIRST-LAST, inclusive (default: an eighth "
                                                      "of the height around the middle)"),
           "style": choice("garbage", ("garbage", "shift"), "what replaces the band")},
          primary="rows"),
    _kind("drop", Role.SEQUENCE,
          "Frames are consumed but not written: a consumer sees exactly those sequence numbers missing."),
    _kind("duplicate", Role.SEQUENCE,
          "Frames are written twice back to back (same bytes, same code): those sequence numbers repeat."),
    _kind("reorder", Role.SEQUENCE,
          "A frame is held back and written after the next one, at the normal pace: "
          "..., n-1, n+1, n, n+2, ... (n counts as out of order)."),
    _kind("jitter", Role.PACING,
          "Each frame is written up to ms later than its slot (uniform, seeded, capped at half a frame "
          "period so frames never bunch): inter-frame times spread; codes carry the real send times.",
          {"ms": number(REQUIRED, 0, 10_000, "largest extra delay in ms", low_open=True)},
          primary="ms"),
    _kind("fps", Role.PACING,
          "Frames are paced at another rate (codes carry the real send times, so the sender's fps "
          "seen by a decoder changes).",
          {"value": Param(REQUIRED, _adapted(parse_fps), "the new rate: 15, 29.97 or 30000/1001")},
          primary="value"),
    _kind("resize", Role.DEVICE,
          "The stream is renegotiated to another size: readers see a format change.",
          {"size": Param(REQUIRED, _adapted(Size.parse), "the new size, WxH")},
          primary="size", backends=LOOPBACK),
    _kind("reformat", Role.DEVICE,
          "The stream is renegotiated to another pixel format: readers see a format change.",
          {"format": Param(REQUIRED, _adapted(PixelFormat.parse), "the new pixel format (e.g. MJPG)")},
          primary="format", backends=LOOPBACK),
    _kind("reenumerate", Role.DEVICE,
          "The USB webcam drops off the bus and enumerates again at once (udev remove, then add): "
          "a streaming reader gets ENODEV, and the node that comes back may have another number.",
          timed=False, backends=UVC),
    _kind("bus-reset", Role.DEVICE,
          "The host resets the webcam's USB port (USBDEVFS_RESET, as usbreset does): the USB device "
          "stays (same bus id and address), but uvcvideo lets go and binds again, so its nodes go and "
          "come back (udev remove, then add; possibly other numbers) and a streaming reader gets ENODEV.",
          timed=False, backends=UVC),
    _vivid("disconnect",
           "Every node of the camera stops answering, as a USB camera pulled out while open: a reader's "
           "next ioctl fails with ENODEV, poll reports POLLERR|POLLHUP, new opens fail with ENODEV (the "
           "node stays in /dev; no udev event). When it ends (cleared, or its duration passes) the camera "
           "comes back as soon as every reader has closed its fd: vivid reconnects only then. Refused "
           "while drop-buffers or a wrap is in force (a disconnected camera takes no setting back)."),
    _vivid("buffer-error",
           "The next buffer the driver fills is dequeued with V4L2_BUF_FLAG_ERROR set; its sequence "
           "number still counts.", timed=False),
    _vivid("drop-buffers",
           "The driver drops each buffer with this probability: a streaming reader sees gaps in the buffer "
           "sequence numbers (at 100 no buffer arrives at all).",
           {"percent": number(REQUIRED, 1, 100, "percentage of buffers dropped", integer=True)},
           primary="percent"),
    _vivid("reqbufs-error", "The next VIDIOC_REQBUFS on the camera fails (EINVAL).", timed=False),
    _vivid("qbuf-error", "The next VIDIOC_QBUF on the camera fails (EINVAL).", timed=False),
    _vivid("streamon-error", "The next VIDIOC_STREAMON on the camera fails (EINVAL).", timed=False),
    _vivid("fatal-error",
           "A reader streaming now gets a fatal queue error: its next DQBUF and QBUF fail with EIO until "
           "it stops streaming. Without a streaming reader nothing happens.", timed=False),
    _vivid("wrap-sequence",
           "A reader that starts streaming while this is in force gets buffer sequence numbers starting "
           "128 below 2^32, so they wrap to 0 after 128 frames."),
    _vivid("wrap-timestamp",
           "A reader that starts streaming while this is in force gets buffer timestamps 16 s before they "
           "wrap: bits=64 the 64-bit nanosecond clock, bits=32 a 32-bit count of seconds.",
           {"bits": Param(64, _clock_bits, "which wrap: 64 or 32")}, primary="bits"),
    _kind("kick", Role.STREAM,
          "The RTSP sessions reading the camera's MediaMTX path are disconnected (kicked through the "
          "API); they may reconnect at once. who=all kicks the publisher too: the path is unavailable "
          "until MediaMTX restarts it (about 5 s).",
          {"who": choice("readers", ("readers", "all"), "whose sessions are kicked")},
          primary="who", timed=False),
    _kind("publisher-loss", Role.STREAM,
          "The camera's publisher (MediaMTX's FFmpeg reading the node) is stopped: the path becomes "
          "unavailable and its readers are dropped; when the fault ends it is started again."),
    _kind("bitstream-noise", Role.STREAM,
          "The published H.264 packets are corrupted (FFmpeg's noise bitstream filter): readers see "
          "decoding errors and damaged pictures whose codes fail their check; the node is untouched.",
          {"amount": number(1000, 1, 10**9, "about one byte in AMOUNT of each packet is altered",
                            integer=True)},
          primary="amount"),
    _kind("latency", Role.STREAM,
          "What the server sends to readers of the camera's proxied RTSP URL arrives ms (+- jitter) late "
          "(TCP fault proxy; order kept).",
          {"ms": number(REQUIRED, 0, 600_000, "added delay in ms", low_open=True),
           "jitter": number(0, 0, 600_000, "uniform spread of the delay in ms (seeded)")},
          primary="ms"),
    _kind("bandwidth", Role.STREAM,
          "The proxied RTSP URL delivers at most rate KB/s: a high-bitrate stream falls behind.",
          {"rate": number(REQUIRED, 0, 10**7, "KB/s", low_open=True)},
          primary="rate"),
    _kind("reset", Role.STREAM,
          "Connections to the proxied RTSP URL are reset (TCP RST) after `after` more bytes to the "
          "reader (0: at once); new ones too while it is in force.",
          {"after": number(0, 0, 10**12, "bytes still delivered before the reset", integer=True)},
          primary="after"),
    _kind("timeout", Role.STREAM,
          "The proxied RTSP URL goes silent both ways; each connection is closed ms after the fault "
          "starts (or it opens), 0: kept open and silent until the fault ends.",
          {"ms": number(0, 0, 600_000, "ms until the connection is closed (0: never)")},
          primary="ms"),
]
KINDS: Mapping[str, Kind] = MappingProxyType({kind.name: kind for kind in _CATALOGUE})


def kind_of(name: object) -> Kind:
    """The catalogue entry called ``name``."""
    try:
        return KINDS[str(name)]
    except KeyError:
        raise BadInput(f"unknown fault {name!r} (known: {', '.join(KINDS)})") from None


def describe(name: str | None = None) -> str:
    """The documented effect of one kind, or of the whole catalogue."""
    kinds = [kind_of(name)] if name is not None else list(KINDS.values())
    return "\n\n".join(kind.describe() for kind in kinds)


def _scalar(text: str) -> int | float | str:
    """A command-line value typed as the same value in YAML would be (``10``, ``0.5``, ``640x480``)."""
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            continue
    return text


def _jsonable(value: Any) -> Any:
    if isinstance(value, PixelFormat):
        return value.name
    if isinstance(value, tuple):  # a row range
        return f"{value[0]}-{value[1]}"
    if isinstance(value, int | float | str):
        return value
    return str(value)  # Size, Fraction


@dataclass(frozen=True)
class FaultSpec:
    """A validated fault: kind, parameters (defaults filled in, absent optional ones omitted), duration."""

    kind: str
    params: Mapping[str, Any]
    duration_s: float | None = None

    @classmethod
    def build(cls, kind: str, given: Mapping[str, Any], duration: object = None) -> FaultSpec:
        """Check ``given`` parameters (already typed) and ``duration`` (seconds or ``2s``)."""
        info = kind_of(kind)
        try:
            values = resolve(info.params, given, Path("."))
        except ParamError as exc:
            raise BadInput(f"{info.name}: {exc}") from None
        seconds = None
        if duration is not None:
            if not info.timed:
                raise BadInput(f"{info.name} is instantaneous: it takes no duration")
            seconds = parse_duration(duration, "for")
        kept = {name: value for name, value in values.items() if value is not None}
        return cls(info.name, MappingProxyType(kept), seconds)

    @classmethod
    def parse(cls, words: str | Sequence[str], *, duration: object = None) -> FaultSpec:
        """From ``"drop frames=10"`` or ``["noise", "0.3"]``; values are typed as in YAML."""
        tokens = words.split() if isinstance(words, str) else list(words)
        if not tokens:
            raise BadInput(f"no fault given (known: {', '.join(KINDS)})")
        info = kind_of(tokens[0])
        given: dict[str, Any] = {}
        for token in tokens[1:]:
            name, equals, value = token.partition("=")
            if not equals:
                if info.primary is None:
                    raise BadInput(f"{info.name} takes no bare value, got {token!r} (usage: {info.usage()})")
                name, value = info.primary, token
            if name in given:
                raise BadInput(f"{info.name}: {name} is given twice")
            given[name] = _scalar(value)
        return cls.build(info.name, given, duration)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, duration: object = None) -> FaultSpec:
        """From ``{"kind": "noise", "amount": 0.3}`` (a scenario file's form)."""
        if "kind" not in data:
            raise BadInput(f"a fault mapping needs a 'kind' (known: {', '.join(KINDS)})")
        given = {name: value for name, value in data.items() if name != "kind"}
        return cls.build(data["kind"], given, duration)

    @property
    def info(self) -> Kind:
        return KINDS[self.kind]

    @property
    def role(self) -> Role:
        return self.info.role

    @property
    def device_level(self) -> bool:
        """True for faults the supervisor carries out (unplug, replug, resize, reformat)."""
        return self.info.device_level

    @property
    def frame_level(self) -> bool:
        """True for faults the camera's producer carries out (neither device nor stream faults)."""
        return self.info.frame_level

    @property
    def frames(self) -> int | None:
        return self.params.get("frames")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind,
                               "params": {name: _jsonable(value) for name, value in self.params.items()}}
        if self.duration_s is not None:
            out["for_s"] = self.duration_s
        return out

    def __str__(self) -> str:
        words = [self.kind, *(f"{name}={_jsonable(value)}" for name, value in self.params.items())]
        if self.duration_s is not None:
            words.append(f"for {format_duration(self.duration_s)}")
        return " ".join(words)
