"""simfarm: a fake camera farm for hardware-in-the-loop tests on Linux.

    from simfarm import Farm, CameraSpec
    with Farm.provision(4, spec=CameraSpec.parse(size="640x480", fps=30)) as farm:
        print(farm.cameras[0].device, farm.cameras[0].stats())

The names below are imported on first use (see lazyimport): ``import
simfarm`` alone, as every CLI command does, loads none of numpy, OpenCV or
linuxpy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import lazyimport

if TYPE_CHECKING:
    from .errors import BadInput, EnvironmentProblem, SimfarmError
    from .farm.farm import Camera, Farm, Fault
    from .farm.publish_plan import PublishOptions
    from .frames.analysis import analyze
    from .frames.code import FrameCode, decode
    from .spec import CameraSpec, PixelFormat, Size

__version__ = "0.1.0"

__getattr__ = lazyimport.exports(__name__, {
    ".errors": ["BadInput", "EnvironmentProblem", "SimfarmError"],
    ".farm.farm": ["Camera", "Farm", "Fault"],
    ".farm.publish_plan": ["PublishOptions"],
    ".frames.analysis": ["analyze"],
    ".frames.code": ["FrameCode", "decode"],
    ".spec": ["CameraSpec", "PixelFormat", "Size"],
})

__all__ = ["BadInput", "Camera", "CameraSpec", "EnvironmentProblem", "Farm", "Fault", "FrameCode",
           "PixelFormat", "PublishOptions", "SimfarmError", "Size", "analyze", "decode"]
