"""USB/IP over the network: the farm as a USB/IP server of its webcams, and the importing side."""
