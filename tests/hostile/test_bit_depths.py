"""Images of high bit depths and of every mode Pillow has: each comes out as 8-bit RGB at its
own brightness and colour, not clipped to white or black."""

import io

import numpy as np
import pytest
from labbook import imagefolder
from PIL import Image


def mid_grey(mode: str) -> Image.Image:
    """A 4×4 image of the mode whose pixels mean 50% grey (or 50% of each channel)."""
    value = {"1": 1, "F": 0.5, "I": 32768, "I;16": 32768, "I;16B": 32768, "I;16L": 32768, "I;16N": 32768,
             "HSV": (0, 0, 128), "LAB": (137, 128, 128), "YCbCr": (128, 128, 128), "CMYK": (0, 0, 0, 127),
             "LA": (128, 255), "La": (128, 255), "PA": (0, 255), "RGBa": (128, 128, 128, 255),
             "RGBA": (128, 128, 128, 255), "RGBX": (128, 128, 128, 0)}  # fmt: skip
    bands = Image.getmodebands(mode)
    value = value.get(mode, 128 if bands == 1 else (128,) * bands)
    image = Image.new(mode, (4, 4), value)
    if mode in ("P", "PA"):
        image.putpalette([128, 128, 128] * 256)
    return image


@pytest.mark.parametrize("mode", Image.MODES)
def test_every_mode_pillow_has_comes_out_at_its_brightness(mode):
    rgb = np.asarray(imagefolder.to_rgb(mid_grey(mode)))
    assert rgb.shape == (4, 4, 3)
    expected = 255 if mode == "1" else 128
    assert np.all(np.abs(rgb.astype(int) - expected) <= 3), f"{mode}: {rgb[0, 0]}"


@pytest.mark.parametrize(
    "array, fmt",
    [
        (np.linspace(0, 65535, 64).astype(np.uint16).reshape(8, 8), "PNG"),  # 16-bit grey PNG
        (np.linspace(0, 65535, 64).astype(np.uint16).reshape(8, 8), "TIFF"),
        (np.linspace(0, 1, 64).astype(np.float32).reshape(8, 8), "TIFF"),  # float 0–1
        (np.linspace(0, 65535, 64).astype(np.int32).reshape(8, 8), "TIFF"),  # 32-bit int
    ],
    ids=["png-16", "tiff-16", "tiff-float", "tiff-int32"],
)
def test_high_bit_depth_files_keep_their_tones(array, fmt):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    decoded = imagefolder.decode_bytes(buffer.getvalue(), 8, "fixed")[..., 0].astype(int)
    expected = np.linspace(0, 255, 64).reshape(8, 8)
    assert np.abs(decoded - expected).max() <= 2, "a gradient from black to white, not clipped to white"


def png_16bit(samples: np.ndarray, colour_type: int) -> bytes:
    """A PNG with 16 bits per sample, written by hand (Pillow writes none with colour):
    colour type 2 is RGB, 4 grey + alpha, 6 RGBA."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    height, width = samples.shape[:2]
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in samples.reshape(height, -1))
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    "colour_type, pixel, expected",
    [
        (2, (65535, 32768, 0), (255, 128, 0)),
        (6, (0, 32768, 65535, 65535), (0, 128, 255)),
        (4, (32768, 65535), (128,) * 3),
    ],
    ids=["rgb-48", "rgba-64", "grey-alpha-32"],
)
def test_sixteen_bit_colour_pngs_keep_their_colour(colour_type, pixel, expected):
    data = png_16bit(np.full((8, 8, len(pixel)), pixel, np.uint16), colour_type)
    decoded = imagefolder.decode_bytes(data, 8, "fixed")
    assert np.all(np.abs(decoded.astype(int) - expected) <= 1), decoded[0, 0]
