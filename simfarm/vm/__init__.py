"""The VM tier: run commands under a real distribution kernel with
v4l2loopback and udev, on machines whose own kernel cannot load modules.

    from simfarm.vm import run_in_vm
    exit_code = run_in_vm(["pytest", "-m", "hil"])

``run_in_vm`` is imported on first use (see lazyimport): `simfarm doctor`
reads vm.kernel and vm.accel without loading the runner.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import lazyimport

if TYPE_CHECKING:
    from .runner import run_in_vm

__getattr__ = lazyimport.exports(__name__, {".runner": ["run_in_vm"]})

__all__ = ["run_in_vm"]
