"""Photo bytes -> (H, W, 3) uint8 BGR image, upright, with size limits checked first."""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError

from fvs.errors import ErrorCode, FvsError

BgrImage = npt.NDArray[np.uint8]
"""(H, W, 3) uint8, BGR, upright."""

ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "BMP"})
_EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int
    max_pixels: int
    # Bytes of the decoded pixels at their own depth and channels (width x height x channels
    # x bytes per sample): a 16-bit RGBA image costs 8 bytes a pixel before any conversion.
    max_decoded_bytes: int = 160 * 1024 * 1024
    # Larger JPEGs are decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling) down to at
    # most this many pixels; the detector sees at most 640 px a side anyway.
    reduce_above_pixels: int = 16_000_000


@dataclass(frozen=True)
class ImageHeader:
    format: str
    width: int
    height: int
    has_alpha: bool
    orientation: int  # EXIF orientation 1..8 (1 = upright)
    channels: int = 3  # samples per pixel as stored
    bit_depth: int = 8  # bits per sample as stored

    @property
    def decoded_bytes(self) -> int:
        return self.width * self.height * self.channels * max(1, self.bit_depth // 8)


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # IHDR colour type -> samples per pixel


def _png_ihdr(data: bytes) -> tuple[int, int, int, int] | None:
    """(width, height, bit depth, channels) from a PNG's IHDR, None when it is not a PNG."""
    if not data.startswith(_PNG_SIGNATURE) or len(data) < 33 or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    depth, colour = data[24], data[25]
    return width, height, depth, _PNG_CHANNELS.get(colour, 4)


def _undecodable(message: str, **metadata: str) -> FvsError:
    return FvsError(ErrorCode.IMAGE_UNDECODABLE, message, field="image", **metadata)


def _truncated(fmt: str) -> FvsError:
    return _undecodable(
        f"{fmt} image data is truncated: the file ends before the image does",
        format=fmt,
        problem="truncated",
    )


def _too_many_pixels(width: int, height: int, limits: ImageLimits) -> FvsError:
    return FvsError(
        ErrorCode.IMAGE_TOO_LARGE,
        f"image is {width}x{height} = {width * height} pixels; the limit is {limits.max_pixels}",
        field="image",
        limit="pixels",
        max=str(limits.max_pixels),
    )


def png_structure(data: bytes) -> str:
    """ "ok", "truncated" or "corrupt": a walk over the PNG's chunks (length, type, CRC) up to
    IEND. Found by fuzzing: OpenCV 5.0 spent 15 s and 3 GB of memory on a 54-byte PNG whose
    IDAT declared more bytes than the file holds, so no PNG reaches the decoder unless every
    chunk lies within the file."""
    offset = len(_PNG_SIGNATURE)
    first = True
    while offset + 12 <= len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        if length > 0x7FFFFFFF or not kind.isalpha() or (first and kind != b"IHDR"):
            return "corrupt"
        end = offset + 12 + length
        if end > len(data):
            return "truncated"
        if kind == b"IEND":
            return "ok"
        offset, first = end, False
    return "truncated"


def is_truncated(fmt: str, data: bytes) -> bool:
    """Whether the file ends before its image does (cheap structural check, no decoding)."""
    if fmt == "JPEG":
        # The end-of-image marker must follow the last start-of-scan (an EXIF thumbnail
        # carries its own EOI earlier in the file).
        return data.rfind(b"\xff\xd9") < data.rfind(b"\xff\xda")
    if fmt == "PNG":
        return png_structure(data) == "truncated"
    if fmt == "WEBP":
        return len(data) < 12 or struct.unpack("<I", data[4:8])[0] + 8 > len(data)
    return False


def read_header(data: bytes, limits: ImageLimits) -> ImageHeader:
    """Check size, format and decoded size from the header alone, before any pixel is
    decoded. Messages name what is wrong, never an internal object."""
    if not data:
        raise FvsError(ErrorCode.IMAGE_MISSING, "image is empty", field="image")
    if len(data) > limits.max_bytes:
        raise FvsError(
            ErrorCode.IMAGE_TOO_LARGE,
            f"image is {len(data)} bytes; the limit is {limits.max_bytes}",
            field="image",
            limit="bytes",
            max=str(limits.max_bytes),
        )
    png = _png_ihdr(data)
    if png is not None and png[0] * png[1] > limits.max_pixels:
        raise _too_many_pixels(png[0], png[1], limits)
    try:
        with warnings.catch_warnings():
            # Pillow warns about huge images; the pixel limit below is the check that matters.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            pil = Image.open(io.BytesIO(data))  # lazy: reads the header only
            fmt = pil.format or ""
            width, height = pil.size
            bands = len(pil.getbands())
            has_alpha = pil.mode in {"RGBA", "LA", "PA", "RGBa", "La"} or (
                pil.mode == "P" and "transparency" in pil.info
            )
            # EXIF sits in the header of JPEG and WebP; a PNG's may follow the pixels, and
            # Pillow would decode the whole image to find it: only a leading eXIf is read.
            orientation = 1
            if fmt != "PNG" or "exif" in pil.info:
                orientation = int(pil.getexif().get(_EXIF_ORIENTATION, 1) or 1)
    except Image.DecompressionBombError:
        raise FvsError(
            ErrorCode.IMAGE_TOO_LARGE,
            f"image has more than {2 * (Image.MAX_IMAGE_PIXELS or 0)} pixels; the limit is "
            f"{limits.max_pixels}",
            field="image",
            limit="pixels",
            max=str(limits.max_pixels),
        ) from None
    except UnidentifiedImageError:
        known = _sniff(data)
        if known and is_truncated(known, data):
            raise _truncated(known) from None
        if known:
            raise _undecodable(
                f"{known} header is not readable (corrupt)", format=known, problem="corrupt"
            ) from None
        raise _undecodable(
            "not an image in an accepted format; send JPEG, PNG, WebP or BMP",
            format="unknown",
        ) from None
    except (OSError, ValueError, SyntaxError, TypeError, struct.error, EOFError) as exc:
        fmt = _sniff(data)
        if fmt and ("runcat" in str(exc) or is_truncated(fmt, data)):
            raise _truncated(fmt) from None
        raise _undecodable(
            f"{fmt or 'image'} header is not readable (corrupt or not an image)",
            format=fmt or "unknown",
            problem="corrupt",
        ) from None
    if fmt not in ACCEPTED_FORMATS:
        raise _undecodable(
            f"image format {fmt or 'unknown'} is not accepted; send JPEG, PNG, WebP or BMP",
            format=fmt or "unknown",
        )
    if width <= 0 or height <= 0:
        raise _undecodable("image has no pixels")
    if width * height > limits.max_pixels:
        raise _too_many_pixels(width, height, limits)
    channels, depth = bands, 8
    if png is not None:
        channels, depth = png[3], 16 if png[2] == 16 else 8
    if pil.mode == "P":  # a palette expands to RGB(A) when decoded
        channels = 4 if has_alpha else 3
    header = ImageHeader(
        fmt,
        width,
        height,
        has_alpha,
        orientation if 1 <= orientation <= 8 else 1,
        max(3, channels),  # decoded as at least BGR
        depth,
    )
    if header.decoded_bytes > limits.max_decoded_bytes:
        raise FvsError(
            ErrorCode.IMAGE_TOO_LARGE,
            f"image would decode to {header.decoded_bytes} bytes ({width}x{height}, "
            f"{header.channels} channels of {header.bit_depth} bits); the limit is "
            f"{limits.max_decoded_bytes}",
            field="image",
            limit="decoded_bytes",
            max=str(limits.max_decoded_bytes),
        )
    if is_truncated(fmt, data):
        raise _truncated(fmt)
    if fmt == "PNG" and png_structure(data) != "ok":
        raise _undecodable("PNG chunk structure is corrupt", format=fmt, problem="corrupt")
    return header


def _sniff(data: bytes) -> str:
    if data.startswith(b"\xff\xd8"):
        return "JPEG"
    if data.startswith(_PNG_SIGNATURE):
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data.startswith(b"BM"):
        return "BMP"
    return ""


def reduction(header: ImageHeader, limits: ImageLimits) -> int:
    """1, 2, 4 or 8: the JPEG scale-down that brings the image within reduce_above_pixels."""
    if header.format != "JPEG" or header.has_alpha:
        return 1
    pixels = header.width * header.height
    for factor in (1, 2, 4):
        if pixels <= limits.reduce_above_pixels * factor * factor:
            return factor
    return 8


_REDUCED = {
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}


def decode(data: bytes, limits: ImageLimits) -> BgrImage:
    """Decode a JPEG/PNG/WebP/BMP photo to an upright (H, W, 3) uint8 BGR image at full size.

    Grey images become three equal channels; transparent pixels are composited on white;
    16-bit images are scaled to 8 bits; EXIF orientation is applied.
    """
    image, _ = decode_scaled(data, limits, allow_reduced=False)
    return image


def decode_scaled(
    data: bytes, limits: ImageLimits, allow_reduced: bool = True
) -> tuple[BgrImage, int]:
    """Like :func:`decode`, but a JPEG over ``reduce_above_pixels`` comes back reduced.

    Returns the image and its scale factor: a pixel (x, y) of the image is (x * factor,
    y * factor) in the photo as sent. Peak memory is bounded by the limits: the encoded
    bytes, the decoded pixels at their own depth (``max_decoded_bytes``) and the 8-bit BGR
    result (3 bytes a pixel), the alpha composite working in bands of rows.
    """
    header = read_header(data, limits)
    buffer = np.frombuffer(data, dtype=np.uint8)
    factor = reduction(header, limits) if allow_reduced else 1
    decoded: npt.NDArray[np.generic] | None
    if header.has_alpha:
        raw = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)  # keeps alpha, ignores EXIF
        decoded = None if raw is None else _orient(_composite_on_white(raw), header.orientation)
        del raw
    elif factor > 1:
        decoded = cv2.imdecode(buffer, _REDUCED[factor])  # DCT-scaled, EXIF applied, 8-bit
    else:
        decoded = cv2.imdecode(buffer, cv2.IMREAD_COLOR)  # grey -> BGR, EXIF applied, 8-bit
    if decoded is None or decoded.size == 0:
        raise _undecodable(
            f"{header.format} data could not be decoded (corrupt image data)",
            format=header.format,
            problem="corrupt",
        )
    return np.ascontiguousarray(decoded, dtype=np.uint8), factor


_BAND_ROWS = 64  # rows composited at a time: the float32 work space stays a few MB


def _composite_on_white(raw: npt.NDArray[np.generic]) -> BgrImage:
    """(H, W, C) uint8 or uint16 (C in 1..4, BGR(A) order) -> (H, W, 3) uint8 BGR on white,
    in bands of rows so that the float work space never scales with the image."""
    if raw.ndim == 2:
        raw = raw[:, :, None]
    out = np.empty((raw.shape[0], raw.shape[1], 3), dtype=np.uint8)
    for top in range(0, raw.shape[0], _BAND_ROWS):
        out[top : top + _BAND_ROWS] = _composite_band(raw[top : top + _BAND_ROWS])
    return out


def _composite_band(raw: npt.NDArray[np.generic]) -> BgrImage:
    scale = 255.0 / 65535.0 if raw.dtype == np.uint16 else 1.0
    pixels = raw.astype(np.float32) * scale
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    channels = pixels.shape[2]
    if channels == 2:  # grey + alpha
        colour, alpha = np.repeat(pixels[:, :, :1], 3, axis=2), pixels[:, :, 1:2]
    elif channels == 4:
        colour, alpha = pixels[:, :, :3], pixels[:, :, 3:4]
    else:
        colour = np.repeat(pixels, 3, axis=2) if channels == 1 else pixels[:, :, :3]
        alpha = np.full((*colour.shape[:2], 1), 255.0, dtype=np.float32)
    weight = alpha / 255.0
    out = colour * weight + 255.0 * (1.0 - weight)
    return np.asarray(np.clip(out + 0.5, 0, 255), dtype=np.uint8)


def _orient(image: BgrImage, orientation: int) -> BgrImage:
    """Apply an EXIF orientation (1..8) to an image decoded without it."""
    if orientation in (2, 4, 5, 7):
        image = np.asarray(cv2.flip(image, 1), dtype=np.uint8)
    rotate = {
        3: cv2.ROTATE_180,
        4: cv2.ROTATE_180,
        5: cv2.ROTATE_90_COUNTERCLOCKWISE,
        6: cv2.ROTATE_90_CLOCKWISE,
        7: cv2.ROTATE_90_CLOCKWISE,
        8: cv2.ROTATE_90_COUNTERCLOCKWISE,
    }.get(orientation)
    return image if rotate is None else np.asarray(cv2.rotate(image, rotate), dtype=np.uint8)
