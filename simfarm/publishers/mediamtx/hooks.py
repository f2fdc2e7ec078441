"""The commands MediaMTX runs for a path (``runOnInit``), built safely.

MediaMTX does not use a shell. It first replaces every ``$NAME``/``${NAME}``
in the command string (Go's os.Expand: the hook's variables, else MediaMTX's
own environment; there is no escape for a literal ``$``), then splits the
result like shell words (go-shellquote) and executes it directly. So each
argument is shell-quoted, and ``$`` may appear only as one of the variables
MediaMTX sets for the hook, which it fills with values that need no quoting.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence

from ...errors import BadInput

# Set by MediaMTX for runOnInit (reference mediamtx.yml): the path's name and
# the RTSP listener's port, so a command does not hard-code either.
HOOK_VARIABLES = ("MTX_PATH", "RTSP_PORT")
PUBLISH_URL = "rtsp://127.0.0.1:$RTSP_PORT/$MTX_PATH"

_VARIABLE = re.compile(rf"\$(?:{'|'.join(HOOK_VARIABLES)})(?![A-Za-z0-9_])")


def hook_command(argv: Sequence[str]) -> str:
    """The hook string that makes MediaMTX run exactly ``argv``; BadInput when it cannot."""
    if not argv:
        raise BadInput("a MediaMTX hook needs a command")
    for arg in argv:
        if "$" in _VARIABLE.sub("", arg):
            raise BadInput(f"hook argument {arg!r} contains '$', which MediaMTX would expand "
                           f"(only {', '.join('$' + v for v in HOOK_VARIABLES)} are allowed)")
    return shlex.join(argv)


# Where the publisher sends its stream: RTSP over TCP (the server accepts no UDP,
# so farms have no UDP ports to clash on) to the hook's own path.
PUBLISH_OUTPUT = ("-f", "rtsp", "-rtsp_transport", "tcp", PUBLISH_URL)


def rtsp_publish_argv(input_args: Sequence[str], *, gop: int, ffmpeg: str, noise: int | None = None) -> list[str]:
    """ffmpeg reading ``input_args`` and publishing H.264 over RTSP/TCP to the hook's own path.

    ``gop`` is the number of frames between keyframes. Keep it short: a reader
    (a snapshot, a new recording segment) has no picture until the next one.
    ``noise`` corrupts the encoded packets on their way out (FFmpeg's noise
    bitstream filter: about one byte in ``noise`` of each packet is altered).
    """
    if gop < 1:
        raise BadInput(f"keyframe interval must be at least 1 frame, not {gop}")
    if noise is not None and noise < 1:
        raise BadInput(f"bitstream noise amount must be at least 1, not {noise}")
    return [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "warning", *input_args,
            "-an", "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
            # yuv420p: a 4:2:2 camera format would otherwise give High 4:2:2, which few decoders play.
            "-pix_fmt", "yuv420p", "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0",
            # Each captured frame once: by default FFmpeg repeats frames to fill gaps in the capture
            # timestamps (a loaded machine), which readers would take for duplicates the camera sent.
            "-fps_mode", "passthrough",
            *(["-bsf:v", f"noise=amount={noise}"] if noise is not None else []),
            *PUBLISH_OUTPUT]


def v4l2_publish_argv(device: str, *, gop: int, ffmpeg: str, noise: int | None = None) -> list[str]:
    """ffmpeg publishing a V4L2 capture device (e.g. ``/dev/video3``) to the hook's path.

    A publisher must stop on SIGINT even while its camera stalls: MediaMTX
    waits for a stopped hook without end. It does, because the ffmpeg program
    opens every input non-blocking (AVFMT_FLAG_NONBLOCK), so a v4l2loopback
    node without a writer gives EAGAIN, not a DQBUF that never returns
    (the kernel tier checks this).
    """
    return rtsp_publish_argv(["-f", "v4l2", "-i", device], gop=gop, ffmpeg=ffmpeg, noise=noise)
