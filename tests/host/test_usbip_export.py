"""Issue 21 without a kernel: the farm's USB/IP options, a webcam as an Export over loopback TCP, and
`simfarm attach`/`detach`'s choices (which export, which vhci-hcd ports are theirs)."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from simfarm import Farm
from simfarm.backends.uvc import profiles
from simfarm.backends.uvc.export import WebcamExport
from simfarm.cli import main
from simfarm.devices.usb import vhci
from simfarm.devices.usb.usbip_device import UsbipWebcamDevice, descriptors
from simfarm.devices.usb.usbip_protocol import SPEED_SUPER, ExportedDevice, simfarm_label, simfarm_path
from simfarm.errors import BadInput
from simfarm.farm import config
from simfarm.publishers.usbip import attachments, importer
from simfarm.publishers.usbip.client import import_device, list_remote, parse_server
from simfarm.publishers.usbip.server import UsbipServer
from simfarm.spec import CameraSpec
from simfarm.state.records import farm_names

from test_usbip_device import FakeHost

GET_DEVICE_DESCRIPTOR = struct.pack("<BBHHH", 0x80, 0x06, 0x0100, 0, 18)


@pytest.fixture(autouse=True)
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIMFARM_STATE_DIR", str(tmp_path))


@pytest.mark.parametrize("args, words", [
    (["--backend", "uvc", "--usbip-listen", "127.0.0.1:0", "--workers", "2"],
     "a farm exporting over USB/IP runs its cameras in the supervisor"),
    (["--usbip-listen", "127.0.0.1:0"], "usbip-listen exports USB webcams (--backend uvc), not loopback cameras"),
    (["--backend", "vivid", "--usbip-listen", ":0"], "not vivid cameras"),
    (["--backend", "uvc", "--usbip-listen", "camhost:3240"], "'camhost' is not an IP address"),
    (["--backend", "uvc", "--usbip-listen", "127.0.0.1:70000"], "the port must be a number from 0 to 65535"),
    (["--backend", "uvc", "--usbip-listen", "[::1:3240"], "expected [IPV6]:PORT"),
    (["--backend", "uvc", "--usbip-listen", ":0", "--usbip-allow", "10.0.0.0/33"], "usbip allow '10.0.0.0/33'"),
    (["--backend", "uvc", "--usbip-listen", ":0", "--usbip-allow", "10.0.0.0/8,nope"], "usbip allow 'nope'"),
    (["--backend", "uvc", "--usbip-allow", "10.0.0.0/8"], "usbip-allow needs usbip-listen"),
])
def test_bad_usbip_options_are_one_line_with_nothing_made(capsys, args: list[str], words: str) -> None:
    assert main(["provision", *args]) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1, err
    assert farm_names() == []


def test_a_farm_file_names_the_listen_address_and_the_allowed_networks(tmp_path: Path) -> None:
    path = tmp_path / "farm.yaml"
    path.write_text("backend: uvc\nusbip_listen: '[::1]:0'\nusbip_allow: 10.0.0.0/8\ncameras: 2\n")
    plan = config.load(str(path))
    assert (plan.usbip_listen, plan.usbip_allow) == ("[::1]:0", ["10.0.0.0/8"])
    path.write_text("usbip_allow: [10.0.0.0/8, fd00::/8]\n")
    assert config.load(str(path)).usbip_allow == ["10.0.0.0/8", "fd00::/8"]
    path.write_text("usbip_listen: 3240\n")
    with pytest.raises(BadInput, match=r"farm.yaml:1: usbip_listen is an address"):
        config.load(str(path))


@pytest.fixture
def served() -> Iterator[tuple[UsbipServer, WebcamExport]]:
    """Camera 1 of farm "lab" exported by a server on a free loopback port."""
    export = WebcamExport(UsbipWebcamDevice(profiles.load("lowres", "simfarm-lab-1"), on_stream=lambda *a: None,
                                            on_stop=lambda: None), "lab", 1)
    export.offer()
    with UsbipServer("127.0.0.1:0", catalog=lambda: [e for e in [export] if e.offered]) as server:
        yield server, export


def test_an_export_describes_its_webcam_and_is_the_device_on_the_imported_connection(served) -> None:
    server, export = served
    host, port = server.address
    (listed,) = list_remote(host, port)
    device, _config = descriptors(export.usb.profile)
    assert (listed.busid, listed.speed, simfarm_label(listed)) == ("1-2", SPEED_SUPER, "simfarm-lab-1")
    assert (listed.id_vendor, listed.id_product) == struct.unpack_from("<HH", device, 8)
    connection, imported = import_device(host, port, "1-2")
    with connection:
        assert server.wait_state("1-2", "imported", timeout=10)
        fake = FakeHost(connection)
        fake.submit(ep=0, length=18, setup=GET_DEVICE_DESCRIPTOR)
        assert fake.reply()[3] == device
        assert export.counters()["bytes"] > 0
        # Unplugged on the farm: the import ends (the importer sees its connection close), and it is
        # listed no more until offered again.
        export.withdraw()
        assert connection.recv(1) == b""
        assert server.wait_state("1-2", "offered", timeout=10) and list_remote(host, port) == []
    export.offer()
    assert [d.busid for d in list_remote(host, port)] == ["1-2"]


def record(busid: str, label: str | None) -> ExportedDevice:
    return ExportedDevice(busid, simfarm_path("lab", label) if label else "/sys/devices/pci0000:00/usb1/" + busid,
                          1, 1, SPEED_SUPER, 0x1D6B, 0x0102, 0x100, 0xEF, 2, 1, 1, 1, ((14, 1, 0),))


def test_attach_chooses_the_export_by_busid_by_label_or_the_only_one() -> None:
    devices = [record("1-1", "simfarm-lab-0"), record("1-2", "simfarm-lab-1"), record("3-1", None)]
    assert importer.choose(devices, busid="1-2").busid == "1-2"
    assert importer.choose(devices, camera="simfarm-lab-0").busid == "1-1"
    assert importer.choose(devices[2:]).busid == "3-1"
    with pytest.raises(BadInput, match=r"exports 3 devices: choose one with --busid or --camera"):
        importer.choose(devices)
    with pytest.raises(BadInput, match=r"no camera simfarm-lab-9 \(exported: 1-1 \(simfarm-lab-0\), 1-2"):
        importer.choose(devices, camera="simfarm-lab-9")
    with pytest.raises(BadInput, match="no busid 9-9"):
        importer.choose(devices, busid="9-9")


def test_detach_unplugs_only_ports_simfarm_attach_made_and_still_holding_its_device(
        monkeypatch: pytest.MonkeyPatch) -> None:
    on_ports = {5: ("3-1", "simfarm-lab-0"), 6: ("3-2", "someone-else")}  # port 6 was freed and retaken
    detached: list[int] = []
    monkeypatch.setattr(vhci, "at_port", lambda port: vhci.Attachment(port, on_ports[port][0])
                        if port in on_ports else None)
    monkeypatch.setattr(vhci, "device_serial", lambda found: on_ports[found.port][1])
    monkeypatch.setattr(vhci, "detach", detached.append)
    monkeypatch.setattr(vhci, "wait_nodes_gone", lambda busid, watch: None)
    monkeypatch.setattr(importer.uevents, "Watch", lambda *subsystems: None)
    ours = attachments.Attachment("127.0.0.1", 3240, "1-1", "simfarm-lab-0", 5, "3-1", "simfarm-lab-0")
    stale = attachments.Attachment("127.0.0.1", 3240, "1-2", "simfarm-lab-1", 6, "3-2", "simfarm-lab-1")
    attachments.save([ours, stale])
    with pytest.raises(BadInput, match="simfarm attach made no attachment of 1-3 here"):
        importer.detach("1-3")
    assert detached == [] and attachments.load() == [ours, stale]
    assert importer.detach(None) == [ours, stale]
    assert detached == [5] and attachments.load() == []


@pytest.mark.parametrize("text, expected", [("farm", ("farm", 3240)), ("farm:3241", ("farm", 3241)),
                                            ("[::1]:5", ("::1", 5)), ("::1", ("::1", 3240))])
def test_attach_takes_a_server_by_name_or_address_with_an_optional_port(text: str, expected: tuple) -> None:
    assert parse_server(text) == expected


@pytest.mark.parametrize("server", ["farm:", ":3240", "farm:0", "[::1]x", "farm:http"])
def test_a_bad_server_is_one_line_before_anything_is_asked(capsys, server: str) -> None:
    assert main(["attach", server]) == 2
    err = capsys.readouterr().err
    assert "expected HOST, HOST:PORT or [IPV6]:PORT" in err and len(err.strip().splitlines()) == 1


def test_an_exporting_farm_offers_its_webcams_and_its_faults_and_teardown_reach_the_importer() -> None:
    spec = CameraSpec.parse(size="320x240", fps=30, profile="lowres")
    with Farm.provision(2, name="exp", spec=spec, backend="uvc", usbip_listen="127.0.0.1:0") as farm:
        status = farm.status()
        host, port = status["usbip"]["listen"].split(":")
        assert [(c["usbip"]["busid"], c["usbip"]["state"], c["device"]) for c in status["cameras"]] == [
            ("1-1", "offered", None), ("1-2", "offered", None)]
        assert [simfarm_label(d) for d in list_remote(host, int(port))] == ["simfarm-exp-0", "simfarm-exp-1"]
        connection, _ = import_device(host, int(port), "1-2")
        with connection:
            fake = FakeHost(connection)
            fake.submit(ep=0, length=18, setup=GET_DEVICE_DESCRIPTOR)
            assert len(fake.reply()[3]) == 18
            imported = farm.status()["cameras"][1]["usbip"]
            assert imported["state"] == "imported" and imported["peer"].startswith("127.0.0.1:")
            farm.request({"op": "fault", "camera": 1, "kind": "unplug", "params": {}})
            assert connection.recv(1) == b""  # the importer's cable is pulled
        assert farm.status()["cameras"][1]["usbip"]["state"] == "withdrawn"
        assert [d.busid for d in list_remote(host, int(port))] == ["1-1"]
        farm.request({"op": "fault", "camera": 1, "kind": "replug", "params": {}})
        assert [d.busid for d in list_remote(host, int(port))] == ["1-1", "1-2"]
        with pytest.raises(BadInput, match="its port is on the importing machine"):
            farm.request({"op": "fault", "camera": 0, "kind": "bus-reset", "params": {}})
    with pytest.raises(OSError):
        socket.create_connection((host, int(port)), timeout=5).close()
    assert farm_names() == []


def test_a_listen_address_that_cannot_be_bound_fails_the_provision_with_nothing_left(capsys) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        listen = f"127.0.0.1:{taken.getsockname()[1]}"
        assert main(["provision", "--backend", "uvc", "--profile", "lowres", "--usbip-listen", listen]) == 1
    err = capsys.readouterr().err
    assert "cannot listen for USB/IP on 127.0.0.1" in err and len(err.strip().splitlines()) == 1, err
    assert farm_names() == []
