#!/usr/bin/env bash
# Installs everything simfarm and its test tiers need, on Debian/Ubuntu, as root.
# Idempotent: a second run only checks. Usage: scripts/setup.sh [--no-vm]
set -euo pipefail
cd "$(dirname "$0")/.."

want_vm=1
[[ "${1:-}" == "--no-vm" ]] && want_vm=0

export DEBIAN_FRONTEND=noninteractive
need=()
for pkg in ffmpeg v4l-utils udev kmod python3 python3-pip; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || need+=("$pkg")
done
if ((${#need[@]})); then
    echo "setup: installing ${need[*]}"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

echo "setup: installing simfarm (editable) with the test, vm and labgrid extras"
# A distribution's own Python refuses pip installs (PEP 668); as root on a
# test machine we install into it anyway rather than hide simfarm in a venv.
if ! python3 -m pip install -q --disable-pip-version-check -e '.[test,vm,labgrid]' 2>/tmp/simfarm-pip.log; then
    if grep -q externally-managed /tmp/simfarm-pip.log; then
        python3 -m pip install -q --disable-pip-version-check --break-system-packages -e '.[test,vm,labgrid]'
    else
        cat /tmp/simfarm-pip.log >&2
        exit 1
    fi
fi

# Bytecode for the checkout: an editable install makes none, and where
# PYTHONDONTWRITEBYTECODE is set no command writes any, so each would compile
# the modules it imports afresh (a third of Python's start-up for `status`).
python3 -m compileall -q simfarm

if ((want_vm)); then
    scripts/setup-vm.sh
fi
echo "setup: done"
