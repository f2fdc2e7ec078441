"""The one interface every backend implements, and what the supervisor asks of a camera.

Provisioning, the supervisor, teardown and crash recovery ask the backend
named in the farm's record; nothing else in the farm knows which one runs.
A backend checks a request before anything is made, makes the cameras,
carries out its device-level faults, and removes exactly what the record
names (everything is recorded before it is made).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

from ..devices.v4l2 import nodes

# Named in annotations only: a provisioning process that loads a backend to check a request
# (default_spec, preflight) must not pay for the fault machinery (numpy) it never runs.
if TYPE_CHECKING:
    from ..faults import FaultHandle, FaultListener, FaultSet, Mark
    from ..patterns import PatternLibrary
    from ..producers.progress import Progress, ProgressCell
    from ..spec import CameraSpec
    from ..state.records import FarmRecord, NodeRecord
    from .device_faults import DeviceFaults


class SupervisedCamera(Protocol):
    """A camera as the supervisor runs it, whichever backend made it."""

    index: int
    spec: CameraSpec
    node: NodeRecord
    device_faults: dict[str, FaultHandle]
    # Offered to other machines rather than made here (a uvc webcam exported over USB/IP): it has no
    # node on this host to read frames back from.
    exported: bool

    @property
    def device(self) -> str | None: ...

    def mark(self) -> Mark: ...

    def active_faults(self) -> list[FaultHandle]: ...

    def stop_stream(self, *, final: bool = False) -> None: ...

    def status(self) -> dict: ...


class NodePaths:
    """A camera's node paths as its record has them: capture and metadata (None while unplugged)."""

    node: NodeRecord
    exported = False

    @property
    def device(self) -> str | None:
        return nodes.node_path(self.node.number) if self.node.number is not None else None

    @property
    def metadata_device(self) -> str | None:
        return nodes.node_path(self.node.metadata) if self.node.metadata is not None else None


class ProducedCamera(SupervisedCamera, Protocol):
    """A camera whose frames simfarm's producers write (loopback, uvc): frame-level faults apply."""

    faults: FaultSet
    library: PatternLibrary  # where its pattern comes from

    def track(self, progress: ProgressCell, resume: Progress | None) -> None:
        """Its producers note where they stand in ``progress`` (a worker farm's ProgressBoard); the next
        one carries on from ``resume``, what a dead worker's producer noted last."""


class Backend(Protocol):
    name: str

    def default_spec(self, settings: Mapping[str, object]) -> CameraSpec:
        """What a camera is where ``settings`` (those given for it) leave it open: vivid does not
        offer loopback's 640x480@30, and a USB webcam's profile decides what it streams."""

    def preflight(self, specs: Sequence[CameraSpec], numbers: Sequence[int] | None, *,
                  exported: bool = False) -> None:
        """Refuse, before anything is made, what this backend cannot provide here. ``exported``: the
        cameras are offered to other machines (a uvc farm's USB/IP export), so this host's devices
        (modules, ports) are not theirs to need."""

    def cameras(self, record: FarmRecord, listener: FaultListener) -> list[SupervisedCamera]:
        """The farm's cameras, not yet made."""

    def create(self, record: FarmRecord, cameras: list[SupervisedCamera]) -> None:
        """Make every camera's nodes and start them; the caller undoes it all on failure."""

    def device_faults(self, record: FarmRecord, listener: FaultListener,
                      save: Callable[[], None] | None = None) -> DeviceFaults:
        """Carries out this backend's device-level faults, calling ``save`` (default: ``record.save``)
        as nodes change."""

    def release(self, record: FarmRecord, timeout: float) -> None:
        """Remove every node (and module) ``record`` names that is still ours, dropping each from it.

        Raises InUse, the rest done, while readers hold something open.
        """


class WorkerBackend(Backend, Protocol):
    """A backend whose cameras can run in worker processes (simfarm.farm.workers): the supervisor
    makes what it can before it forks them, each worker starts its share."""

    # The longest starting one camera (start_cameras) may take.
    start_s: float

    def make_nodes(self, record: FarmRecord, cameras: Sequence[SupervisedCamera]) -> None:
        """Record every camera in ``record``, and make what outlives a worker, before any worker forks."""

    def start_cameras(self, cameras: Sequence[SupervisedCamera], save: Callable[[], None]) -> None:
        """Start ``cameras`` (made by make_nodes) in this process; ``save`` writes their nodes into
        the farm record as they change."""

    def recover(self, record: FarmRecord, cameras: Sequence[SupervisedCamera]) -> None:
        """Make ``cameras``, whose worker process died, ready for a new worker to start them; in the
        supervisor, with their nodes as the farm record on disk has them."""


def camera_label(farm: str, index: int) -> str:
    """Camera ``index`` of ``farm``'s label: what its node (or USB serial) carries, so simfarm
    knows it for its own."""
    return f"simfarm-{farm}-{index}"


def checked_patterns(record: FarmRecord, specs: Sequence[CameraSpec]) -> PatternLibrary:
    """The farm's pattern library, holding every pattern ``specs`` name (the patterns' own producer).

    The supervisor makes it before anything else: a pattern it lacks, or a bad
    pattern file, is BadInput with nothing made. (The provisioner leaves this
    check here, where the library is loaded anyway, so that it needs no numpy.)
    """
    from ..patterns import PatternLibrary

    library = PatternLibrary(record.spec.get("patterns_dirs", ()))
    for spec in specs:
        if spec.producer == "numpy":
            library.get(spec.pattern)
    return library
