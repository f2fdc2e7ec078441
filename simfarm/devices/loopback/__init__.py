"""v4l2loopback: control device, module parameters (0.12), making its nodes; imports devices.v4l2 and devices.kmod."""
