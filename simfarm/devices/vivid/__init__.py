"""The vivid test driver: loading it, its instances' nodes and controls; imports devices.v4l2 and devices.kmod."""
