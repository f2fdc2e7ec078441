#!/usr/bin/env bash
# The whole test suite: sets up, then runs the host tier here and the kernel
# (hil) tier inside the VM (or on this host when it has v4l2loopback).
# Extra arguments go to both pytest runs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

echo "== host tier"
python3 -m pytest -q -n 2 -m "not hil" "$@"

echo "== kernel tier (hil)"
if python3 -c 'import sys, simfarm.doctor as d; sys.exit(0 if d.host_can_run_cameras() else 1)'; then
    scripts/test-kernel-tier.sh "$@"
else
    simfarm vm -- scripts/test-kernel-tier.sh "$@"
fi
