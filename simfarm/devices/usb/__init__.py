"""USB webcams: USB/IP device, vhci-hcd ports, usbdevfs, UVC requests, profile types; imports devices.v4l2, .kmod."""
