"""`simfarm labgrid exporter-config`: the exporter YAML made of farms' status reports."""

from __future__ import annotations

import pytest
import yaml

from simfarm.errors import BadInput
from simfarm.farm.labgrid_config import exporter_config


def report(farm: str, listen: str) -> dict:
    """A status report of an exporting farm of two webcams, as Farm.status gives it."""
    cameras = [{"camera": i, "label": f"simfarm-{farm}-{i}",
                "usbip": {"busid": f"1-{i + 1}", "state": "offered", "listen": listen}} for i in range(2)]
    return {"farm": farm, "backend": "uvc", "usbip": {"listen": listen}, "cameras": cameras}


def test_one_network_resource_per_exported_webcam_in_a_group_per_farm() -> None:
    config = exporter_config([report("lab", "127.0.0.1:40123"), {"farm": "plain", "cameras": []}], "farmhost")
    assert yaml.safe_load(yaml.safe_dump(config)) == {"simfarm-lab": {
        f"simfarm-lab-{i}": {"cls": "NetworkSimfarmWebcam", "host": "farmhost", "usbip_host": "127.0.0.1",
                             "usbip_port": 40123, "busid": f"1-{i + 1}", "label": f"simfarm-lab-{i}",
                             "farm": "lab", "camera": i} for i in range(2)}}


@pytest.mark.parametrize(("listen", "address"), [("0.0.0.0:3240", "farmhost"), ("[::]:3240", "farmhost"),
                                                 ("[fd00::1]:3240", "fd00::1")])
def test_a_wildcard_listen_is_reached_by_the_hosts_name(listen: str, address: str) -> None:
    resource = exporter_config([report("lab", listen)], "farmhost")["simfarm-lab"]["simfarm-lab-0"]
    assert (resource["usbip_host"], resource["usbip_port"]) == (address, 3240)


def test_no_exporting_farm_is_refused() -> None:
    with pytest.raises(BadInput, match="usbip-listen"):
        exporter_config([{"farm": "plain", "cameras": []}], "farmhost")
