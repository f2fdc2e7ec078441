"""labgrid support: a farm webcam exported over USB/IP as a labgrid resource, and its driver.

Importing this package registers ``SimfarmWebcam``, ``NetworkSimfarmWebcam``
and ``SimfarmWebcamDriver`` with labgrid's target factory, so an environment
file loads them with ``imports: [simfarm.labgrid]``. It needs labgrid
(``pip install simfarm[labgrid]``); nothing else in simfarm imports it.
"""

from . import driver, resource

__all__ = ["driver", "resource"]
