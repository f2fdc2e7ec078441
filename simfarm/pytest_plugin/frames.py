"""Reading a camera's frames back in a test and checking they are its own."""

from __future__ import annotations

from ..devices.loopback.control import LoopbackConfig
from ..devices.v4l2 import capture
from ..errors import EnvironmentProblem
from ..farm import readiness
from ..farm.farm import Camera
from ..frames.code import FrameCode, decode
from ..spec import CameraSpec


def read_codes(camera: Camera, n: int = 5, *, timeout: float | None = None) -> list[FrameCode | None]:
    """The codes of the next ``n`` frames of ``camera`` (None for a frame that does not decode);
    ``timeout`` for each frame, by default 5 s (a webcam's first: a minute, see capture.luma_frames)."""
    frames = capture.luma_frames(camera.device, _webcam(camera), count=n, timeout=timeout, strip_only=True)
    return [decode(frame.luma) for frame in frames]


def _webcam(camera: Camera) -> CameraSpec | None:
    return readiness.stream_spec(camera, camera.farm.backend)


# Frames a loopback node keeps (see devices.loopback.control): a reader may
# get that many old frames, e.g. frozen ones from before a fault was cleared.
RING = LoopbackConfig.max_buffers


def streaming_problem(camera: Camera, n: int = 3 * RING) -> str | None:
    """Why ``camera`` is not streaming its own codes, or None once it delivered
    more advancing codes in a row than its ring holds (so what a reader gets
    next is fresh). Reads at most ``n`` frames."""
    seen: list[FrameCode | None] = []
    run, last = 0, -1  # advancing codes in a row; the last sequence number of them
    try:
        for frame in capture.luma_frames(camera.device, _webcam(camera), count=n, strip_only=True):
            code = decode(frame.luma)
            seen.append(code)
            if code is None or code.camera != camera.index:
                run = 0
                continue
            run = run + 1 if run == 0 or code.sequence > last else 1
            last = code.sequence
            if run > RING:
                return None
    except (EnvironmentProblem, OSError) as exc:
        return str(exc)
    return f"{camera.device} did not stream camera {camera.index}'s codes in order: {seen}"


def assert_streaming(camera: Camera, n: int = 3 * RING) -> None:
    """Fail the test unless ``camera`` delivers its own codes, in order (see streaming_problem)."""
    problem = streaming_problem(camera, n)
    assert problem is None, problem
