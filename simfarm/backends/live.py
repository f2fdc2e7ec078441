"""One camera as its supervisor runs it: the node, the producer feeding it, and its faults.

The camera's FaultSet, sequence number and stream clock outlive any one producer: a
producer is replaced when the node is unplugged and plugged again or the
stream is renegotiated, and the replacement carries on numbering and faulting
where the last one stopped.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

from ..devices.v4l2 import nodes
from ..devices.v4l2.frame_waits import FIRST_WRITE_S
from ..errors import EnvironmentProblem
from ..faults import FaultHandle, FaultListener, FaultSet, Mark
from ..patterns import PatternLibrary
from ..producers.build import build_producer
from ..producers.producer import Producer
from ..producers.progress import Progress, ProgressCell
from ..producers.sinks import FdSink
from ..spec import CameraSpec
from ..state.records import NodeRecord


class LiveCamera:
    """``spec`` is what the camera streams now; ``base_spec`` what it was provisioned with."""

    exported = False  # a loopback node is always this host's

    def __init__(self, index: int, spec: CameraSpec, node: NodeRecord, library: PatternLibrary,
                 listener: FaultListener) -> None:
        self.index = index
        self.spec = self.base_spec = spec
        self.node = node
        self.library = library
        self.faults = FaultSet(index, spec.format, spec.size, spec.fps, listener=listener)
        # Device-level faults in force (unplug, resize, reformat), by id; the supervisor keeps them.
        self.device_faults: dict[str, FaultHandle] = {}
        # Stream faults in force (publisher-loss, bitstream-noise, proxy toxics), by id; the publisher keeps them.
        self.stream_faults: dict[str, FaultHandle] = {}
        self.producer: Producer | None = None
        # While an unplug waits for readers to close the node: the pids holding it (shown in status).
        self.held_by: list[int] | None = None
        # Readers the farm itself runs on the node (a publisher), each a context manager factory that
        # takes its reader off the node until the context ends: see node_to_itself.
        self.node_guards: list[Callable[[], AbstractContextManager[None]]] = []
        # Where a replacement producer carries on: sequence number and stream clock.
        self._sequence, self._clock = 0, 0.0
        self._progress: ProgressCell | None = None
        self._resume: Progress | None = None

    @property
    def plugged(self) -> bool:
        return self.node.number is not None

    @property
    def device(self) -> str | None:
        return nodes.node_path(self.node.number) if self.node.number is not None else None

    def track(self, progress: ProgressCell, resume: Progress | None) -> None:
        """Producers note where they stand in ``progress``; the next one carries on from ``resume``."""
        self._progress, self._resume = progress, resume

    def start_stream(self, spec: CameraSpec | None = None) -> None:
        """Open the node for output in ``spec`` (default: the current one) and start a producer."""
        assert self.node.number is not None and self.producer is None
        spec = spec or self.spec
        fd = nodes.open_output(self.node.number, spec.format, spec.size, spec.fps)
        self.spec = spec
        self.producer = build_producer(self.index, spec, FdSink(fd, owned=True), self.library,
                                       faults=self.faults, sequence=self._sequence, clock=self._clock,
                                       progress=self._progress, resume=self._resume)
        self._resume = None  # carried on from: a later producer continues from this one
        self.producer.start()
        # v4l2loopback announces a capture format only once frames flow: a reader opening the
        # node before then gets EINVAL, so a camera counts as back only after its first frame.
        error = None if self.producer.first_frame.wait(FIRST_WRITE_S) else "no frame written"
        if error := error or self.producer.stats().error:
            self.stop_stream()
            raise EnvironmentProblem(f"{self.device} did not take {spec.format.name} {spec.size}: {error}")

    def stop_stream(self, *, final: bool = False) -> None:
        """Stop the producer and close the node; faults stay in force unless ``final``."""
        if self.producer is not None:
            self.producer.stop(final=final)
            self._sequence, self._clock = self.producer.sequence, self.producer.clock
            self.producer = None
        elif final:
            self.faults.close()

    @contextlib.contextmanager
    def node_to_itself(self) -> Iterator[None]:
        """The farm's own readers are off the node for the duration (renegotiation needs it unread)."""
        with contextlib.ExitStack() as stack:
            for guard in self.node_guards:
                stack.enter_context(guard())
            yield

    def mark(self) -> Mark:
        """Now, with the next sequence number (None while nothing streams)."""
        return Mark(time.time(), self.producer.sequence if self.producer else None)

    def active_faults(self) -> list[FaultHandle]:
        return [*self.device_faults.values(), *self.stream_faults.values(), *self.faults.active()]

    def status(self) -> dict:
        stats = self.producer.stats() if self.producer else None
        if not self.plugged:
            state = "unplugged"
        elif self.held_by is not None:
            state = "unplugging"
        elif stats is None:
            state = "starting"
        else:
            state = "error" if stats.error else "streaming" if stats.running else "stopped"
        return {"camera": self.index, "label": self.node.label, "device": self.device, "state": state,
                "spec": self.spec.to_json(), **(stats.to_json() if stats else {}), "held_by": self.held_by,
                "faults": [handle.to_json() for handle in self.active_faults()]}
