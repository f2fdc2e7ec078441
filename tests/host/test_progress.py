"""Producers' progress in memory shared with forked processes, and a producer carrying on from a dead one's."""

from __future__ import annotations

import math
import os
import threading
import time

import numpy as np

from simfarm.frames import pixfmt
from simfarm.frames.code import decode
from simfarm.patterns import PatternLibrary
from simfarm.producers.build import build_producer
from simfarm.producers.pacing import PROCESS_ORIGIN, spread_phase
from simfarm.producers.progress import Progress, ProgressBoard
from simfarm.producers.sinks import FdSink
from simfarm.spec import CameraSpec


def test_a_cell_noted_in_a_forked_process_is_read_in_its_parent() -> None:
    board = ProgressBoard(3)
    assert board.cell(1).read() is None
    pid = os.fork()
    if pid == 0:
        cell = board.cell(1)
        cell.note(1.5, 10, 9, 1, 0, 0.3)
        cell.note(1.6, 11, 10, 1, 0, 0.4)  # the spare record, then the flip
        os._exit(0)
    os.waitpid(pid, 0)
    assert board.cell(1).read() == Progress(1.6, 11, 10, 1, 0, 0.4)
    assert board.cell(0).read() is None and board.cell(2).read() is None
    board.cell(1).note(1.7, 12, 11, 1, 0, 0.5)  # a replacement writes on from the cell's state
    assert board.cell(1).read() == Progress(1.7, 12, 11, 1, 0, 0.5)


def test_a_producer_resumed_from_a_dead_ones_progress_numbers_on_and_counts_the_gap_as_dropped() -> None:
    spec = CameraSpec.parse(size="320x240", fps=10, format="GREY")
    period, camera = 0.1, 3
    offset = PROCESS_ORIGIN + spread_phase(camera) * period
    # The dead producer's last slot: on this camera's grid, a few slots ago.
    last = offset + ((time.monotonic() - offset) // period - 3) * period
    resume = Progress(last, sequence=1000, written=50, late=1, dropped=2, clock=7.0)
    cell = ProgressBoard(4).cell(camera)
    read_fd, write_fd = os.pipe()
    frames: list[bytes] = []
    size = pixfmt.frame_bytes(spec.format, spec.size)

    def drain() -> None:
        with os.fdopen(read_fd, "rb") as pipe:
            while len(data := pipe.read(size)) == size:
                frames.append(data)

    reader = threading.Thread(target=drain)
    reader.start()
    producer = build_producer(camera, spec, FdSink(write_fd, owned=True), PatternLibrary(), progress=cell,
                              resume=resume)
    producer.start()
    producer.first_frame.wait(30)
    producer.stop()
    reader.join()
    stats, noted = producer.stats(), cell.read()

    codes = [decode(np.frombuffer(f, np.uint8).reshape(240, 320)) for f in frames]
    first = codes[0].sequence
    missed = first - resume.sequence
    assert missed >= 3  # at least the slots between the dead one's last and now
    assert [c.sequence for c in codes] == list(range(first, first + len(codes)))
    # The missed slots took numbers and count as dropped; slots a loaded machine made it skip count as
    # dropped too, but take none: numbers are missed slots plus frames written, exactly.
    assert producer.sequence - resume.sequence == missed + stats.written - resume.written
    assert stats.dropped >= resume.dropped + missed
    assert stats.written == resume.written + len(codes)
    assert noted is not None and noted.sequence == first + len(codes) and noted.written == stats.written
    assert noted.clock == producer.clock and noted.deadline == math.inf  # stopped, not dead


def test_a_producer_resumed_from_a_stopped_one_misses_no_slot() -> None:
    spec = CameraSpec.parse(size="320x240", fps=10, format="GREY")
    cell = ProgressBoard(1).cell(0)
    first = build_producer(0, spec, FdSink(os.open(os.devnull, os.O_WRONLY), owned=True), PatternLibrary(),
                           progress=cell)
    first.start()
    first.first_frame.wait(30)
    first.stop()  # an unplug, or a webcam's reader ending its stream
    stopped = cell.read()
    assert stopped is not None and stopped.deadline == math.inf and stopped.sequence == first.sequence
    then = build_producer(0, spec, FdSink(os.open(os.devnull, os.O_WRONLY), owned=True), PatternLibrary(),
                          progress=cell, resume=stopped)
    then.start()
    then.first_frame.wait(30)
    then.stop()
    assert then.sequence == stopped.sequence + then.stats().written - stopped.written  # no slot missed
