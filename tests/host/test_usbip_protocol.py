"""USB/IP's handshake codec against the bytes the stock tools send and expect.

The request fixtures are what Debian's usbip 2.0+6.1.192 sent to a listening
socket (`usbip --tcp-port P list -r 127.0.0.1`, `usbip ... attach -r 127.0.0.1 -b 1-1`);
the reply fixtures are written field by field from tools/usb/usbip's
usbip_network.h and usbip_common.h, and the stock `usbip list -r` reads them back
(test_stock_usbip_list_reads_the_reply_fixture, when the tool is installed).
"""

from __future__ import annotations

import io
import shutil
import socket
import struct
import subprocess
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simfarm.backends.uvc import profiles as uvc_profiles
from simfarm.devices.usb.usbip_protocol import (IMPORT_REQUEST_SIZE, RECORD_SIZE, SPEED_SUPER, ST_DEV_BUSY, ST_NODEV,
                                                DevlistRequest, ExportedDevice, ImportRequest, ProtocolError,
                                                StatusError, decode_request, device_from_descriptors,
                                                encode_devlist_reply, encode_import_reply, encode_request,
                                                read_devlist_reply, read_import_reply, read_request)
from simfarm.devices.usb.usbip_device import descriptors

# Captured from the stock client: the header (version 0x0111, code, status 0), then an import's busid
# strncpy'd into 32 zeroed bytes.
STOCK_DEVLIST_REQUEST = bytes.fromhex("0111800500000000")
STOCK_IMPORT_REQUEST = bytes.fromhex("0111800300000000" "312d31" + "00" * 29)

WEBCAM = ExportedDevice(busid="1-1", path="/sys/devices/simfarm/1-1", busnum=1, devnum=2, speed=SPEED_SUPER,
                        id_vendor=0x1D6B, id_product=0x0102, bcd_device=0x0100, device_class=0xEF,
                        device_subclass=0x02, device_protocol=0x01, configuration_value=1, num_configurations=1,
                        interfaces=((0x0E, 0x01, 0x00), (0x0E, 0x02, 0x00)))
RECORD = (b"/sys/devices/simfarm/1-1".ljust(256, b"\0")  # path[256]
          + b"1-1".ljust(32, b"\0")  # busid[32]
          + bytes.fromhex("00000001" "00000002" "00000005"  # busnum, devnum, speed (USB_SPEED_SUPER)
                          "1d6b" "0102" "0100"  # idVendor, idProduct, bcdDevice
                          "ef0201"  # bDeviceClass, bDeviceSubClass, bDeviceProtocol
                          "01" "01" "02"))  # bConfigurationValue, bNumConfigurations, bNumInterfaces
DEVLIST_REPLY = bytes.fromhex("0111000500000000" "00000001") + RECORD + bytes.fromhex("0e010000" "0e020000")
IMPORT_REPLY = bytes.fromhex("0111000300000000") + RECORD


def reader(data: bytes) -> io.BytesIO:
    return io.BytesIO(data)


def test_fixture_sizes_follow_the_layouts() -> None:
    assert len(RECORD) == RECORD_SIZE == 312
    assert len(STOCK_IMPORT_REQUEST) == IMPORT_REQUEST_SIZE == 40


def test_requests_encode_as_the_stock_client_sends_them() -> None:
    assert encode_request(DevlistRequest()) == STOCK_DEVLIST_REQUEST
    assert encode_request(ImportRequest("1-1")) == STOCK_IMPORT_REQUEST


def test_requests_decode_from_the_stock_clients_bytes() -> None:
    assert decode_request(STOCK_DEVLIST_REQUEST) == DevlistRequest()
    assert decode_request(STOCK_IMPORT_REQUEST) == ImportRequest("1-1")


def test_read_request_takes_exactly_the_request_and_leaves_the_rest() -> None:
    stream = reader(STOCK_IMPORT_REQUEST + b"URBs")
    assert read_request(stream.read) == ImportRequest("1-1")
    assert stream.read() == b"URBs"


def test_devlist_reply_matches_the_layout_both_ways() -> None:
    assert encode_devlist_reply([WEBCAM]) == DEVLIST_REPLY
    assert read_devlist_reply(reader(DEVLIST_REPLY).read) == [WEBCAM]
    empty = bytes.fromhex("0111000500000000" "00000000")
    assert encode_devlist_reply([]) == empty and read_devlist_reply(reader(empty).read) == []


def test_devlist_reply_of_two_devices_keeps_each_ones_interfaces() -> None:
    other = ExportedDevice("1-2", "/sys/devices/simfarm/1-2", 1, 3, 3, 0x046D, 0x0825, 0x0012, 0, 0, 0, 1, 1,
                           ((0x0E, 0x01, 0x00), (0x0E, 0x02, 0x00), (0x01, 0x01, 0x00)))
    assert read_devlist_reply(reader(encode_devlist_reply([WEBCAM, other])).read) == [WEBCAM, other]


def test_import_reply_is_the_record_alone() -> None:
    assert encode_import_reply(WEBCAM) == IMPORT_REPLY
    stream = reader(IMPORT_REPLY + b"URBs")
    got = read_import_reply(stream.read)
    assert got == ExportedDevice(**{**WEBCAM.__dict__, "interfaces": ()})  # an import's record lists none
    assert stream.read() == b"URBs"


@pytest.mark.parametrize("status", [ST_DEV_BUSY, ST_NODEV])
def test_a_refused_import_is_the_bare_header(status: int) -> None:
    refusal = encode_import_reply(None, status)
    assert refusal == bytes.fromhex("0111000300000000")[:4] + struct.pack(">I", status)
    with pytest.raises(StatusError) as caught:
        read_import_reply(reader(refusal).read)
    assert caught.value.status == status


def test_a_reply_of_the_wrong_kind_or_version_is_refused() -> None:
    with pytest.raises(ProtocolError, match="reply code"):
        read_import_reply(reader(DEVLIST_REPLY).read)
    with pytest.raises(ProtocolError, match="version"):
        read_devlist_reply(reader(b"\x01\x06" + DEVLIST_REPLY[2:]).read)


def test_a_truncated_reply_is_a_protocol_error() -> None:
    for cut in (0, 7, 11, 12 + RECORD_SIZE, len(DEVLIST_REPLY) - 1):
        with pytest.raises(ProtocolError, match="ended"):
            read_devlist_reply(reader(DEVLIST_REPLY[:cut]).read)


@pytest.mark.parametrize("name", sorted(uvc_profiles.available()))
def test_the_record_comes_from_the_webcams_own_descriptors(name: str) -> None:
    profile = uvc_profiles.load(name, "s")
    device = device_from_descriptors(*descriptors(profile), busid="1-1", path="/sys/devices/simfarm/1-1",
                                     busnum=1, devnum=2, speed=SPEED_SUPER)
    assert (device.id_vendor, device.id_product, device.bcd_device) == (profile.vendor_id, profile.product_id, 0x0100)
    assert (device.device_class, device.device_subclass, device.device_protocol) == (0xEF, 0x02, 0x01)  # IAD
    assert (device.configuration_value, device.num_configurations) == (1, 1)
    assert device.interfaces == ((0x0E, 0x01, 0x00), (0x0E, 0x02, 0x00))  # video control, video streaming


def test_device_from_descriptors_refuses_other_descriptors() -> None:
    device, config = descriptors(uvc_profiles.load(sorted(uvc_profiles.available())[0], "s"))
    with pytest.raises(ValueError):
        device_from_descriptors(config, device, busid="1-1", path="", busnum=1, devnum=2, speed=SPEED_SUPER)


BAD_REQUESTS = {
    "wrong version": bytes.fromhex("0106800500000000"),
    "unknown command (DEVINFO)": bytes.fromhex("0111800200000000") + b"1-1".ljust(32, b"\0"),
    "a reply's code": bytes.fromhex("0111000500000000"),
    "a request with a status": bytes.fromhex("0111800500000001"),
    "busid not NUL-terminated": bytes.fromhex("0111800300000000") + b"1" * 32,
    "empty busid": bytes.fromhex("0111800300000000") + bytes(32),
    "busid not ASCII": bytes.fromhex("0111800300000000") + "é".encode().ljust(32, b"\0"),
    "busid not printable": bytes.fromhex("0111800300000000") + b"1-\n".ljust(32, b"\0"),
    "truncated header": STOCK_DEVLIST_REQUEST[:5],
    "truncated busid": STOCK_IMPORT_REQUEST[:20],
    "empty": b"",
    "oversized devlist": STOCK_DEVLIST_REQUEST + b"\0",
    "oversized import": STOCK_IMPORT_REQUEST + b"\0" * 1000,
}


@pytest.mark.parametrize("data", BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys())
def test_bad_requests_are_protocol_errors(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_request(data)


@pytest.mark.parametrize("busid", ["", "x" * 32, "1-\0", "é"])
def test_a_record_refuses_what_its_fields_cannot_carry(busid: str) -> None:
    with pytest.raises(ValueError):
        ExportedDevice(**{**WEBCAM.__dict__, "busid": busid})
    with pytest.raises(ValueError):
        ExportedDevice(**{**WEBCAM.__dict__, "id_vendor": 0x10000})


class ChunkedReader:
    """A stream that hands out at most the given sizes in turn (a socket's short reads), counting the bytes."""

    def __init__(self, data: bytes, chunks: list[int]) -> None:
        self.data, self.chunks, self.at = data, chunks, 0

    def read(self, size: int) -> bytes:
        step = min(size, self.chunks.pop(0) if self.chunks else size)
        part = self.data[self.at:self.at + step]
        self.at += len(part)
        return part


PROPERTY = settings(max_examples=200, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
# Arbitrary bytes, and bytes that start like a request so the parser gets past the header.
REQUEST_BYTES = st.one_of(
    st.binary(max_size=100),
    st.builds(lambda head, rest: head + rest,
              st.sampled_from([STOCK_DEVLIST_REQUEST, STOCK_IMPORT_REQUEST[:8], STOCK_IMPORT_REQUEST[:4]]),
              st.binary(max_size=64)))


@PROPERTY
@given(data=REQUEST_BYTES, chunks=st.lists(st.integers(1, 41), max_size=50))
def test_the_request_parser_only_ever_raises_protocol_errors(data: bytes, chunks: list[int]) -> None:
    stream = ChunkedReader(data, chunks)
    try:
        request = read_request(stream.read)
    except ProtocolError:
        return
    assert stream.at in (8, 40)  # never read past the request
    assert decode_request(data[:stream.at]) == request
    assert decode_request(encode_request(request)) == request


@PROPERTY
@given(data=REQUEST_BYTES)
def test_decoding_whole_packets_accepts_exactly_the_encodable_requests(data: bytes) -> None:
    try:
        request = decode_request(data)
    except ProtocolError:
        return
    assert len(data) in (8, 40)
    assert decode_request(encode_request(request)) == request


TEXT = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=31)
DEVICES = st.builds(ExportedDevice, busid=TEXT, path=st.just("") | TEXT, busnum=st.integers(0, 2**32 - 1),
                    devnum=st.integers(0, 2**32 - 1), speed=st.integers(0, 6), id_vendor=st.integers(0, 0xFFFF),
                    id_product=st.integers(0, 0xFFFF), bcd_device=st.integers(0, 0xFFFF),
                    device_class=st.integers(0, 255), device_subclass=st.integers(0, 255),
                    device_protocol=st.integers(0, 255), configuration_value=st.integers(0, 255),
                    num_configurations=st.integers(0, 255),
                    interfaces=st.lists(st.tuples(*[st.integers(0, 255)] * 3), max_size=8).map(tuple))


@settings(max_examples=40, derandomize=True, database=None, deadline=None)
@given(devices=st.lists(DEVICES, max_size=4))
def test_devlist_replies_round_trip(devices: list[ExportedDevice]) -> None:
    assert read_devlist_reply(reader(encode_devlist_reply(devices)).read) == devices


@pytest.mark.skipif(shutil.which("usbip") is None, reason="needs the stock usbip tool (Debian: usbip)")
def test_stock_usbip_list_reads_the_reply_fixture() -> None:
    """`usbip list -r` needs only a TCP connection: it sends the request fixture and prints the reply's device."""
    listener = socket.create_server(("127.0.0.1", 0))
    received: list[bytes] = []

    def answer() -> None:
        connection, _ = listener.accept()
        with connection:
            received.append(connection.recv(4096))
            connection.sendall(DEVLIST_REPLY)

    thread = threading.Thread(target=answer)
    thread.start()
    try:
        done = subprocess.run(["usbip", "--tcp-port", str(listener.getsockname()[1]), "list", "-r", "127.0.0.1"],
                              capture_output=True, text=True, timeout=10, check=False)
    finally:
        thread.join(timeout=10)
        listener.close()
    assert received == [STOCK_DEVLIST_REQUEST]
    assert done.returncode == 0, done.stderr
    lines = [" ".join(line.split()) for line in done.stdout.splitlines()]
    assert any(line.startswith("1-1:") and line.endswith("(1d6b:0102)") for line in lines), done.stdout
    assert ": /sys/devices/simfarm/1-1" in lines
    assert any(line.endswith("(ef/02/01)") for line in lines)
    assert any(line.startswith(": 0 - ") and line.endswith("(0e/01/00)") for line in lines)
    assert any(line.startswith(": 1 - ") and line.endswith("(0e/02/00)") for line in lines)
