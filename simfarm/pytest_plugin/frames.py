"""Reading a camera's frames back in a test and checking they are its own."""

from __future__ import annotations

from ..devices import capture
from ..errors import EnvironmentProblem
from ..farm.farm import Camera
from ..frames.code import FrameCode, decode


def read_codes(camera: Camera, n: int = 5, *, timeout: float = 5.0) -> list[FrameCode | None]:
    """The codes of the next ``n`` frames of ``camera`` (None for a frame that does not decode)."""
    return [decode(frame.luma) for frame in capture.read_luma(camera.device, count=n, timeout=timeout)]


def streaming_problem(camera: Camera, n: int = 3) -> str | None:
    """Why ``camera`` is not streaming its own codes in order, or None when it is."""
    try:
        codes = read_codes(camera, n)
    except (EnvironmentProblem, OSError) as exc:
        return str(exc)
    ours = [code.sequence for code in codes if code is not None and code.camera == camera.index]
    if not ours:
        return f"{camera.device} delivered no frame of camera {camera.index} (decoded: {codes})"
    if ours != sorted(set(ours)):
        return f"{camera.device} delivered camera {camera.index}'s frames out of order: {ours}"
    return None


def assert_streaming(camera: Camera, n: int = 3) -> None:
    """Fail the test unless ``camera`` delivers its own codes, in order."""
    problem = streaming_problem(camera, n)
    assert problem is None, problem
