"""The generated config and the API client, checked against the reference of every supported MediaMTX version.

The references are the folders shared/reference/mediamtx-v<version> beside
the checkout (or under $SIMFARM_MEDIAMTX_REFERENCE): mediamtx.yml holds every
config key with its default, openapi.yaml the control API. Both are parsed
here, and every test runs once per version, so a key, type, endpoint or field
that one version lacks fails a test.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from simfarm.publishers.mediamtx import (Files, Ports, RecordOptions, Version, build_config, render,
                                        v4l2_publish_argv)
from simfarm.publishers.mediamtx.api import ENDPOINTS, FIELDS, NESTED
from simfarm.publishers.mediamtx.versions import ADDED, adapt, key_for

_DURATION = re.compile(r"(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+")
_PYTHON_TYPES: dict[str, type | tuple[type, ...]] = {
    "boolean": bool, "integer": int, "number": (int, float), "string": str, "array": list, "object": dict}


class _Yaml12Loader(yaml.SafeLoader):
    """YAML 1.2 booleans (only true/false), as MediaMTX and OpenAPI tools read these files: v1.19.1's
    openapi.yaml writes the Encryption enum as a bare `no`, which YAML 1.1 (PyYAML's default) makes False."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Yaml12Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                    list("tTfF"))


# One per supported minor series: the oldest and the newest simfarm knows.
VERSIONS = (Version(1, 19, 1), Version(1, 20, 1))


@dataclass(frozen=True)
class Reference:
    version: Version
    config: dict[str, Any]  # mediamtx.yml
    openapi: dict[str, Any]

    def schema(self, name: str) -> dict[str, Any]:
        return self.resolve({"$ref": f"#/components/schemas/{name}"})

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        """``schema`` with $ref followed and allOf merged in."""
        if "$ref" in schema:
            return self.resolve(self.openapi["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]])
        merged = {key: value for key, value in schema.items() if key != "allOf"}
        for part in schema.get("allOf", ()):
            part = self.resolve(part)
            merged["properties"] = {**merged.get("properties", {}), **part.get("properties", {})}
            merged.setdefault("type", part.get("type"))
        return merged


def reference_dir(version: Version) -> Path:
    root = os.environ.get("SIMFARM_MEDIAMTX_REFERENCE") or Path(__file__).resolve().parents[2] / ".." / "shared" / "reference"
    return Path(root) / f"mediamtx-{version}"


@pytest.fixture(scope="module", params=VERSIONS, ids=str)
def reference(request: pytest.FixtureRequest) -> Reference:
    folder = reference_dir(request.param)
    files = [folder / "mediamtx.yml", folder / "openapi.yaml"]
    if not all(path.is_file() for path in files):
        pytest.fail(f"MediaMTX reference missing: need {files[0]} and {files[1]} (the folder "
                    f"shared/reference/mediamtx-{request.param} beside the checkout; or set "
                    "SIMFARM_MEDIAMTX_REFERENCE to the folder holding it)", pytrace=False)
    return Reference(request.param, *(yaml.load(path.read_text(), Loader=_Yaml12Loader) for path in files))


# --- config against mediamtx.yml: keys and YAML types -------------------------------------------

def example_mismatches(value: Any, example: Any, where: str) -> list[str]:
    """How ``value`` differs in keys or type from ``example``, a value of the reference mediamtx.yml."""
    if isinstance(example, dict):
        if not isinstance(value, dict):
            return [f"{where}: {value!r} where the reference has a mapping"]
        return [problem for key, item in value.items() for problem in (
            example_mismatches(item, example[key], f"{where}.{key}") if key in example
            else [f"{where}.{key}: no such key in the reference"])]
    if isinstance(example, list):
        if not isinstance(value, list):
            return [f"{where}: {value!r} where the reference has a list"]
        if not example:
            return [] if not value else [f"{where}: the reference's list is empty, item type unknown"]
        merged = _merge_examples(example)
        return [problem for index, item in enumerate(value)
                for problem in example_mismatches(item, merged, f"{where}[{index}]")]
    if example is None:  # an empty value in the reference is an empty string in MediaMTX (runOnInit:, pass:)
        return [] if isinstance(value, str) else [f"{where}: {value!r} where the reference has an empty string"]
    if type(value) is not type(example) and not (type(example) is float and type(value) is int):
        return [f"{where}: {type(value).__name__} {value!r} where the reference has "
                f"{type(example).__name__} {example!r}"]
    if isinstance(example, str) and _DURATION.fullmatch(example) and not _DURATION.fullmatch(value):
        return [f"{where}: {value!r} is not a duration like the reference's {example!r}"]
    return []


def _merge_examples(items: list[Any]) -> Any:
    """One example standing for every item of a reference list (mappings: the union of their keys)."""
    if not all(isinstance(item, dict) for item in items):
        return items[0]
    merged: dict[str, Any] = {}
    for item in items:
        for key, value in item.items():
            if merged.get(key) in (None, []):  # prefer an example that shows a type
                merged[key] = value
    return merged


def config_mismatches(config: dict[str, Any], reference: Reference) -> list[str]:
    top = {key: value for key, value in config.items() if key != "paths"}
    problems = example_mismatches(top, reference.config, "")
    if not isinstance(reference.config.get("paths"), dict):
        problems.append("the reference has no paths mapping")
    for name, entry in config.get("paths", {}).items():
        # Settings in paths are those of pathDefaults (reference: "Any setting in pathDefaults can be overridden here").
        problems += example_mismatches(entry, reference.config["pathDefaults"], f".paths.{name}")
    return problems


# --- config against openapi.yaml: GlobalConf / PathConf types and enums -------------------------

def schema_mismatches(value: Any, schema: dict[str, Any], reference: Reference, where: str) -> list[str]:
    """How ``value`` breaks an OpenAPI schema (type, enum, items, properties), or uses a deprecated key."""
    schema = reference.resolve(schema)
    if schema.get("deprecated"):
        return [f"{where}: deprecated in the reference"]
    if value is None:
        return [] if schema.get("nullable") else [f"{where}: null is not allowed"]
    kind = schema.get("type")
    numeric_bool = kind in ("integer", "number") and isinstance(value, bool)
    if kind and (not isinstance(value, _PYTHON_TYPES[kind]) or numeric_bool):
        return [f"{where}: {value!r} is not {kind}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{where}: {value!r} is not one of {schema['enum']}"]
    if kind == "array":
        return [problem for index, item in enumerate(value)
                for problem in schema_mismatches(item, schema["items"], reference, f"{where}[{index}]")]
    if kind == "object" and "properties" in schema:
        return [problem for key, item in value.items() for problem in (
            schema_mismatches(item, schema["properties"][key], reference, f"{where}.{key}")
            if key in schema["properties"] else [f"{where}.{key}: not a property of the schema"])]
    return []


def openapi_mismatches(config: dict[str, Any], reference: Reference) -> list[str]:
    top = {key: value for key, value in config.items() if key not in ("paths", "pathDefaults")}
    problems = schema_mismatches(top, reference.schema("GlobalConf"), reference, "")
    entries = {"pathDefaults": config.get("pathDefaults", {}),
               **{f"paths.{name}": entry for name, entry in config.get("paths", {}).items()}}
    for where, entry in entries.items():
        problems += schema_mismatches(entry, reference.schema("PathConf"), reference, where)
    return problems


PATH_SETS = {
    "none": {},
    "one": {"cam0": v4l2_publish_argv("/dev/video3", gop=15, ffmpeg="/usr/bin/ffmpeg")},
    "several": {f"site/cam-{index}.{kind}": v4l2_publish_argv(f"/dev/video{index}", gop=index + 1, ffmpeg="ffmpeg")
                for index, kind in enumerate(("a", "b~c", "d:e"))},
}
RECORDING = {
    "off": None,
    "default": RecordOptions(),
    "mpegts": RecordOptions(format="mpegts", segment_seconds=10),
    "playback": RecordOptions(playback=True),
    "playback-mpegts": RecordOptions(format="mpegts", segment_seconds=86400, playback=True),
}


def generated(tmp_path: Path, paths: str, record: str, version: Version) -> dict[str, Any]:
    """A generated config for ``version``, as MediaMTX will read it (rendered to YAML and parsed back)."""
    options = RECORDING[record]
    ports = Ports(20001, 20002, 20003 if options and options.playback else None)
    config = build_config(Files(tmp_path), PATH_SETS[paths], ports, version=version, record=options)
    parsed: dict[str, Any] = yaml.safe_load(render(config))
    assert parsed == config
    return parsed


@pytest.mark.parametrize("record", RECORDING)
@pytest.mark.parametrize("paths", PATH_SETS)
def test_config_uses_only_reference_keys_with_reference_types(
        reference: Reference, tmp_path: Path, paths: str, record: str) -> None:
    assert config_mismatches(generated(tmp_path, paths, record, reference.version), reference) == []


@pytest.mark.parametrize("record", RECORDING)
@pytest.mark.parametrize("paths", PATH_SETS)
def test_config_values_fit_the_api_schemas(reference: Reference, tmp_path: Path, paths: str, record: str) -> None:
    assert openapi_mismatches(generated(tmp_path, paths, record, reference.version), reference) == []


def test_every_listener_is_off_or_on_localhost(reference: Reference, tmp_path: Path) -> None:
    # Any server the reference switches on by default (moq, lately) would open fixed ports and clash between farms.
    config = generated(tmp_path, "one", "playback", reference.version)
    switches = [key for key, value in reference.config.items() if isinstance(value, bool)
                and any(other.startswith(key) and other.endswith("Address") for other in reference.config)]
    assert {"api", "playback", "rtsp", "rtmp", "hls", "webrtc", "srt", "moq"} <= set(switches)
    for switch in switches:
        if config.get(switch, reference.config[switch]):
            assert config[f"{switch}Address"].startswith("127.0.0.1:"), switch
    # RTSP over TCP only and unencrypted: no UDP (rtpAddress...) and no RTSPS listeners.
    assert (config["rtspTransports"], config["rtspEncryption"]) == (["tcp"], "no")


def test_checks_catch_what_mediamtx_would_reject(reference: Reference, tmp_path: Path) -> None:
    config = generated(tmp_path, "one", "default", reference.version)
    config["protocols"] = ["tcp"]  # renamed to rtspTransports in v1.11
    config["api"] = "yes"
    config["pathDefaults"]["recordSegmentDuration"] = 3600
    config["paths"]["cam0"]["runOnPublish"] = "x"  # renamed to runOnReady long ago
    assert sorted(config_mismatches(config, reference)) == [
        ".api: str 'yes' where the reference has bool False",
        ".pathDefaults.recordSegmentDuration: int 3600 where the reference has str '1h'",
        ".paths.cam0.runOnPublish: no such key in the reference",
        ".protocols: no such key in the reference",
    ]
    config = generated(tmp_path, "one", "default", reference.version)
    config["rtspTransports"] = ["quic"]
    config["pathDefaults"]["recordFormat"] = "mp4"
    assert openapi_mismatches(config, reference) == [
        ".rtspTransports[0]: 'quic' is not one of ['udp', 'multicast', 'tcp']",
        "pathDefaults.recordFormat: 'mp4' is not one of ['fmp4', 'mpegts']",
    ]


# --- the API client against openapi.yaml -------------------------------------------------------

def _operation(reference: Reference, method: str, path: str) -> dict[str, Any]:
    operation: dict[str, Any] = reference.openapi["paths"].get(path, {}).get(method.lower(), {})
    return operation


@pytest.mark.parametrize("name", ENDPOINTS)
def test_every_call_exists_in_openapi_with_its_method_and_parameters(reference: Reference, name: str) -> None:
    endpoint = ENDPOINTS[name]
    operation = _operation(reference, endpoint.method, endpoint.path)
    assert operation, f"{endpoint.method} {endpoint.path} is not in openapi.yaml"
    parameters = {(parameter["in"], parameter["name"]) for parameter in operation.get("parameters", ())}
    for placeholder in re.findall(r"\{(\w+)\}", endpoint.path):
        assert ("path", placeholder) in parameters
    for query in endpoint.query:
        assert ("query", query) in parameters
    ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": f"#/components/schemas/{endpoint.response}"}
    if endpoint.item:
        assert reference.schema(endpoint.response)["properties"]["items"]["items"] == {
            "$ref": f"#/components/schemas/{endpoint.item}"}


def test_refusals_are_read_as_the_error_schema(reference: Reference) -> None:
    for name, endpoint in ENDPOINTS.items():
        for status, response in _operation(reference, endpoint.method, endpoint.path)["responses"].items():
            if status != "200":
                assert response["content"]["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/Error"}, (name, status)


@pytest.mark.parametrize("schema", FIELDS)
def test_every_field_read_is_in_its_schema(reference: Reference, schema: str) -> None:
    properties = reference.schema(schema).get("properties", {})
    assert [field for field in FIELDS[schema] if field not in properties] == []


def test_nested_fields_hold_the_schema_they_are_read_as(reference: Reference) -> None:
    for (schema, field), inner in NESTED.items():
        prop = reference.schema(schema)["properties"][field]
        held = prop["items"] if prop.get("type") == "array" else prop
        refs = [part["$ref"] for part in [held, *held.get("allOf", ())] if "$ref" in part]
        assert refs == [f"#/components/schemas/{inner}"], (schema, field)


def test_every_declared_schema_is_reached_by_some_call() -> None:
    reached = {"Error"} | {endpoint.response for endpoint in ENDPOINTS.values()} \
        | {endpoint.item for endpoint in ENDPOINTS.values() if endpoint.item} | set(NESTED.values())
    assert set(FIELDS) <= reached


# --- settings that differ between versions ------------------------------------------------------

def test_a_renamed_hook_is_written_as_each_version_names_it(reference: Reference) -> None:
    settings = adapt({"runOnAvailable": "x", "runOnAvailableRestart": True, "runOnUnavailable": "y"},
                     reference.version)
    assert example_mismatches(settings, reference.config["pathDefaults"], "") == []


def test_keys_a_version_lacks_are_refused_for_it_and_known_to_the_next(reference: Reference) -> None:
    for key, since in ADDED.items():
        known = key in reference.config or key in reference.config["pathDefaults"]
        assert known == (reference.version >= since), key
        if not known:
            with pytest.raises(ValueError, match=f"no setting '{key}'"):
                key_for(key, reference.version)
