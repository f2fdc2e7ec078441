"""Publishers: servers that make the farm's cameras reachable over the network (MediaMTX)."""
