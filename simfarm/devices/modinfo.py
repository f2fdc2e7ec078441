"""What ``modinfo -k RELEASE`` says of a kernel module, read from /lib/modules in-process.

depmod writes modules.dep (every loadable module's file) and modules.builtin
(those built into the kernel, whose fields are in modules.builtin.modinfo);
a loadable module keeps its ``key=value`` fields in its ELF ``.modinfo``
section. Reading them costs a millisecond where running modinfo costs a
process start. Modules are named as modinfo names them, ``-`` and ``_``
alike; aliases are not resolved.
"""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path

MODULES_DIR = Path("/lib/modules")
BUILTIN = "(builtin)"  # what `modinfo -n` prints for a built-in module

_ELF64_LSB = b"\x7fELF\x02\x01"
_HEADER = struct.Struct("<40xQ10xHHH")  # e_shoff, e_shentsize, e_shnum, e_shstrndx
_SECTION = struct.Struct("<I20xQQ")  # sh_name, sh_offset, sh_size


# path -> (mtime, size, contents): a doctor asks about four modules of one tree; depmod
# replacing a file (a module installed meanwhile) changes its mtime, so it is read again.
_files: dict[Path, tuple[int, int, bytes]] = {}


def _read(path: Path) -> bytes:
    """The file's contents after a newline (so every entry, the first one too, follows one); b'' when unreadable."""
    try:
        st = os.stat(path)
        cached = _files.get(path)
        if cached is None or cached[:2] != (st.st_mtime_ns, st.st_size):
            cached = _files[path] = (st.st_mtime_ns, st.st_size, b"\n" + path.read_bytes())
    except OSError:
        return b""
    return cached[2]


def _entry(listing: bytes, name: str, end: bytes) -> str | None:
    """The path a depmod listing gives module ``name`` (an entry starts a line and ends with ``end``), or None."""
    stem = re.escape(name.replace("-", "_").encode()).replace(b"_", b"[-_]")
    # Led by the name itself, which re scans for quickly; the entry's own start is checked after.
    for found in re.finditer(stem + rb"\.ko(?:\.[a-z]+)?" + re.escape(end), listing):
        if listing[found.start() - 1] in b"\n/":
            start = listing.rfind(b"\n", 0, found.start()) + 1
            return listing[start:found.end() - len(end)].decode(errors="replace")
    return None


def find(release: str, name: str, root: Path = MODULES_DIR) -> str | None:
    """The module's file (or :data:`BUILTIN`) for kernel ``release``, as ``modinfo -n`` prints it; None when the
    kernel has no such module."""
    tree = root / release
    if (path := _entry(_read(tree / "modules.dep"), name, b":")) is not None:
        return str(tree / path) if not path.startswith("/") else path
    return BUILTIN if _entry(_read(tree / "modules.builtin"), name, b"\n") is not None else None


def field(release: str, name: str, key: str, root: Path = MODULES_DIR) -> str | None:
    """The module's ``key`` field as ``modinfo -F KEY`` prints it ('' when the module declares none; None
    when there is no such module or its file cannot be read)."""
    where = find(release, name, root)
    if where is None:
        return None
    if where == BUILTIN:
        prefix = name.replace("-", "_").encode() + b"."
        fields = [f.removeprefix(prefix) for f in _read(root / release / "modules.builtin.modinfo")[1:].split(b"\0")
                  if f.startswith(prefix)]
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

    from .. import binaries
    done = subprocess.run([binaries.require("modinfo"), "-k", release, "-F", key, name], check=False,
                          capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


def _modinfo_section(path: Path) -> list[bytes] | None:
    """The ``key=value`` entries of a module file's ``.modinfo`` section (None: unreadable, not ELF64;
    ValueError: compressed in a way Python cannot read)."""
    try:
        data = _decompressed(path)
    except (OSError, EOFError):
        return None
    if not data.startswith(_ELF64_LSB) or len(data) < _HEADER.size + 24:
        return None
    shoff, shentsize, shnum, shstrndx = _HEADER.unpack_from(data)
    try:
        sections = [_SECTION.unpack_from(data, shoff + i * shentsize) for i in range(shnum)]
        names_at = sections[shstrndx][1]
    except (struct.error, IndexError):
        return None
    for name_at, offset, size in sections:
        if data[names_at + name_at:data.find(b"\0", names_at + name_at)] == b".modinfo":
            return [entry for entry in data[offset:offset + size].split(b"\0") if entry]
    return []


def _decompressed(path: Path) -> bytes:
    """The module's ELF bytes, from a .ko, .ko.xz or .ko.gz file (ValueError for another compression)."""
    data = path.read_bytes()
    if path.suffix == ".ko":
        return data
    if path.suffix == ".xz":
        import lzma
        return lzma.decompress(data)
    if path.suffix == ".gz":
        import gzip
        return gzip.decompress(data)
    raise ValueError(f"cannot read a {path.suffix} module")  # .zst
