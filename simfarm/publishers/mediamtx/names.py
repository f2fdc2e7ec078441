"""Which path names a farm may give MediaMTX.

MediaMTX accepts ``[0-9A-Za-z_-./~:]+`` not starting or ending with ``/``
(conf.IsValidPathName). simfarm is stricter where MediaMTX would give a name
another meaning or let a recording escape its directory: a leading ``~`` makes
the entry a regular expression, ``all``/``all_others`` are catch-alls, and
``.``/``..``/empty segments would land ``recordPath``'s ``%path`` elsewhere.
"""

from __future__ import annotations

import re

from ...errors import BadInput

_ALLOWED = re.compile(r"[0-9A-Za-z_\-./~:]+")
_CATCH_ALL = frozenset({"all", "all_others"})


def check_path_name(name: str) -> str:
    """``name`` unchanged when it is a plain MediaMTX path name, else BadInput."""
    if not _ALLOWED.fullmatch(name):
        raise BadInput(f"MediaMTX path name {name!r} may contain only letters, digits and _ - . / ~ :")
    if name.startswith("~"):
        raise BadInput(f"MediaMTX path name {name!r} must not start with '~' (that makes it a regular expression)")
    if name in _CATCH_ALL:
        raise BadInput(f"MediaMTX path name {name!r} is reserved (it matches every path)")
    if any(segment in ("", ".", "..") for segment in name.split("/")):
        raise BadInput(f"MediaMTX path name {name!r} must not start or end with '/' "
                       "or contain empty, '.' or '..' segments")
    return name
