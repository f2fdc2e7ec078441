"""Linux devices, a room per kernel subsystem (v4l2, loopback, vivid, kmod, usb, udev); none imports backends, farm."""
