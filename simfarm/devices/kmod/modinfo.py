"""What ``modinfo -k RELEASE`` says of a kernel module, read from /lib/modules in-process.

depmod lists every loadable module's file in modules.dep and the modules
built into the kernel in modules.builtin, each with a binary index beside
it (index) that is read first, as libkmod does; a loadable module
keeps its ``key=value`` fields in its ELF ``.modinfo`` section, a built-in
one in modules.builtin.modinfo. Reading them costs well under a millisecond
where running modinfo costs a process start. Modules are named as modinfo
names them, ``-`` and ``_`` alike; aliases are not resolved.
"""

from __future__ import annotations

import io
import re
import struct
from pathlib import Path
from typing import BinaryIO

from . import index

MODULES_DIR = Path("/lib/modules")
BUILTIN = "(builtin)"  # what `modinfo -n` prints for a built-in module

_ELF64_LSB = b"\x7fELF\x02\x01"
_HEADER = struct.Struct("<40xQ10xHHH")  # the ELF64 header's e_shoff, e_shentsize, e_shnum, e_shstrndx
_SECTION = struct.Struct("<I20xQQ")  # sh_name, sh_offset, sh_size


def _listed(tree: Path, listing: str, name: str) -> str | None:
    """Module ``name``'s line in a depmod listing of ``tree`` (modules.dep: 'path: deps', modules.builtin:
    'path'), from its index when there is one, else from the text; None when not listed."""
    key = name.replace("-", "_")
    try:
        return index.lookup(tree / f"{listing}.bin", key)
    except (OSError, ValueError):
        pass
    try:
        text = b"\n" + (tree / listing).read_bytes()  # so that every line, the first one too, follows a newline
    except OSError:
        return None
    stem = re.escape(key.encode()).replace(b"_", b"[-_]")
    # The path ends a builtin line; in modules.dep a colon follows it (a path followed by a newline is a dependency).
    end = b":" if listing == "modules.dep" else b"\n"
    # Led by the name itself, which re scans for quickly; the path's start is checked after.
    for found in re.finditer(stem + rb"\.ko(?:\.[a-z]+)?" + end, text):
        if text[found.start() - 1] in b"\n/":
            line = text.rfind(b"\n", 0, found.start()) + 1
            return text[line:text.find(b"\n", line)].decode(errors="replace")
    return None


def find(release: str, name: str, root: Path = MODULES_DIR) -> str | None:
    """The module's file (or :data:`BUILTIN`) for kernel ``release``, as ``modinfo -n`` prints it; None when the
    kernel has no such module."""
    tree = root / release
    if (entry := _listed(tree, "modules.dep", name)) is not None:
        path = entry.split(":", 1)[0]
        return path if path.startswith("/") else str(tree / path)
    return BUILTIN if _listed(tree, "modules.builtin", name) is not None else None


def field(release: str, name: str, key: str, root: Path = MODULES_DIR) -> str | None:
    """The module's ``key`` field as ``modinfo -F KEY`` prints it ('' when the module declares none; None
    when there is no such module or its file cannot be read)."""
    where = find(release, name, root)
    if where is None:
        return None
    if where == BUILTIN:
        prefix = name.replace("-", "_").encode() + b"."
        try:
            listing = (root / release / "modules.builtin.modinfo").read_bytes()
        except OSError:
            return None
        fields = [f.removeprefix(prefix) for f in listing.split(b"\0") if f.startswith(prefix)]
    else:
        try:
            fields = _modinfo_section(Path(where))
        except ValueError:  # compressed in a way Python cannot read (zstd before 3.14): modinfo can
            return _ask_modinfo(release, name, key)
        if fields is None:
            return None
    wanted = key.encode() + b"="
    return "\n".join(f.removeprefix(wanted).decode(errors="replace") for f in fields if f.startswith(wanted))


def _ask_modinfo(release: str, name: str, key: str) -> str | None:
    import subprocess

    from ... import binaries
    done = subprocess.run([binaries.require("modinfo"), "-k", release, "-F", key, name], check=False,
                          capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


def _modinfo_section(path: Path) -> list[bytes] | None:
    """The ``key=value`` entries of a module file's ``.modinfo`` section (None: unreadable, not ELF64;
    ValueError: compressed in a way Python cannot read)."""
    try:
        with _open_module(path) as module:
            return _elf_section(module, b".modinfo")
    except (OSError, EOFError, struct.error, IndexError):
        return None


def _elf_section(elf: BinaryIO, wanted: bytes) -> list[bytes] | None:
    """The NUL-separated entries of section ``wanted`` (read by seeking: a module is some 100 kB, its .modinfo
    under one); [] when the file has no such section, None when it is not a little-endian ELF64 file."""
    header = elf.read(_HEADER.size)
    if not header.startswith(_ELF64_LSB) or len(header) < _HEADER.size:
        return None
    shoff, shentsize, shnum, shstrndx = _HEADER.unpack(header)
    elf.seek(shoff)
    table = elf.read(shentsize * shnum)
    sections = [_SECTION.unpack_from(table, i * shentsize) for i in range(shnum)]
    _, names_at, names_size = sections[shstrndx]
    elf.seek(names_at)
    names = elf.read(names_size)
    for name_at, offset, size in sections:
        if names[name_at:names.find(b"\0", name_at)] == wanted:
            elf.seek(offset)
            return [entry for entry in elf.read(size).split(b"\0") if entry]
    return []


def _open_module(path: Path) -> BinaryIO:
    """The module's ELF bytes, from a .ko, .ko.xz or .ko.gz file (ValueError for another compression)."""
    if path.suffix == ".ko":
        return open(path, "rb")
    if path.suffix == ".xz":
        import lzma
        return io.BytesIO(lzma.decompress(path.read_bytes()))
    if path.suffix == ".gz":
        import gzip
        return io.BytesIO(gzip.decompress(path.read_bytes()))
    raise ValueError(f"cannot read a {path.suffix} module")  # .zst
