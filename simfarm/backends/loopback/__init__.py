"""The loopback backend: v4l2loopback nodes fed by simfarm's producers, and their device-level faults."""
