"""Validated values that describe a camera: size, rate, pixel format.

Parsing lives here so the CLI, farm files and the Python API reject bad input
with the same one-line messages.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from fractions import Fraction

from .errors import BadInput

MAX_DIMENSION = 8192


@dataclass(frozen=True)
class Size:
    width: int
    height: int

    def __post_init__(self) -> None:
        for name, value in (("width", self.width), ("height", self.height)):
            if not 1 <= value <= MAX_DIMENSION:
                raise BadInput(f"{name} {value} is out of range 1..{MAX_DIMENSION}")
        # Every format we write subsamples chroma by 2 at most.
        if self.width % 2 or self.height % 2:
            raise BadInput(f"size {self} must have even width and height")

    def __str__(self) -> str:
        return f"{self.width}x{self.height}"

    @classmethod
    def parse(cls, text: str | Size) -> Size:
        if isinstance(text, Size):
            return text
        parts = str(text).lower().split("x")
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise BadInput(f"size {text!r} is not WxH (e.g. 640x480)")
        return cls(int(parts[0]), int(parts[1]))


def parse_fps(value: str | float | int | Fraction) -> Fraction:
    """A positive frame rate; accepts 30, 29.97, '30000/1001'."""
    try:
        fps = Fraction(str(value)).limit_denominator(1001)
    except (ValueError, ZeroDivisionError):
        raise BadInput(f"fps {value!r} is not a number") from None
    if fps <= 0 or fps > 1000:
        raise BadInput(f"fps {value} must be > 0 and <= 1000")
    return fps


class PixelFormat(enum.Enum):
    """Formats the producers write; values are V4L2 fourcc strings."""

    YUYV = "YUYV"
    UYVY = "UYVY"
    NV12 = "NV12"
    YU12 = "YU12"  # also known as I420
    GREY = "GREY"
    RGB24 = "RGB3"
    BGR24 = "BGR3"
    MJPEG = "MJPG"

    @property
    def fourcc(self) -> int:
        """The kernel's little-endian fourcc integer (the inverse of :meth:`from_fourcc`)."""
        return int.from_bytes(self.value.encode(), "little")

    @classmethod
    def from_fourcc(cls, code: int) -> PixelFormat:
        """From the kernel's little-endian fourcc integer."""
        text = code.to_bytes(4, "little").decode(errors="replace")
        try:
            return cls(text)
        except ValueError:
            raise BadInput(f"pixel format {text!r} is not one simfarm reads") from None

    @classmethod
    def parse(cls, text: str | PixelFormat) -> PixelFormat:
        if isinstance(text, PixelFormat):
            return text
        key = str(text).upper()
        aliases = {"I420": "YU12", "YUV420": "YU12", "GRAY": "GREY", "MJPG": "MJPEG",
                   "RGB3": "RGB24", "BGR3": "BGR24", "YUV422": "YUYV"}
        key = aliases.get(key, key)
        try:
            return cls[key]
        except KeyError:
            names = ", ".join(f.name for f in cls)
            raise BadInput(f"unknown pixel format {text!r} (known: {names})") from None


PRODUCERS = ("numpy", "ffmpeg")
# What the kernel allows: 256 video minors (v4l2loopback adds devices at run time up to them).
MAX_CAMERAS = 256
# How a camera's node comes to exist: v4l2loopback (simfarm writes every frame), the
# kernel's vivid test driver (it draws its own frames; true disconnect, driver-level errors),
# or a USB webcam on the virtual USB bus, driven by uvcvideo (simfarm answers as the device).
BACKENDS = ("loopback", "vivid", "uvc")


def parse_backend(value: object) -> str:
    if value not in BACKENDS:
        raise BadInput(f"backend {value!r} is not one of {', '.join(BACKENDS)}")
    return str(value)


@dataclass(frozen=True)
class CameraSpec:
    """What one simulated camera should look like.

    ``producer="numpy"`` replays a pre-rendered pattern; ``"ffmpeg"`` takes
    frames from FFmpeg's ``source`` (a lavfi graph such as ``testsrc2`` or a
    file path). Both stamp the frame code. ``profile`` (uvc backend only) names
    the USB webcam's camera profile, or a profile file; size, fps and format
    are then the stream simfarm's own checks ask of it, one the profile offers.
    """

    size: Size = Size(640, 480)
    fps: Fraction = Fraction(30)
    format: PixelFormat = PixelFormat.YUYV
    pattern: str = "smpte75"
    producer: str = "numpy"
    source: str = "testsrc2"
    profile: str | None = None

    @classmethod
    def parse(cls, **fields: object) -> CameraSpec:
        """Build from loose values (CLI strings, YAML), validating each."""
        known = {"size", "fps", "format", "pattern", "producer", "source", "profile"}
        unknown = set(fields) - known
        if unknown:
            raise BadInput(f"unknown camera setting {sorted(unknown)[0]!r} (known: {', '.join(sorted(known))})")
        spec = cls()
        values = {
            "size": Size.parse(fields.get("size", spec.size)),  # type: ignore[arg-type]
            "fps": parse_fps(fields.get("fps", spec.fps)),  # type: ignore[arg-type]
            "format": PixelFormat.parse(fields.get("format", spec.format)),  # type: ignore[arg-type]
            "pattern": str(fields.get("pattern", spec.pattern)),
            "producer": str(fields.get("producer", spec.producer)),
            "source": str(fields.get("source", spec.source)),
            "profile": None if fields.get("profile") is None else str(fields["profile"]),
        }
        if values["producer"] not in PRODUCERS:
            raise BadInput(f"producer {values['producer']!r} is not one of {', '.join(PRODUCERS)}")
        return cls(**values)  # type: ignore[arg-type]

    def to_json(self) -> dict:
        fields = {"size": str(self.size), "fps": str(self.fps), "format": self.format.name,
                  "pattern": self.pattern, "producer": self.producer, "source": self.source}
        return fields if self.profile is None else {**fields, "profile": self.profile}


def parse_node_numbers(value: object) -> list[int]:
    """Node numbers from '40-43', '40,41,45' or a list of ints."""
    if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return value
    text = str(value).replace(" ", "")
    try:
        if "-" in text:
            first, last = (int(p) for p in text.split("-", 1))
            if last < first:
                raise BadInput(f"node numbers {value!r}: the range ends before it starts")
            return list(range(first, last + 1))
        return [int(p) for p in text.split(",")]
    except ValueError:
        raise BadInput(f"node numbers {value!r} are not a range like 40-43 or a list like 40,41") from None
