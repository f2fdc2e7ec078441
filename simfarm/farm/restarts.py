"""When to restart a worker process that died, and when to give up on it.

A worker that dies once (killed, out of memory) is restarted at once, nearly:
its cameras are down until then. One that keeps dying (a node it cannot open,
a bug its cameras trigger) must not become a fork loop: each crash within
the window doubles the wait before the next restart, and the LIMIT-th crash
within WINDOW_S seconds ends the restarts, leaving the worker dead and its
cameras in state error saying so.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

LIMIT = 5
WINDOW_S = 60.0
FIRST_DELAY_S = 0.1
MAX_DELAY_S = 5.0


@dataclass
class CrashHistory:
    """One worker's crashes within the last WINDOW_S seconds, by monotonic time."""

    limit: int = LIMIT
    window_s: float = WINDOW_S
    _crashes: deque[float] = field(default_factory=deque)

    def crashed(self, now: float) -> float | None:
        """Note a crash at ``now``: the seconds to wait before restarting, or None to give up."""
        self._crashes.append(now)
        while self._crashes[0] <= now - self.window_s:
            self._crashes.popleft()
        recent = len(self._crashes)
        if recent >= self.limit:
            return None
        return min(FIRST_DELAY_S * 2 ** (recent - 1), MAX_DELAY_S)

    def given_up(self, worker: int) -> str:
        return f"worker {worker} crashed {self.limit} times in {self.window_s:g} s: given up"
