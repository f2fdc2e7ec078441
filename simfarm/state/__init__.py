"""What outlives a process: each farm's on-disk record (ownership), the global lock; imports no backend, device, farm."""
