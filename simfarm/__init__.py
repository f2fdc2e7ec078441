"""simfarm: a fake camera farm for hardware-in-the-loop tests on Linux.

    from simfarm import Farm, CameraSpec
    with Farm.provision(4, spec=CameraSpec.parse(size="640x480", fps=30)) as farm:
        print(farm.cameras[0].device, farm.cameras[0].stats())
"""

from __future__ import annotations

from .errors import BadInput, EnvironmentProblem, SimfarmError
from .farm.farm import Camera, Farm, Fault
from .farm.publish_plan import PublishOptions
from .frames.analysis import analyze
from .frames.code import FrameCode, decode
from .spec import CameraSpec, PixelFormat, Size

__version__ = "0.1.0"

__all__ = ["BadInput", "Camera", "CameraSpec", "EnvironmentProblem", "Farm", "Fault", "FrameCode",
           "PixelFormat", "PublishOptions", "SimfarmError", "Size", "analyze", "decode"]
