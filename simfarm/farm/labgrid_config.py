"""A labgrid exporter's configuration for farms' exported webcams (`simfarm labgrid exporter-config`).

labgrid's exporter offers a resource class it does not know with its
parameters as given, so each exported webcam becomes one
``NetworkSimfarmWebcam`` (simfarm.labgrid.resource) in group
``simfarm-FARM``, named by its label, with the address its farm's USB/IP
server is bound to and its busid: what a DUT needs to import it, and what
the farm's host needs to inject its faults.
"""

from __future__ import annotations

from ..errors import BadInput
from ..publishers.usbip.client import parse_server

WILDCARDS = ("0.0.0.0", "::")  # a server bound to every address: DUTs reach it by the host's name


def exporter_config(reports: list[dict], host: str) -> dict[str, dict[str, dict]]:
    """The exporter's resources (group -> name -> parameters) for the exporting farms among ``reports``
    (Farm.status reports); ``host`` is the name DUTs and labgrid reach the farm's host by. BadInput when
    no farm exports webcams."""
    groups: dict[str, dict[str, dict]] = {}
    for report in reports:
        if "usbip" not in report:
            continue
        address, port = parse_server(report["usbip"]["listen"])
        groups[f"simfarm-{report['farm']}"] = {
            cam["label"]: {"cls": "NetworkSimfarmWebcam", "host": host,
                           "usbip_host": host if address in WILDCARDS else address, "usbip_port": port,
                           "busid": cam["usbip"]["busid"], "label": cam["label"], "farm": report["farm"],
                           "camera": cam["camera"]}
            for cam in report["cameras"]}
    if not groups:
        raise BadInput("no farm here exports webcams (simfarm provision --backend uvc --usbip-listen ...)")
    return groups
