"""The resources: one farm webcam offered by a farm's USB/IP server (``simfarm provision --usbip-listen``).

``SimfarmWebcam`` is the local form (the environment file names the webcam
itself); ``NetworkSimfarmWebcam`` is what a labgrid exporter offers and a
``RemotePlace`` expands to (``simfarm labgrid exporter-config`` writes it):
``host`` is the farm's host, where the driver runs ``simfarm fault``.
"""

from __future__ import annotations

import socket

import attr
from labgrid.factory import target_factory
from labgrid.resource.common import NetworkResource, Resource


@target_factory.reg_resource
@attr.s(eq=False)
class SimfarmWebcam(Resource):
    """A farm webcam that a DUT imports from ``usbip_host``:``usbip_port`` as ``busid``.

    ``farm`` and ``camera`` (its index) name it for ``simfarm fault``;
    ``label`` is its USB serial, which names it on the DUT too.
    """

    usbip_host = attr.ib(validator=attr.validators.instance_of(str))
    usbip_port = attr.ib(converter=int)
    busid = attr.ib(validator=attr.validators.instance_of(str))
    label = attr.ib(validator=attr.validators.instance_of(str))
    farm = attr.ib(validator=attr.validators.instance_of(str))
    camera = attr.ib(converter=int)


@target_factory.reg_resource
@attr.s(eq=False)
class NetworkSimfarmWebcam(NetworkResource, SimfarmWebcam):
    """A ``SimfarmWebcam`` of a remote place: commands for the farm run on ``host`` over labgrid's SSH
    connection, except when ``host`` is this machine (an exporter beside its client needs no SSH)."""

    @property
    def command_prefix(self) -> list[str]:
        return [] if _is_here(self.host) else super().command_prefix

    def wrap_command(self, command: list[str]) -> list[str]:
        return command if _is_here(self.host) else super().wrap_command(command)


def _is_here(host: str) -> bool:
    return host in ("localhost", "127.0.0.1", "::1", socket.gethostname(), socket.getfqdn())
