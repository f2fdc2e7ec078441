"""simfarm udev rules, shipped inside the package as simfarm.udev_rules."""
