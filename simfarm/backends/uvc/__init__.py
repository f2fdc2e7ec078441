"""The uvc backend: webcams on vhci-hcd driven by uvcvideo, fed by producers; built-in profiles in builtin_profiles/."""
