import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from fvs.errors import ErrorCode, FvsError
from fvs.pipeline.decode import ImageLimits, decode, read_header
from tests.conftest import bgr, encode, photo, pil_bytes

LIMITS = ImageLimits(max_bytes=10 * 1024 * 1024, max_pixels=40_000_000)


def reason(data: bytes, limits: ImageLimits = LIMITS) -> ErrorCode:
    with pytest.raises(FvsError) as info:
        decode(data, limits)
    return info.value.code


def asymmetric() -> np.ndarray:
    """(30, 50, 3) RGB image whose orientation is unambiguous."""
    image = np.zeros((30, 50, 3), dtype=np.uint8)
    image[:10, :20] = (255, 0, 0)
    image[20:, 35:] = (0, 0, 255)
    image[12:18, :] = (0, 255, 0)
    return image


def test_empty_image_is_missing() -> None:
    assert reason(b"") is ErrorCode.IMAGE_MISSING


def test_byte_limit() -> None:
    data = photo("obama.jpg")
    with pytest.raises(FvsError) as info:
        decode(data, ImageLimits(max_bytes=len(data) - 1, max_pixels=LIMITS.max_pixels))
    assert info.value.code is ErrorCode.IMAGE_TOO_LARGE
    assert info.value.metadata["limit"] == "bytes"


def test_pixel_limit_is_judged_from_the_header() -> None:
    # 12000 x 12000 = 144 MP of one colour: a few hundred KB as PNG, 432 MB once decoded.
    big = pil_bytes(Image.new("L", (12000, 12000)), "PNG")
    assert len(big) < LIMITS.max_bytes
    header = read_header(big, ImageLimits(LIMITS.max_bytes, 10**9, max_decoded_bytes=10**10))
    assert (header.width, header.height) == (12000, 12000)
    with pytest.raises(FvsError) as info:
        decode(big, LIMITS)
    assert info.value.code is ErrorCode.IMAGE_TOO_LARGE
    assert info.value.metadata["limit"] == "pixels"


@pytest.mark.parametrize(
    "data",
    [
        b"not an image at all",
        b"\xff\xd8\xff\xe0" + b"\x00" * 64,  # JPEG magic, nothing behind it
        photo("obama.jpg")[:2000],  # truncated JPEG
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 40,
    ],
    ids=["text", "jpeg-magic-only", "truncated-jpeg", "png-magic-only"],
)
def test_undecodable(data: bytes) -> None:
    assert reason(data) is ErrorCode.IMAGE_UNDECODABLE


def test_unaccepted_format_is_named() -> None:
    gif = pil_bytes(Image.new("RGB", (64, 64)), "GIF")
    with pytest.raises(FvsError) as info:
        decode(gif, LIMITS)
    assert info.value.code is ErrorCode.IMAGE_UNDECODABLE
    assert info.value.metadata["format"] == "GIF"


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "BMP", "JPEG"])
def test_accepted_formats_decode_to_bgr(fmt: str) -> None:
    rgb = asymmetric()
    extra = {"lossless": True} if fmt == "WEBP" else {"quality": 100} if fmt == "JPEG" else {}
    out = decode(pil_bytes(Image.fromarray(rgb), fmt, **extra), LIMITS)
    assert out.shape == (30, 50, 3)
    assert out.dtype == np.uint8
    error = np.abs(out[:, :, ::-1].astype(int) - rgb.astype(int))
    if fmt == "JPEG":  # lossy, chroma-subsampled: judge the mean
        assert error.mean() < 12
    else:
        assert error.max() == 0


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(orientation: int) -> None:
    image = Image.fromarray(asymmetric())
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = pil_bytes(image, "JPEG", exif=exif, quality=100)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))))
    out = decode(data, LIMITS)[:, :, ::-1]
    assert out.shape == expected.shape
    assert np.abs(out.astype(int) - expected.astype(int)).mean() < 3


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_with_alpha(orientation: int) -> None:
    rgba = np.dstack([asymmetric(), np.full((30, 50), 255, np.uint8)])
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = pil_bytes(Image.fromarray(rgba, "RGBA"), "PNG", exif=exif)
    tagged = Image.open(io.BytesIO(data))
    expected = np.asarray(ImageOps.exif_transpose(tagged).convert("RGB"))
    assert read_header(data, LIMITS).orientation == orientation
    assert np.array_equal(decode(data, LIMITS)[:, :, ::-1], expected)


def test_grey_becomes_three_equal_channels() -> None:
    grey = np.tile(np.arange(0, 250, 5, dtype=np.uint8), (20, 1))
    out = decode(pil_bytes(Image.fromarray(grey, "L"), "PNG"), LIMITS)
    assert out.shape == (20, 50, 3)
    assert np.array_equal(out[:, :, 0], grey)
    assert np.array_equal(out[:, :, 1], grey)
    assert np.array_equal(out[:, :, 2], grey)


def test_transparent_pixels_become_white() -> None:
    rgba = np.zeros((10, 10, 4), dtype=np.uint8)
    rgba[:, :5] = (255, 0, 0, 255)  # opaque red
    rgba[:, 5:] = (0, 0, 0, 0)  # transparent black
    out = decode(pil_bytes(Image.fromarray(rgba, "RGBA"), "PNG"), LIMITS)
    assert out[0, 0].tolist() == [0, 0, 255]  # BGR red
    assert out[0, 9].tolist() == [255, 255, 255]


def test_half_transparent_is_blended() -> None:
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[...] = (0, 0, 0, 128)
    out = decode(pil_bytes(Image.fromarray(rgba, "RGBA"), "PNG"), LIMITS)
    assert abs(int(out[0, 0, 0]) - 127) <= 1


def test_sixteen_bit_png() -> None:
    deep = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).astype(np.uint16)
    out = decode(pil_bytes(Image.fromarray(deep), "PNG"), LIMITS)
    assert out.dtype == np.uint8
    assert out.shape == (8, 8, 3)
    assert abs(int(out[-1, -1, 0]) - 63000 / 65535 * 255) <= 1


def test_real_photo_round_trip() -> None:
    out = decode(photo("obama.jpg"), LIMITS)
    assert out.shape == bgr("obama.jpg").shape
    assert np.array_equal(out, bgr("obama.jpg"))
    assert decode(encode(out, ".png"), LIMITS).shape == out.shape
