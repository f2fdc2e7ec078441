"""How long a reader of a capture node (capture.py) waits for a frame.

Apart from capture.py so that a process that waits for another one to read
frames (the provisioner, for its supervisor's check) knows how long that can
take without importing what reading needs (numpy, linuxpy).
"""

from __future__ import annotations

# A node that streams delivers its next frame within a frame period; this leaves room for a loaded machine.
FRAME_S = 5.0
# A loopback node's first frame is written once its producer has rendered the pattern's ring for
# the node's size: a while, most of all under emulation.
FIRST_WRITE_S = 30.0
# A USB webcam's first frame comes once uvcvideo has negotiated the stream and the device has
# rendered its pattern for the format the reader chose: seconds under emulation.
WEBCAM_FIRST_FRAME_S = 60.0
