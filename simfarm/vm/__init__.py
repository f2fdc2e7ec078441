"""The VM tier: run commands under a real distribution kernel with
v4l2loopback and udev, on machines whose own kernel cannot load modules.

    from simfarm.vm import run_in_vm
    exit_code = run_in_vm(["pytest", "-m", "hil"])
"""

from __future__ import annotations

from .runner import run_in_vm

__all__ = ["run_in_vm"]
