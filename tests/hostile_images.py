"""Hostile image files, built in memory (bombs, truncated and corrupt files, odd modes).

Shared by the unit tests, the fuzz targets and ``scripts/make_hostile_corpus.py``, which writes
them to ``tests/data/hostile/`` (replayed by ``tests/unit/test_hostile_corpus.py``).
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

from tests.conftest import photo


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb(width: int, height: int, bit_depth: int = 8, colour: int = 6, rows: int = -1) -> bytes:
    """A PNG of ``width`` x ``height`` zero pixels, compressed row by row (a few hundred KB for
    tens of megapixels, built without ever holding the pixels). ``colour``: 0 grey, 2 RGB,
    6 RGBA. ``rows`` >= 0 writes only that many rows (a header-only bomb with rows=0)."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    row = b"\x00" + bytes(width * channels * bit_depth // 8)  # filter byte + samples
    compressor = zlib.compressobj(9)
    parts = []
    for _ in range(height if rows < 0 else rows):
        parts.append(compressor.compress(row))
    parts.append(compressor.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", b"".join(parts))
        + _chunk(b"IEND", b"")
    )


def _save(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **kwargs)
    return out.getvalue()


def corpus() -> dict[str, bytes]:
    """Name -> bytes of every hostile file (each well under 1 MB)."""
    face = photo("obama.jpg")
    small = Image.open(io.BytesIO(face)).convert("RGB").resize((160, 200))
    png = _save(small, "PNG")
    webp = _save(small, "WEBP")
    jpeg = _save(small, "JPEG", quality=80)
    exif = Image.Exif()
    exif[0x010E] = "A" * 60_000  # ImageDescription: a huge EXIF block
    exif[0x0112] = 6
    rng = np.random.default_rng(0)
    frames = [Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)) for _ in range(3)]
    animated = io.BytesIO()
    frames[0].save(animated, "WEBP", save_all=True, append_images=frames[1:], duration=50)
    animated_png = io.BytesIO()
    frames[0].save(animated_png, "PNG", save_all=True, append_images=frames[1:])
    cmyk = _save(small.convert("CMYK"), "JPEG")
    grey16 = _save(Image.fromarray(np.full((120, 100), 40000, dtype=np.uint16)), "PNG")
    return {
        "bomb_png_16bit_rgba_39mp.png": png_bomb(7300, 5466, 16, 6),
        "bomb_png_header_50000x50000.png": png_bomb(50000, 50000, 8, 2, rows=0),
        "bomb_png_grey_60mp.png": png_bomb(8000, 7500, 8, 0),
        "truncated_jpeg_header.jpg": face[:300],
        "truncated_jpeg_half.jpg": face[: len(face) // 2],
        "truncated_png.png": png[: len(png) // 2],
        "truncated_webp.webp": webp[: len(webp) // 2],
        "corrupt_jpeg_scan.jpg": jpeg[:600] + bytes(b ^ 0x5A for b in jpeg[600:-2]) + jpeg[-2:],
        "corrupt_png_crc.png": png[:40] + b"\x00\x00\x00\x00" + png[44:],
        "corrupt_webp.webp": webp[:20] + bytes(200) + webp[220:],
        "cmyk.jpg": cmyk,
        "grey_16bit.png": grey16,
        "animated.webp": animated.getvalue(),
        "animated.png": animated_png.getvalue(),
        "huge_exif.jpg": _save(small, "JPEG", exif=exif.tobytes()),
        "polyglot_jpeg_zip.jpg": jpeg + b"PK\x03\x04" + bytes(64),
        "polyglot_gif_header.jpg": b"GIF89a" + jpeg,
        "empty_jpeg_soi.jpg": b"\xff\xd8\xff\xd9",
        "garbage.bin": bytes(rng.integers(0, 255, 4096, dtype=np.uint8)),
        "bmp_zero_size.bmp": b"BM" + bytes(52),
        "webp_riff_size_lie.webp": webp[:4] + struct.pack("<I", 2**31) + webp[8:],
    }
