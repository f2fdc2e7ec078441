#!/usr/bin/env bash
# The kernel (hil) tier; runs where v4l2loopback >= 0.13 is loaded: inside
# `simfarm vm`, or on a host that has it. The example HIL suite runs under
# pytest-xdist, the way users run theirs, so per-worker isolation is tested.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
python3 -m pytest -q -p no:cacheprovider -m hil --ignore=tests/example_hil --ignore=tests/labgrid_example "$@" || status=1
python3 -m pytest -q -p no:cacheprovider -n 2 tests/example_hil "$@" || status=1
# labgrid's pytest plugin, with a coordinator and an exporter the example's conftest starts.
python3 -m pytest -q -p no:cacheprovider -p labgrid tests/labgrid_example --lg-env tests/labgrid_example/env.yaml "$@" || status=1
exit $status
