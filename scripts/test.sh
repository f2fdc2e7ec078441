#!/usr/bin/env bash
# The whole test suite: sets up, then runs the host tier here and the kernel
# (hil) tier inside the VM (or on this host when it has v4l2loopback).
# Extra arguments go to both pytest runs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

# The MediaMTX tier runs against a real server, and here it must run: a skip of
# it fails the run (tests/conftest.py). Without a mediamtx of the user's own
# (PATH or $SIMFARM_MEDIAMTX), the test tiers use the binary provided beside
# the checkout for them (../shared/mediamtx); simfarm itself never looks there.
export SIMFARM_REQUIRE_MEDIAMTX=1
shared_mediamtx=$(realpath -m ../shared/mediamtx/mediamtx)
if [[ -z "${SIMFARM_MEDIAMTX:-}" ]] && ! command -v mediamtx >/dev/null && [[ -x "$shared_mediamtx" ]]; then
    export SIMFARM_MEDIAMTX=$shared_mediamtx
fi
echo "MediaMTX for the tests: ${SIMFARM_MEDIAMTX:-$(command -v mediamtx || echo 'none found')}"

echo "== host tier"
python3 -m pytest -q -n 2 -m "not hil" "$@"

echo "== kernel tier (hil)"
if python3 -c 'import sys, simfarm.doctor as d; sys.exit(0 if d.host_can_run_cameras() else 1)'; then
    scripts/test-kernel-tier.sh "$@"
else
    simfarm vm -- scripts/test-kernel-tier.sh "$@"
fi
