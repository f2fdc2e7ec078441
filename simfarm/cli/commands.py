"""The list of command modules, in the order `simfarm --help` shows them."""

from __future__ import annotations

from . import doctor_cmd, env_cmd, farm_cmd, fault_cmd, patterns_cmd, publish_cmd, udev_cmd, verify_cmd, vm_cmd

ALL: list = [farm_cmd, env_cmd, fault_cmd, publish_cmd, patterns_cmd, verify_cmd, udev_cmd, vm_cmd, doctor_cmd]
