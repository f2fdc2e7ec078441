"""Looking a key up in kmod's binary indexes (modules.dep.bin, modules.builtin.bin), as libkmod does.

depmod writes each index as a trie. The offset of a node carries flags
saying what the node holds, in this order: a prefix (a NUL-terminated
string the key must continue with), children (a first and a last byte,
then one node offset per byte between them, 0 for none) and values (a
count, then for each a priority and a NUL-terminated string). A lookup
reads the few nodes along its key: a handful of small reads where the text
listing (modules.dep) is half a megabyte to read and search.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

MAGIC = 0xB007F457
VERSION_MAJOR = 2
_PREFIX = 0x80000000
_VALUES = 0x40000000
_CHILDREN = 0x20000000
_OFFSET = 0x0FFFFFFF
_U32 = struct.Struct(">I")


def lookup(path: Path, key: str) -> str | None:
    """The first value the index at ``path`` holds for ``key`` exactly; None when it holds none.
    Raises OSError when the file cannot be read, ValueError when it is no kmod index."""
    with open(path, "rb") as index:
        header = index.read(12)
        if len(header) < 12:
            raise ValueError(f"{path} is not a kmod index")
        magic, version, offset = struct.unpack(">III", header)
        if magic != MAGIC or version >> 16 != VERSION_MAJOR:
            raise ValueError(f"{path} is not a kmod index")
        return _search(index, offset, key.encode())


def _search(index: BinaryIO, offset: int, key: bytes) -> str | None:
    done = 0  # how much of the key the nodes so far matched
    while True:
        index.seek(offset & _OFFSET)
        if offset & _PREFIX:
            prefix = _string(index)
            if key[done:done + len(prefix)] != prefix:
                return None
            done += len(prefix)
        children: tuple[int, ...] = ()
        first = 0
        if offset & _CHILDREN:
            first, last = _read(index, 2)
            children = struct.unpack(f">{last - first + 1}I", _read(index, 4 * (last - first + 1)))
        if done == len(key):
            if not offset & _VALUES or not _U32.unpack(_read(index, 4))[0]:
                return None
            _read(index, 4)  # the first value's priority
            return _string(index).decode(errors="replace")
        at = key[done] - first
        if not 0 <= at < len(children) or not children[at]:
            return None
        offset = children[at]
        done += 1


def _read(index: BinaryIO, size: int) -> bytes:
    data = index.read(size)
    if len(data) < size:
        raise ValueError("truncated kmod index")
    return data


def _string(index: BinaryIO) -> bytes:
    """A NUL-terminated string, leaving the file just after its NUL."""
    text = b""
    while True:
        chunk = index.read(64)
        if not chunk:
            raise ValueError("truncated kmod index")
        if (end := chunk.find(b"\0")) >= 0:
            index.seek(end + 1 - len(chunk), 1)
            return text + chunk[:end]
        text += chunk
