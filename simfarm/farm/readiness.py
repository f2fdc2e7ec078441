"""Whether cameras deliver their own frames: a few read back from each node and decoded.

Run by the provisioner once the supervisor is up, or, on a publishing farm,
by the supervisor before its publishers take the nodes: v4l2loopback lets
one reader stream a node at a time, so nobody else can read it after that.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from ..devices import capture
from ..errors import EnvironmentProblem
from ..frames.code import decode
from ..spec import CameraSpec


class Readable(Protocol):
    """A camera as both sides know it: its index (in its frame codes), its node and spec."""

    @property
    def index(self) -> int: ...

    @property
    def device(self) -> str | None: ...

    @property
    def spec(self) -> CameraSpec: ...


def check_frames(cameras: Iterable[Readable], *, coded: bool, frames: int = 3, stream: bool = False) -> None:
    """Read ``frames`` frames from every camera; with ``coded``, they must carry its codes, in order.

    vivid draws frames without codes: there (``coded=False``) one frame read is all that is checked.
    ``stream``: the node is a webcam's, streamed in the camera's spec (uvcvideo has no read(2)).
    Raises EnvironmentProblem naming the first camera that does not deliver.
    """
    for cam in cameras:
        if cam.device is None:
            raise EnvironmentProblem(f"camera {cam.index} has no node")
        if not coded:
            list(capture.read_luma(cam.device, count=1))
            continue
        seen = [decode(f.luma) for f in capture.luma_frames(cam.device, cam.spec if stream else None, count=frames)]
        ours = [c.sequence for c in seen if c is not None and c.camera == cam.index]
        if not ours or ours != sorted(ours):
            raise EnvironmentProblem(f"{cam.device} did not deliver camera {cam.index}'s frames (decoded: {seen})")
