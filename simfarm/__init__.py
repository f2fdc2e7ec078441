"""simfarm: a fake camera farm for hardware-in-the-loop tests on Linux."""

from __future__ import annotations

__version__ = "0.1.0"
