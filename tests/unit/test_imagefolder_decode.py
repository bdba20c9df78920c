"""What one image file decodes to (labbook.imagefolder.decode_file): every listed format to its
pixels, EXIF rotation applied, odd modes and transparency made RGB (transparent pixels white),
and the exact reason a file is skipped. (Folders of them: test_imagefolder.py; high bit depths and
every mode Pillow has: hostile/test_bit_depths.py.)"""

import numpy as np
import pytest
from builders import write_image
from labbook import imagefolder
from labbook.plan import sources
from PIL import Image

RED, GREEN, BLUE, YELLOW = (220, 20, 20), (20, 200, 40), (30, 40, 210), (230, 220, 30)


def quadrants(size: int = 16) -> np.ndarray:
    """size×size×3: red, green / blue, yellow quarters, so a rotation or mirror shows."""
    half = size // 2
    pixels = np.zeros((size, size, 3), np.uint8)
    pixels[:half, :half], pixels[:half, half:] = RED, GREEN
    pixels[half:, :half], pixels[half:, half:] = BLUE, YELLOW
    return pixels


LOSSLESS = {
    ".png": {},
    ".bmp": {},
    ".gif": {},  # four colours fit a palette exactly
    ".tif": {},
    ".tiff": {"compression": "tiff_lzw"},
    ".webp": {"lossless": True},
    ".ppm": {},
}


@pytest.mark.parametrize("suffix", sorted(LOSSLESS))
def test_lossless_formats_decode_to_their_exact_pixels(tmp_path, suffix):
    pixels = quadrants()
    path = tmp_path / f"image{suffix}"
    Image.fromarray(pixels).save(path, **LOSSLESS[suffix])
    image, digest, reason = imagefolder.decode_file(path, 16, "shorter_center_crop")
    assert reason is None and digest
    np.testing.assert_array_equal(image, pixels)


def test_every_listed_extension_is_tested_or_lossy():
    assert sources.IMAGE_EXTENSIONS == set(LOSSLESS) | {".jpg", ".jpeg", ".pgm"}


def test_pgm_grey_becomes_equal_rgb_channels(tmp_path):
    grey = np.arange(256, dtype=np.uint8).reshape(16, 16)
    Image.fromarray(grey).save(tmp_path / "grey.pgm")
    image, _, reason = imagefolder.decode_file(tmp_path / "grey.pgm", 16, "fixed")
    assert reason is None
    for channel in range(3):
        np.testing.assert_array_equal(image[..., channel], grey)


@pytest.mark.parametrize("suffix", [".jpg", ".jpeg"])
def test_jpeg_decodes_close_to_its_pixels(tmp_path, suffix):
    pixels = quadrants(32)
    Image.fromarray(pixels).save(tmp_path / f"photo{suffix}", quality=95)
    image, _, _ = imagefolder.decode_file(tmp_path / f"photo{suffix}", 32, "fixed")
    # away from the quadrant edges, where JPEG blurs colours
    for rows, cols, colour in ((2, 2, RED), (2, 29, GREEN), (29, 2, BLUE), (29, 29, YELLOW)):
        assert np.abs(image[rows, cols].astype(int) - colour).max() < 20, colour


# EXIF orientation → how the stored pixels must turn to be seen upright (PIL's transposes).
ORIENTATIONS = {
    2: lambda a: a[:, ::-1],  # mirrored left-right
    3: lambda a: np.rot90(a, 2),
    4: lambda a: a[::-1],  # mirrored top-bottom
    6: lambda a: np.rot90(a, -1),  # stored turned left: shown turned right (clockwise)
    8: lambda a: np.rot90(a, 1),
}


@pytest.mark.parametrize("orientation", sorted(ORIENTATIONS))
def test_exif_orientation_is_applied(tmp_path, orientation):
    stored = quadrants()
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(stored).save(tmp_path / "turned.png", exif=exif)
    image, _, _ = imagefolder.decode_file(tmp_path / "turned.png", 16, "fixed")
    np.testing.assert_array_equal(image, ORIENTATIONS[orientation](stored))


def test_exif_rotation_of_a_jpeg_photo(tmp_path):
    """A 32×16 photo stored on its side (red left, blue right), EXIF 6: shown 16×32, red on top."""
    stored = np.zeros((16, 32, 3), np.uint8)
    stored[:, :16], stored[:, 16:] = RED, BLUE
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(tmp_path / "photo.jpg", exif=exif, quality=95)
    image, _, _ = imagefolder.decode_file(tmp_path / "photo.jpg", 16, "fixed")
    assert image[2, 8, 0] > 180 and image[2, 8, 2] < 80, "top is red"
    assert image[13, 8, 2] > 180 and image[13, 8, 0] < 80, "bottom is blue"


# ---------------------------------------------------------------- modes and transparency
@pytest.mark.parametrize("mode", ["P", "RGBA", "CMYK", "PA", "I;16", "LA", "1", "L"])
def test_odd_modes_keep_their_colours(tmp_path, mode):
    pixels = quadrants()
    image = Image.fromarray(pixels)
    if mode in ("P", "PA"):
        image = image.convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
        if mode == "PA":
            image = image.convert("PA")
    else:
        image = image.convert(mode)
    fmt = "JPEG" if mode == "CMYK" else ("TIFF" if mode == "PA" else "PNG")
    path = tmp_path / f"odd.{fmt.lower()}"
    try:
        image.save(path, format=fmt)
    except (OSError, ValueError, KeyError) as error:
        pytest.skip(f"Pillow cannot write {mode} as {fmt}: {error}")
    decoded, _, reason = imagefolder.decode_file(path, 16, "fixed")
    assert reason is None
    expected = np.asarray(image.convert("RGB"))
    if mode in ("P", "RGBA", "PA"):
        np.testing.assert_array_equal(decoded, pixels)  # opaque pixels: the colours unchanged
    elif mode == "CMYK":
        assert np.abs(decoded.astype(int) - expected.astype(int)).mean() < 12
        assert decoded[2, 2, 0] > decoded[2, 2, 2] + 100, "red stays red"
    else:  # grey modes: equal channels, the grey Pillow makes of it
        assert (decoded[..., 0] == decoded[..., 1]).all() and (decoded[..., 1] == decoded[..., 2]).all()
        assert len(np.unique(decoded)) >= 2


@pytest.mark.parametrize("mode", ["RGBA", "LA", "PA", "P"])
def test_transparent_pixels_become_white_in_every_mode_with_alpha(tmp_path, mode):
    rgba = Image.new("RGBA", (8, 8), (200, 30, 30, 255))
    rgba.paste((0, 0, 0, 0), (0, 0, 4, 8))  # left half: transparent black
    if mode == "LA":
        image = rgba.convert("LA")
    elif mode in ("P", "PA"):
        palette = rgba.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=2)
        alpha = rgba.getchannel("A")
        if mode == "PA":
            image = palette.convert("PA")
            image.putalpha(alpha)
        else:
            image = palette
            black = palette.getpixel((0, 0))
            image.info["transparency"] = black
    else:
        image = rgba
    path = tmp_path / f"clear.{'tiff' if mode == 'PA' else 'png'}"
    image.save(path)
    with Image.open(path) as reopened:
        assert reopened.mode == mode
    decoded, _, reason = imagefolder.decode_file(path, 8, "fixed")
    assert reason is None
    assert (decoded[:, :4] == 255).all(), "transparent pixels are white"
    assert not (decoded[:, 4:] == 255).all(), "opaque pixels keep their colour"


def test_a_palette_image_without_transparency_keeps_its_black(tmp_path):
    image = Image.new("RGB", (8, 8), (0, 0, 0)).convert("P")
    image.save(tmp_path / "black.png")
    decoded, _, _ = imagefolder.decode_file(tmp_path / "black.png", 8, "fixed")
    assert (decoded == 0).all()


# ---------------------------------------------------------------- exact skip reasons
def test_skip_reasons_name_the_error(tmp_path):
    (tmp_path / "dangling.png").symlink_to(tmp_path / "nowhere.png")
    assert imagefolder.decode_file(tmp_path / "dangling.png", 8, "fixed") == (
        None,
        None,
        "unreadable: No such file or directory",
    )
    good = write_image(tmp_path / "good.png", (5, 250, 35), size=(64, 64)).read_bytes()
    (tmp_path / "cut.png").write_bytes(good[: len(good) // 2])
    _, digest, reason = imagefolder.decode_file(tmp_path / "cut.png", 8, "fixed")
    assert digest and reason.startswith(("cannot decode: OSError: ", "cannot decode: SyntaxError: ")), reason
