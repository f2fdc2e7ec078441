"""Whether cameras deliver their own frames: a few read back from each node and decoded.

Run by the supervisor once its cameras stream, before it tells the
provisioner it is ready (and, on a publishing farm, before its publishers
take the nodes: v4l2loopback lets one reader stream a node at a time, so
nobody else can read it after that); ``Farm.verify_frames`` runs it again on
request. The provisioner only waits for the verdict: this module loads what
reading needs (numpy, linuxpy) only when it reads.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

from ..devices.v4l2.frame_waits import FRAME_S, WEBCAM_FIRST_FRAME_S
from ..errors import EnvironmentProblem

if TYPE_CHECKING:
    from ..spec import CameraSpec

FRAMES = 3  # read from each camera: enough to see its codes in order


class Readable(Protocol):
    """A camera as both sides know it: its index (in its frame codes), its node and spec."""

    @property
    def index(self) -> int: ...

    @property
    def device(self) -> str | None: ...

    @property
    def spec(self) -> CameraSpec: ...


def check_frames(cameras: Iterable[Readable], backend: str, *, frames: int = FRAMES) -> None:
    """Read ``frames`` frames from every camera of a ``backend`` farm; they must carry its codes, in order
    (after the first, see :func:`_check`).

    vivid draws frames without codes: there one frame read is all that is checked.
    A uvc webcam is streamed in the camera's spec (uvcvideo has no read(2)).
    Raises EnvironmentProblem naming the first camera that does not deliver.
    """
    # One camera at a time: readers side by side (threads) were slow enough under emulation for the
    # writer to lap v4l2loopback's ring under one of them, which then read its frames out of order.
    for cam in cameras:
        _check(cam, backend, frames)


def longest_s(backend: str, cameras: int, *, frames: int = FRAMES) -> float:
    """The longest :func:`check_frames` can take on ``cameras`` cameras before it gives up."""
    if backend == "vivid":
        return cameras * FRAME_S
    return cameras * (frames + 1) * (WEBCAM_FIRST_FRAME_S if backend == "uvc" else FRAME_S)


def stream_spec(cam: Readable, backend: str) -> CameraSpec | None:
    """The spec a reader streams ``cam``'s node in: a uvc webcam's (uvcvideo has no read(2));
    None for nodes read with read(2) as they are set."""
    return cam.spec if backend == "uvc" else None


def _check(cam: Readable, backend: str, frames: int) -> None:
    from ..devices.v4l2 import capture
    from ..frames.code import decode

    if cam.device is None:
        raise EnvironmentProblem(f"camera {cam.index} has no node")
    if backend == "vivid":
        list(capture.read_luma(cam.device, count=1))
        return
    # One frame more than asked, the first left out of the order check: a new reader of a
    # v4l2loopback node starts at the ring's oldest slot, and when the writer is exactly a ring
    # ahead it refills that slot while read(2) copies it out, so the first frame can be the newest
    # (CI once read sequences 4, 1, 2 that way).
    seen = [decode(f.luma) for f in capture.luma_frames(cam.device, stream_spec(cam, backend), count=frames + 1,
                                                       strip_only=True)]
    ours = [c.sequence for c in seen if c is not None and c.camera == cam.index]
    if not ours or ours[1:] != sorted(ours[1:]):
        raise EnvironmentProblem(f"{cam.device} did not deliver camera {cam.index}'s frames (decoded: {seen})")
