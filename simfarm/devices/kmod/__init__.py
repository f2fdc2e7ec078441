"""Kernel modules: loading and unloading, modinfo, kmod's binary module index; imports no other room of devices."""
