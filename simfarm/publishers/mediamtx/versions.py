"""Which MediaMTX versions simfarm runs, and the configuration keys that differ between them.

MediaMTX refuses to start on a key it does not know, so the configuration
is written for the version that will read it. The keys simfarm may write
that some supported version lacks are listed here with the version that
brought them (from the v1.19.1 and v1.20.1 references); the hooks renamed
in 1.19.3 are mapped to their old names for older servers.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from ...errors import EnvironmentProblem
from .binary import INSTALL, Version, parse_version

OLDEST = Version(1, 19, 0)
NEWEST_KNOWN = (1, 20)  # the newest minor series whose keys are known here

SUPPORTED = f"{OLDEST.major}.{OLDEST.minor}.x to {NEWEST_KNOWN[0]}.{NEWEST_KNOWN[1]}.x"

# Keys a supported version may lack: key -> the first version that has it.
ADDED: dict[str, Version] = {
    "moqQUICAddress": Version(1, 20, 0),
    "forward": Version(1, 20, 0),
    "moqTransport": Version(1, 20, 0),
    "rtspScale": Version(1, 20, 0),
    "runOnOnline": Version(1, 20, 0),
    "runOnOnlineRestart": Version(1, 20, 0),
    "runOnOffline": Version(1, 20, 0),
}

# Hooks renamed in 1.19.3: new name -> the name older servers know.
RENAMED: dict[str, tuple[Version, str]] = {
    "runOnAvailable": (Version(1, 19, 3), "runOnReady"),
    "runOnAvailableRestart": (Version(1, 19, 3), "runOnReadyRestart"),
    "runOnUnavailable": (Version(1, 19, 3), "runOnNotReady"),
}


def check(version: Version) -> str | None:
    """Refuse a version below the supported range; a warning (to show) for one newer than known."""
    if version < OLDEST:
        raise EnvironmentProblem(f"MediaMTX {version} is too old: simfarm supports {SUPPORTED}", INSTALL)
    if (version.major, version.minor) > NEWEST_KNOWN:
        return (f"MediaMTX {version} is newer than simfarm knows ({SUPPORTED}): "
                f"running it with the configuration keys of {NEWEST_KNOWN[0]}.{NEWEST_KNOWN[1]}")
    return None


def warn_if_newer(version: Version) -> Version:
    """``version``, after refusing it when too old and warning on stderr when newer than known."""
    if warning := check(version):
        print(f"simfarm: warning: {warning}", file=sys.stderr, flush=True)
    return version


def of_server(reported: str | None) -> Version:
    """The version a running server reports in ``GET /v3/info`` (None: it predates that endpoint), checked."""
    if reported is None:
        raise EnvironmentProblem(f"this MediaMTX is too old (it has no /v3/info): simfarm supports {SUPPORTED}",
                                 INSTALL)
    return warn_if_newer(parse_version(reported))


def key_for(key: str, version: Version) -> str:
    """``key`` as ``version`` names it; ValueError when that version has no such setting."""
    if key in RENAMED:
        since, old = RENAMED[key]
        return key if version >= since else old
    if key in ADDED and version < ADDED[key]:
        raise ValueError(f"MediaMTX {version} has no setting {key!r} (added in {ADDED[key]})")
    return key


def adapt(settings: Mapping[str, Any], version: Version) -> dict[str, Any]:
    """Path settings (a ``paths`` entry, ``pathDefaults``, an API body) with each key as ``version`` names it."""
    return {key_for(key, version): value for key, value in settings.items()}


def adapt_config(config: Mapping[str, Any], version: Version) -> dict[str, Any]:
    """A whole configuration for ``version``: its global keys, ``pathDefaults`` and every path's settings."""
    adapted = adapt({key: value for key, value in config.items() if key not in ("pathDefaults", "paths")}, version)
    if "pathDefaults" in config:
        adapted["pathDefaults"] = adapt(config["pathDefaults"], version)
    if "paths" in config:
        adapted["paths"] = {name: adapt(entry, version) for name, entry in config["paths"].items()}
    return adapted
