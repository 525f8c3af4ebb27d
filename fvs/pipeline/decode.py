"""Photo bytes -> (H, W, 3) uint8 BGR image, upright, with size limits checked first."""

from __future__ import annotations

import io
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


@dataclass(frozen=True)
class ImageHeader:
    format: str
    width: int
    height: int
    has_alpha: bool
    orientation: int  # EXIF orientation 1..8 (1 = upright)


def read_header(data: bytes, limits: ImageLimits) -> ImageHeader:
    """Check size and format from the header alone, before any pixel is decoded."""
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
    try:
        with warnings.catch_warnings():
            # Pillow warns about huge images; the pixel limit below is the check that matters.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            pil = Image.open(io.BytesIO(data))  # lazy: reads the header only
            fmt = pil.format or ""
            width, height = pil.size
            has_alpha = pil.mode in {"RGBA", "LA", "PA", "RGBa", "La"} or (
                pil.mode == "P" and "transparency" in pil.info
            )
            orientation = int(pil.getexif().get(_EXIF_ORIENTATION, 1) or 1)
    except (
        UnidentifiedImageError,
        Image.DecompressionBombError,
        OSError,
        ValueError,
        SyntaxError,
        TypeError,
    ) as exc:
        raise FvsError(
            ErrorCode.IMAGE_UNDECODABLE, f"image header is not readable: {exc}", field="image"
        ) from None
    if fmt not in ACCEPTED_FORMATS:
        raise FvsError(
            ErrorCode.IMAGE_UNDECODABLE,
            f"image format {fmt or 'unknown'} is not accepted; send JPEG, PNG, WebP or BMP",
            field="image",
            format=fmt or "unknown",
        )
    if width <= 0 or height <= 0:
        raise FvsError(ErrorCode.IMAGE_UNDECODABLE, "image has no pixels", field="image")
    if width * height > limits.max_pixels:
        raise FvsError(
            ErrorCode.IMAGE_TOO_LARGE,
            f"image is {width}x{height} = {width * height} pixels; the limit is "
            f"{limits.max_pixels}",
            field="image",
            limit="pixels",
            max=str(limits.max_pixels),
        )
    return ImageHeader(fmt, width, height, has_alpha, orientation if 1 <= orientation <= 8 else 1)


def decode(data: bytes, limits: ImageLimits) -> BgrImage:
    """Decode a JPEG/PNG/WebP/BMP photo to an upright (H, W, 3) uint8 BGR image.

    Grey images become three equal channels; transparent pixels are composited on white;
    16-bit images are scaled to 8 bits; EXIF orientation is applied.
    """
    header = read_header(data, limits)
    buffer = np.frombuffer(data, dtype=np.uint8)
    decoded: npt.NDArray[np.generic] | None
    if header.has_alpha:
        raw = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)  # keeps alpha, ignores EXIF
        decoded = None if raw is None else _orient(_composite_on_white(raw), header.orientation)
    else:
        decoded = cv2.imdecode(buffer, cv2.IMREAD_COLOR)  # grey -> BGR, EXIF applied, 8-bit
    if decoded is None or decoded.size == 0:
        raise FvsError(
            ErrorCode.IMAGE_UNDECODABLE,
            f"{header.format} data could not be decoded",
            field="image",
            format=header.format,
        )
    return np.ascontiguousarray(decoded, dtype=np.uint8)


def _composite_on_white(raw: npt.NDArray[np.generic]) -> BgrImage:
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
