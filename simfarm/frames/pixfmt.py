"""RGB frames to and from the raw bytes of every PixelFormat simfarm writes.

YUV is BT.601 limited range (Y 16..235, chroma 16..240 around 128), the
conversion FFmpeg's swscale applies by default, so a consumer that reads our
devices through FFmpeg sees the colours we meant. Chroma is subsampled by
averaging each 2x1 (4:2:2) or 2x2 (4:2:0) block, as swscale does, and
upsampled by repetition.

GREY is full range (0..255), because that is what FFmpeg's ``gray`` and
OpenCV assume; :func:`luma` still reports it as limited-range Y so the frame
code decoder sees the same values whatever the format.

Every function takes the buffer as a 1-D uint8 array; a buffer longer than
one frame (a driver's padded ``sizeimage``) is accepted and its tail ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ..spec import PixelFormat, Size

# The name FFmpeg gives each format (``-pix_fmt``; for MJPEG the codec).
FFMPEG_PIX_FMT: dict[PixelFormat, str] = {
    PixelFormat.YUYV: "yuyv422",
    PixelFormat.UYVY: "uyvy422",
    PixelFormat.NV12: "nv12",
    PixelFormat.YU12: "yuv420p",
    PixelFormat.GREY: "gray",
    PixelFormat.RGB24: "rgb24",
    PixelFormat.BGR24: "bgr24",
    PixelFormat.MJPEG: "mjpeg",
}

# BT.601 limited range, RGB 0..255 in: rows give Y, U (Cb), V (Cr) before offsets.
_RGB_TO_YUV = np.array([[65.481, 128.553, 24.966],
                        [-37.797, -74.203, 112.0],
                        [112.0, -93.786, -18.214]], np.float32) / 255
_YUV_TO_RGB = np.linalg.inv(_RGB_TO_YUV).astype(np.float32)
_YUV_OFFSET = np.array([16, 128, 128], np.float32)
_LUMA_SCALE = np.float32(219 / 255)  # limited-range Y per full-range step


@dataclass(frozen=True)
class _Plane:
    """One plane's geometry relative to the picture.

    A plane holds ``height / rows_div`` rows of ``width * bytes_per_px``
    bytes; packed 4:2:2 is a single plane of 2 bytes per pixel.
    """

    rows_div: int
    bytes_per_px: Fraction

    def shape(self, size: Size) -> tuple[int, int]:
        return size.height // self.rows_div, int(size.width * self.bytes_per_px)


_FULL = _Plane(1, Fraction(1))
_LAYOUT: dict[PixelFormat, tuple[_Plane, ...]] = {
    PixelFormat.YUYV: (_Plane(1, Fraction(2)),),
    PixelFormat.UYVY: (_Plane(1, Fraction(2)),),
    PixelFormat.NV12: (_FULL, _Plane(2, Fraction(1))),
    PixelFormat.YU12: (_FULL, _Plane(2, Fraction(1, 2)), _Plane(2, Fraction(1, 2))),
    PixelFormat.GREY: (_FULL,),
    PixelFormat.RGB24: (_Plane(1, Fraction(3)),),
    PixelFormat.BGR24: (_Plane(1, Fraction(3)),),
}
# Byte order of one 2-pixel group in the packed 4:2:2 formats: Y0 U Y1 V, U Y0 V Y1.
_PACKED_ORDER = {PixelFormat.YUYV: (0, 1, 2, 3), PixelFormat.UYVY: (1, 0, 3, 2)}


def frame_bytes(fmt: PixelFormat, size: Size) -> int:
    """Bytes in one raw frame of ``fmt``; raises ValueError for MJPEG, whose size varies."""
    return sum(h * w for h, w in (plane.shape(size) for plane in _layout(fmt)))


def line_bytes(fmt: PixelFormat, width: int) -> int:
    """Bytes of one picture line in the first plane of raw ``fmt`` (its luma, or all of a packed pixel row)."""
    return int(width * _layout(fmt)[0].bytes_per_px)


def from_rgb(rgb: np.ndarray, fmt: PixelFormat, *, jpeg_quality: int = 85) -> np.ndarray:
    """The frame ``rgb`` ((H, W, 3) uint8, even H and W) as a 1-D uint8 buffer in ``fmt``.

    For MJPEG the buffer holds one baseline JPEG (OpenCV's encoder).
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] % 2 or rgb.shape[1] % 2:
        raise ValueError(f"expected an (even H, even W, 3) RGB frame, got shape {rgb.shape}")
    if fmt is PixelFormat.MJPEG:
        return encode_jpeg_bgr(rgb[:, :, ::-1], jpeg_quality)
    if fmt is PixelFormat.RGB24:
        return np.ascontiguousarray(rgb).reshape(-1)
    if fmt is PixelFormat.BGR24:
        return np.ascontiguousarray(rgb[:, :, ::-1]).reshape(-1)
    if fmt is PixelFormat.GREY:
        return _full_luma(rgb).reshape(-1)
    y = _to_u8(_convert(rgb, _RGB_TO_YUV[0:1]) + _YUV_OFFSET[0])[:, :, 0]
    uv = _chroma(rgb, vertical=fmt in (PixelFormat.NV12, PixelFormat.YU12))
    if fmt in _PACKED_ORDER:
        groups = np.stack([y[:, 0::2], uv[:, :, 0], y[:, 1::2], uv[:, :, 1]], axis=-1)
        return np.ascontiguousarray(groups[:, :, _PACKED_ORDER[fmt]]).reshape(-1)
    if fmt is PixelFormat.NV12:
        return np.concatenate([y.reshape(-1), uv.reshape(-1)])
    return np.concatenate([y.reshape(-1), uv[:, :, 0].reshape(-1), uv[:, :, 1].reshape(-1)])


def encode_jpeg_bgr(bgr: np.ndarray, quality: int = 85, *, params: Sequence[int] = ()) -> np.ndarray:
    """One baseline JPEG (OpenCV's encoder) of the (H, W, 3) BGR frame, as a 1-D uint8 buffer.

    ``params`` are further ``cv2.IMWRITE_*`` parameter/value pairs.
    """
    import cv2  # on first use: a farm of raw cameras never loads OpenCV (a fifth of the supervisor's imports)
    ok, jpeg = cv2.imencode(".jpg", np.ascontiguousarray(bgr), [cv2.IMWRITE_JPEG_QUALITY, quality, *params])
    if not ok:
        raise ValueError("OpenCV could not encode the frame as JPEG")
    return jpeg.reshape(-1)


def to_rgb(buf: np.ndarray, fmt: PixelFormat, size: Size) -> np.ndarray:
    """The (H, W, 3) uint8 RGB picture in ``buf`` (a new array)."""
    if fmt is PixelFormat.MJPEG:
        return _decode_jpeg(buf, size, colour=True)[:, :, ::-1].copy()
    planes = _planes(buf, fmt, size)
    if fmt is PixelFormat.RGB24:
        return planes[0].reshape(size.height, size.width, 3).copy()
    if fmt is PixelFormat.BGR24:
        return planes[0].reshape(size.height, size.width, 3)[:, :, ::-1].copy()
    if fmt is PixelFormat.GREY:
        return np.repeat(planes[0][:, :, None], 3, axis=2)
    yuv = np.empty((size.height, size.width, 3), np.float32)
    yuv[:, :, 0] = _luma_plane(buf, fmt, size)
    if fmt in _PACKED_ORDER:
        groups = planes[0].reshape(size.height, size.width // 2, 4)
        order = _PACKED_ORDER[fmt]
        yuv[:, :, 1] = np.repeat(groups[:, :, order[1]], 2, axis=1)
        yuv[:, :, 2] = np.repeat(groups[:, :, order[3]], 2, axis=1)
    else:
        if fmt is PixelFormat.NV12:
            u, v = planes[1][:, 0::2], planes[1][:, 1::2]
        else:
            u, v = planes[1], planes[2]
        for channel, plane in ((1, u), (2, v)):
            yuv[:, :, channel] = np.repeat(np.repeat(plane, 2, axis=0), 2, axis=1)
    yuv -= _YUV_OFFSET
    return _to_u8(_convert(yuv, _YUV_TO_RGB))


def luma(buf: np.ndarray, fmt: PixelFormat, size: Size) -> np.ndarray:
    """The (H, W) limited-range Y of any format; may share memory with ``buf``, so treat it as read-only.

    RGB formats are converted, GREY is mapped from full range, MJPEG is decoded.
    """
    if fmt is PixelFormat.MJPEG:
        return _full_to_limited(_decode_jpeg(buf, size, colour=False))
    if fmt is PixelFormat.GREY:
        return _full_to_limited(_planes(buf, fmt, size)[0])
    if fmt in (PixelFormat.RGB24, PixelFormat.BGR24):
        return _full_to_limited(_full_luma(to_rgb(buf, fmt, size)))
    return _luma_plane(buf, fmt, size)


def luma_view(buf: np.ndarray, fmt: PixelFormat, size: Size) -> np.ndarray | None:
    """A writable (H, W) view of the Y samples inside ``buf``, or None when there are none.

    YUYV/UYVY give a strided view, NV12/YU12/GREY the first plane. GREY
    samples are full range (see the module notes): prefer
    :func:`write_luma_strip`, which writes limited-range Y correctly into every
    raw format. RGB24, BGR24 and MJPEG have no Y samples: None.
    """
    if fmt in (PixelFormat.RGB24, PixelFormat.BGR24, PixelFormat.MJPEG):
        return None
    return _luma_plane(buf, fmt, size)


def write_luma_strip(buf: np.ndarray, fmt: PixelFormat, size: Size, strip: np.ndarray) -> None:
    """Overwrite the top ``strip.shape[0]`` rows of raw ``buf`` with grey of limited-range Y ``strip``.

    ``strip`` is (rows, W) uint8. Chroma under the strip is set neutral so it
    stays grey (for 4:2:0 that includes the row below an odd-height strip);
    RGB formats get the grey whose Y is ``strip``; GREY its full-range value.
    """
    rows = strip.shape[0]
    if strip.shape != (rows, size.width) or rows > size.height:
        raise ValueError(f"strip shape {strip.shape} does not fit the top of a {size} frame")
    if fmt in (PixelFormat.RGB24, PixelFormat.BGR24, PixelFormat.GREY):
        grey = _to_u8((strip.astype(np.float32) - 16) / _LUMA_SCALE)
        target = _planes(buf, fmt, size)[0][:rows].reshape(rows, size.width, -1)
        target[:] = grey[:, :, None]
        return
    planes = _planes(buf, fmt, size)
    if fmt in _PACKED_ORDER:
        planes[0][:rows] = 128  # chroma; the Y bytes are replaced just below
    else:
        for chroma in planes[1:]:
            chroma[:(rows + 1) // 2] = 128
    _luma_plane(buf, fmt, size)[:rows] = strip


def write_rgb_patch(buf: np.ndarray, fmt: PixelFormat, size: Size, y: int, x: int,
                    patch: np.ndarray) -> None:
    """Convert the RGB ``patch`` (h, w, 3) and write it into raw ``buf`` with its top-left at (y, x).

    Only the patch is converted, so this is cheap enough per frame. ``y``,
    ``x``, h and w must be even (chroma is shared by 2x2 pixels at most) and
    the patch must lie inside the frame.
    """
    height, width = patch.shape[:2]
    if (y | x | height | width) % 2:
        raise ValueError(f"patch {width}x{height} at ({y}, {x}) is not even-aligned")
    if y < 0 or x < 0 or y + height > size.height or x + width > size.width:
        raise ValueError(f"patch {width}x{height} at ({y}, {x}) leaves the {size} frame")
    patch_size = Size(width, height)
    source = _planes(from_rgb(patch, fmt), fmt, patch_size)
    for plane, dst, src in zip(_layout(fmt), _planes(buf, fmt, size), source, strict=True):
        top, left = y // plane.rows_div, int(x * plane.bytes_per_px)
        dst[top:top + src.shape[0], left:left + src.shape[1]] = src


def _layout(fmt: PixelFormat) -> tuple[_Plane, ...]:
    try:
        return _LAYOUT[fmt]
    except KeyError:
        raise ValueError(f"{fmt.name} has no fixed raw layout") from None


def _planes(buf: np.ndarray, fmt: PixelFormat, size: Size) -> list[np.ndarray]:
    """2-D views of each plane of the frame at the start of ``buf``."""
    need = frame_bytes(fmt, size)
    if buf.ndim != 1 or buf.dtype != np.uint8 or buf.size < need:
        raise ValueError(f"{fmt.name} {size} needs a 1-D uint8 buffer of {need} bytes, "
                         f"got {buf.dtype} {buf.shape}")
    views, start = [], 0
    for plane in _layout(fmt):
        rows, cols = plane.shape(size)
        views.append(buf[start:start + rows * cols].reshape(rows, cols))
        start += rows * cols
    return views


def _luma_plane(buf: np.ndarray, fmt: PixelFormat, size: Size) -> np.ndarray:
    first = _planes(buf, fmt, size)[0]
    if fmt in _PACKED_ORDER:
        return first[:, _PACKED_ORDER[fmt][0]::2]
    return first


def _convert(pixels: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply ``matrix`` to the last axis of ``pixels`` in float32."""
    return pixels.astype(np.float32, copy=False) @ matrix.T


def _to_u8(values: np.ndarray) -> np.ndarray:
    return np.clip(values + 0.5, 0, 255).astype(np.uint8)


def _full_luma(rgb: np.ndarray) -> np.ndarray:
    """Full-range BT.601 Y of ``rgb``: FFmpeg's ``gray``."""
    return _to_u8(_convert(rgb, _RGB_TO_YUV[0:1] / _LUMA_SCALE)[:, :, 0])


def _full_to_limited(full: np.ndarray) -> np.ndarray:
    return _to_u8(full.astype(np.float32) * _LUMA_SCALE + 16)


def _chroma(rgb: np.ndarray, *, vertical: bool) -> np.ndarray:
    """U and V, (rows, W/2, 2) uint8, of each 2x1 block (2x2 if ``vertical``)."""
    blocks: np.ndarray = rgb.astype(np.float32)
    blocks = (blocks[:, 0::2] + blocks[:, 1::2]) / 2
    if vertical:
        blocks = (blocks[0::2] + blocks[1::2]) / 2
    return _to_u8(_convert(blocks, _RGB_TO_YUV[1:]) + _YUV_OFFSET[1:])


def _decode_jpeg(buf: np.ndarray, size: Size, *, colour: bool) -> np.ndarray:
    import cv2

    picture = cv2.imdecode(buf, cv2.IMREAD_COLOR if colour else cv2.IMREAD_GRAYSCALE)
    if picture is None:
        raise ValueError("buffer is not a decodable JPEG")
    if picture.shape[:2] != (size.height, size.width):
        raise ValueError(f"JPEG is {picture.shape[1]}x{picture.shape[0]}, expected {size}")
    return picture
