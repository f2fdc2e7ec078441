"""The V4L2 layer: ioctls, /dev/video nodes, reading frames, frame waits, sysfs; imports no other room of devices."""
