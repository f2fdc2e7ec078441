#!/usr/bin/env bash
# The main job, end to end: set up, provision four cameras, show each one
# streaming verified frames, tear down; then two USB webcams (--backend uvc)
# that uvcvideo drives, read back the same way. Runs on this host when it has
# v4l2loopback >= 0.13, otherwise inside the simfarm VM.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" != "--inside" ]]; then
    if python3 -c 'import simfarm.doctor as d, sys; sys.exit(0 if d.host_can_run_cameras() else 1)' 2>/dev/null; then
        scripts/setup.sh --no-vm
        exec scripts/demo.sh --inside
    fi
    scripts/setup.sh
    echo "demo: this kernel cannot host v4l2loopback; running the demo inside the simfarm VM"
    exec simfarm vm -- scripts/demo.sh --inside
fi

trap 'for farm in demo usb; do simfarm teardown --farm $farm >/dev/null 2>&1 || true; done' EXIT
simfarm provision --cameras 4 --farm demo --size 640x480 --fps 30
for cam in $(simfarm status --farm demo --json | python3 -c 'import json,sys; [print(c["device"]) for c in json.load(sys.stdin)["farms"][0]["cameras"]]'); do
    echo "== $cam: 60 frames read back and decoded"
    simfarm verify "$cam" --frames 60
done
simfarm status --farm demo
simfarm teardown --farm demo

if modprobe -q vhci_hcd && modprobe -q uvcvideo; then
    echo "== two USB webcams on the virtual USB bus, driven by uvcvideo"
    simfarm provision --backend uvc --cameras 2 --farm usb --profile lowres
    v4l2-ctl --list-devices
    for cam in $(simfarm status --farm usb --json | python3 -c 'import json,sys; [print(c["device"]) for c in json.load(sys.stdin)["farms"][0]["cameras"]]'); do
        echo "== $cam: 30 frames streamed and decoded"
        simfarm verify "$cam" --frames 30
    done
    simfarm teardown --farm usb
else
    echo "demo: no vhci-hcd/uvcvideo modules here: USB webcams (--backend uvc) left out"
fi
