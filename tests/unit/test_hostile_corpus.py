"""Replays the hostile image corpus (tests/data/hostile, made by
scripts/make_hostile_corpus.py, plus any file a fuzz run found) through the decoder: each one
gets its precise refusal or decodes cleanly; none crashes, hangs or leaks an internal."""

from __future__ import annotations

from pathlib import Path

import pytest

from fvs.errors import ErrorCode, FvsError
from fvs.pipeline.decode import ImageLimits, decode_scaled

HOSTILE = Path(__file__).resolve().parent.parent / "data" / "hostile"
LIMITS = ImageLimits(max_bytes=10 * 1024 * 1024, max_pixels=40_000_000)

EXPECTED: dict[str, tuple[str, str]] = {
    # file: (reason or "OK", limit / problem metadata)
    "bomb_png_16bit_rgba_39mp.png": ("IMAGE_TOO_LARGE", "decoded_bytes"),
    "bomb_png_header_50000x50000.png": ("IMAGE_TOO_LARGE", "pixels"),
    "bomb_png_grey_60mp.png": ("IMAGE_TOO_LARGE", "pixels"),
    "truncated_jpeg_header.jpg": ("IMAGE_UNDECODABLE", "truncated"),
    "truncated_jpeg_half.jpg": ("IMAGE_UNDECODABLE", "truncated"),
    "truncated_png.png": ("IMAGE_UNDECODABLE", "truncated"),
    "truncated_webp.webp": ("IMAGE_UNDECODABLE", "truncated"),
    "webp_riff_size_lie.webp": ("IMAGE_UNDECODABLE", "truncated"),
    "corrupt_jpeg_scan.jpg": ("IMAGE_UNDECODABLE", "corrupt"),
    "corrupt_png_crc.png": ("IMAGE_UNDECODABLE", "corrupt"),
    "corrupt_webp.webp": ("IMAGE_UNDECODABLE", "corrupt"),
    "empty_jpeg_soi.jpg": ("IMAGE_UNDECODABLE", "corrupt"),
    "bmp_zero_size.bmp": ("IMAGE_UNDECODABLE", "corrupt"),
    "garbage.bin": ("IMAGE_UNDECODABLE", ""),
    "cmyk.jpg": ("OK", ""),
    "grey_16bit.png": ("OK", ""),
    "animated.webp": ("OK", ""),
    "animated.png": ("OK", ""),
    "huge_exif.jpg": ("OK", ""),
    "polyglot_jpeg_zip.jpg": ("OK", ""),
    "polyglot_gif_header.jpg": ("IMAGE_TOO_LARGE", "pixels"),
}


def outcome(data: bytes) -> tuple[str, str]:
    try:
        image, _ = decode_scaled(data, LIMITS)
    except FvsError as error:
        assert error.code in {ErrorCode.IMAGE_UNDECODABLE, ErrorCode.IMAGE_TOO_LARGE}
        assert "object at" not in error.message
        return error.code.value, error.metadata.get("limit") or error.metadata.get("problem", "")
    assert image.ndim == 3 and image.shape[2] == 3 and image.dtype.name == "uint8"
    return "OK", ""


def test_the_corpus_is_complete() -> None:
    assert set(EXPECTED) <= {p.name for p in HOSTILE.iterdir()}


@pytest.mark.parametrize("path", sorted(HOSTILE.iterdir()), ids=lambda p: p.name)
def test_hostile_file(path: Path) -> None:
    got = outcome(path.read_bytes())
    if path.name in EXPECTED:
        assert got == EXPECTED[path.name]
