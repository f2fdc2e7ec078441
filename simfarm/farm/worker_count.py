"""How many worker processes (workers.py) a farm gets: decided by the provisioner before anything is made,
so it lives apart from the workers themselves and their producers (numpy)."""

from __future__ import annotations

import os

from ..errors import BadInput


def worker_count(requested: int | None, cameras: int, *, in_supervisor: str | None = None) -> int:
    """How many worker processes run ``cameras`` cameras; 0 runs them in the supervisor itself.

    ``requested`` None: one per core this process may use, no more than there
    are cameras, and none for a single one. ``in_supervisor`` says why this
    farm's cameras must run in the supervisor (a backend or option that has
    no workers), refusing an explicit request for them.
    """
    if requested is not None and requested < 0:
        raise BadInput(f"workers must be 0 or more, not {requested}")
    if in_supervisor is not None:
        if requested:
            raise BadInput(f"workers: {in_supervisor} runs its cameras in the supervisor (use workers 0)")
        return 0
    if requested is None:
        wanted = min(len(os.sched_getaffinity(0)), cameras)
        return wanted if wanted > 1 else 0
    return min(requested, cameras)
