"""Where each camera's producer stands, kept in memory its worker process shares with the supervisor.

A worker that dies takes its producers' counters with it; a restarted one
must carry on numbering where a reader expects the next frame. So every
producer of a farm with workers writes, after each slot, the slot's deadline,
the next sequence number, its counters and the stream clock into its cell of
a :class:`ProgressBoard`: an anonymous shared mapping the supervisor makes
before it forks the workers. The supervisor reads a dead worker's cells and
hands them to the replacement (see Producer's ``resume``).

A cell holds two records and the number of the last complete one: a record
is written whole, then the number flips, so a worker killed mid-write leaves
the previous record to read, never a torn one.
"""

from __future__ import annotations

import mmap
import struct
from typing import NamedTuple

# deadline (monotonic s), next sequence, written, late, dropped, stream clock (s)
_RECORD = struct.Struct("=dqqqqd")
_CURRENT = struct.Struct("=q")  # 0: nothing written yet; 1 or 2: the record last written whole
_CELL = _CURRENT.size + 2 * _RECORD.size


class Progress(NamedTuple):
    """A producer's state after the slot due at ``deadline``."""

    deadline: float  # infinite once the producer was stopped (see Producer.stop)
    sequence: int  # the next frame's
    written: int
    late: int
    dropped: int
    clock: float  # the stream clock at the next slot


class ProgressCell:
    """One camera's cell: written by its producer (one writer at a time), read by the supervisor."""

    def __init__(self, board: mmap.mmap, offset: int) -> None:
        self._board = board
        self._offset = offset

    def note(self, deadline: float, sequence: int, written: int, late: int, dropped: int, clock: float) -> None:
        # Read from the cell, not remembered: a replacement producer (or worker) writes on where the last stopped.
        spare = 2 if _CURRENT.unpack_from(self._board, self._offset)[0] == 1 else 1
        _RECORD.pack_into(self._board, self._offset + _CURRENT.size + (spare - 1) * _RECORD.size,
                          deadline, sequence, written, late, dropped, clock)
        _CURRENT.pack_into(self._board, self._offset, spare)

    def read(self) -> Progress | None:
        """The last record written whole; None before the first slot."""
        (current,) = _CURRENT.unpack_from(self._board, self._offset)
        if current == 0:
            return None
        return Progress(*_RECORD.unpack_from(self._board, self._offset + _CURRENT.size + (current - 1) * _RECORD.size))


class ProgressBoard:
    """The cells of ``cameras`` cameras, shared with every process forked after it is made."""

    def __init__(self, cameras: int) -> None:
        self._map = mmap.mmap(-1, max(1, cameras) * _CELL)  # anonymous and MAP_SHARED: forks write to it

    def cell(self, camera: int) -> ProgressCell:
        return ProgressCell(self._map, camera * _CELL)
