"""Prometheus metrics of a farm: the families one status reply makes, and a real
supervisor (pipes for nodes) serving them over HTTP on a free port."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator

import pytest
from pipe_farm import PipeNodes, make_record
from prometheus_client.parser import text_string_to_metric_families

from simfarm.errors import BadInput
from simfarm.farm import farm as farm_mod
from simfarm.farm import supervisor
from simfarm.publishers.metrics import FarmCollector, cpu_seconds
from simfarm.state.records import FarmRecord

STATUS = {
    "farm": "lab", "backend": "uvc", "supervisor_pid": 1, "started_at": 1700000000.5,
    "workers": [{"worker": 0, "pid": 1, "cameras": [0, 1], "error": None, "restarts": 2}],
    "cameras": [
        {"camera": 0, "label": "simfarm-lab-0", "state": "streaming", "written": 300, "late": 2, "dropped": 1,
         "fps": 29.9, "uptime_s": 10.0, "faults": [{"fault": "c0.1"}],
         "usb": {"dropped": 4}, "usbip": {"busid": "1-1", "state": "imported", "frames": 290, "bytes": 4096}},
        {"camera": 1, "label": "simfarm-lab-1", "state": "unplugged", "faults": [],
         "available": True, "readers": [{"id": "r1"}, {"id": "r2"}], "publisher_restarts": 3},
    ],
}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def collected(status: dict) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client import CollectorRegistry, generate_latest
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FarmCollector(lambda: status))
    return samples(generate_latest(registry).decode())


def cam(index: int, **extra: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"farm": "lab", "camera": str(index), "label": f"simfarm-lab-{index}", **extra}.items()))


def expect(expected: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> None:
    got = collected(STATUS)
    assert {key: got.get(key) for key in expected} == expected


def test_each_camera_figure_is_a_named_and_labelled_metric() -> None:
    expect({("simfarm_frames_written_total", cam(0)): 300, ("simfarm_frames_late_total", cam(0)): 2,
            ("simfarm_frames_dropped_total", cam(0)): 1, ("simfarm_camera_fps", cam(0)): 29.9,
            ("simfarm_camera_active_faults", cam(0)): 1, ("simfarm_camera_active_faults", cam(1)): 0,
            ("simfarm_camera_state", cam(1, state="unplugged")): 1,
            ("simfarm_farm_start_time_seconds", (("backend", "uvc"), ("farm", "lab"))): 1700000000.5})
    # A camera without counters (unplugged, vivid) has no sample rather than a made-up zero.
    assert ("simfarm_frames_written_total", cam(1)) not in collected(STATUS)


def test_mediamtx_usb_and_usbip_figures_where_in_use() -> None:
    expect({("simfarm_mediamtx_path_available", cam(1)): 1, ("simfarm_mediamtx_path_readers", cam(1)): 2,
            ("simfarm_mediamtx_publisher_restarts_total", cam(1)): 3, ("simfarm_usb_frames_dropped_total", cam(0)): 4,
            ("simfarm_usbip_imported", cam(0, busid="1-1")): 1,
            ("simfarm_usbip_frames_served_total", cam(0, busid="1-1")): 290,
            ("simfarm_usbip_served_bytes_total", cam(0, busid="1-1")): 4096})
    plain = collected({**STATUS, "cameras": [{k: v for k, v in STATUS["cameras"][0].items()
                                              if k not in ("usb", "usbip")}]})
    assert not [name for name, _ in plain if "usbip" in name or "mediamtx" in name or name.startswith("simfarm_usb")]


def test_process_cpu_is_read_from_proc() -> None:
    got = collected(STATUS)
    assert got[("simfarm_process_cpu_seconds_total", (("farm", "lab"), ("process", "supervisor")))] >= 0
    assert ("simfarm_process_cpu_seconds_total", (("farm", "lab"), ("process", "worker-0"))) in got
    assert cpu_seconds(2**22 + 12345) is None  # no such process


def test_worker_restarts_are_counted_per_worker() -> None:
    assert collected(STATUS)[("simfarm_worker_restarts_total", (("farm", "lab"), ("worker", "0")))] == 2
    without = collected({k: v for k, v in STATUS.items() if k != "workers"})
    assert not [name for name, _ in without if name.startswith("simfarm_worker_restarts")]


@pytest.mark.parametrize("text", ["127.0.0.1", "localhost:9100", "[::1]", "1.2.3.4:99999"])
def test_a_bad_metrics_address_is_bad_input(text: str) -> None:
    with pytest.raises(BadInput, match="metrics listen address"):
        farm_mod._metrics_spec(text)


def test_the_farm_file_takes_metrics_listen(tmp_path) -> None:
    from simfarm.farm import config
    (tmp_path / "farm.yaml").write_text("metrics_listen: 127.0.0.1:0\n")
    assert config.load(str(tmp_path / "farm.yaml")).metrics_listen == "127.0.0.1:0"
    (tmp_path / "farm.yaml").write_text("metrics_listen: 9100\n")
    with pytest.raises(BadInput, match="metrics_listen is an address"):
        config.load(str(tmp_path / "farm.yaml"))


def metered_record(name: str, listen: str) -> FarmRecord:
    record = make_record(name)
    record.spec["metrics"] = {"listen": listen}
    record.save()
    return record


@pytest.fixture
def serving(monkeypatch: pytest.MonkeyPatch) -> Iterator[supervisor.Supervisor]:
    PipeNodes(monkeypatch)
    sup = supervisor.Supervisor(metered_record("metered", "127.0.0.1:0"))
    sup.start()
    yield sup
    sup.shutdown()


def scrape(sup: supervisor.Supervisor) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://{sup.status()['metrics']['listen']}/metrics", timeout=30) as reply:
        assert reply.headers["Content-Type"].startswith("text/plain")
        return samples(reply.read().decode())


def wait_until(condition: Callable[[], object], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_running_farm_serves_its_counters(serving: supervisor.Supervisor) -> None:
    labels = [tuple(sorted({"farm": "metered", "camera": str(i), "label": f"simfarm-metered-{i}"}.items()))
              for i in range(2)]
    wait_until(lambda: all(scrape(serving).get(("simfarm_frames_written_total", key), 0) > 0 for key in labels),
               "both cameras' frames in the metrics")
    first = scrape(serving)[("simfarm_frames_written_total", labels[0])]
    wait_until(lambda: scrape(serving)[("simfarm_frames_written_total", labels[0])] > first, "the counter to grow")


def test_shutdown_leaves_no_listener(monkeypatch: pytest.MonkeyPatch) -> None:
    PipeNodes(monkeypatch)
    sup = supervisor.Supervisor(metered_record("closing", "127.0.0.1:0"))
    sup.start()
    host, port = sup.status()["metrics"]["listen"].rsplit(":", 1)
    sup.shutdown()
    with pytest.raises(OSError):
        socket.create_connection((host, int(port)), timeout=5).close()


def test_a_taken_port_fails_the_start_with_bad_input(monkeypatch: pytest.MonkeyPatch) -> None:
    PipeNodes(monkeypatch)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        sup = supervisor.Supervisor(metered_record("taken", f"127.0.0.1:{taken.getsockname()[1]}"))
        with pytest.raises(BadInput, match="metrics listen address 127.0.0.1:[0-9]+: cannot listen there") as info:
            sup.start()
        assert info.value.exit_code == 2 and "\n" not in str(info.value)
        assert sup.host.status() and all(cam["state"] != "streaming" for cam in sup.host.status())  # none made
        sup.shutdown()
