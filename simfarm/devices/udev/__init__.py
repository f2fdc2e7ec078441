"""udev: installing simfarm's rules, waiting for uevents; imports no other room of devices."""
