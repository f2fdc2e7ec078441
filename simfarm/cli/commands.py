"""The list of command modules, in the order `simfarm --help` shows them."""

from __future__ import annotations

from . import farm_cmd, udev_cmd

ALL: list = [farm_cmd, udev_cmd]
