"""The commands, in the order `simfarm --help` shows them, and the module that registers each.

Only the module of the command being run is imported (see ``build_parser``):
`simfarm status` must start about as fast as Python itself, so it must not
import what `simfarm patterns render` needs (numpy, OpenCV). The one-line
help of every command lives here for the same reason: `simfarm --help` lists
them all without importing any command module.
"""

from __future__ import annotations

# command -> (module in simfarm.cli that registers it, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "provision": ("farm_cmd", "create cameras and start streaming into them"),
    "status": ("status_cmd", "show farms, cameras and counters"),
    "teardown": ("status_cmd", "stop a farm and remove everything it made"),
    "env": ("env_cmd", "print a farm's devices and MediaMTX addresses as shell variables (eval \"$(simfarm env)\")"),
    "fault": ("fault_cmd", "inject, clear or list faults on a running farm"),
    "scenario": ("fault_cmd", "run a seeded scenario file of faults on a running farm"),
    "attach": ("attach_cmd", "import a farm's webcam over USB/IP onto this machine (simfarm provision --usbip-listen)"),
    "detach": ("attach_cmd", "unplug webcams that simfarm attach plugged in"),
    "labgrid": ("labgrid_cmd", "print labgrid-exporter's configuration for this host's exported webcams"),
    "snapshot": ("publish_cmd", "one decoded frame of a camera's RTSP path, and the frame code it carries"),
    "recordings": ("publish_cmd", "list the recording segments of a farm provisioned with --record"),
    "patterns": ("patterns_cmd", "list and render test patterns"),
    "profiles": ("profiles_cmd", "list and show the USB webcam profiles of the uvc backend"),
    "verify": ("verify_cmd", "decode every frame's code and report drops, duplicates, order, fps, latency"),
    "udev": ("udev_cmd", "install simfarm's udev rules"),
    "vm": ("vm_cmd", "run a command in a VM with v4l2loopback and udev (e.g. simfarm vm -- pytest -m hil)"),
    "doctor": ("doctor_cmd", "check the host kernel, the VM tier, FFmpeg and MediaMTX"),
}
