"""Image files decode to the right pixels: every listed format, EXIF rotation, odd modes; the
digest cache spares reading unchanged files; several processes decode when asked to."""

import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from labbook import imagefolder
from labbook.plan import datasets, sources
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


def test_sixteen_bit_grey_keeps_its_brightness_order(tmp_path):
    grey = (np.arange(256, dtype=np.uint16).reshape(16, 16) * 257).astype(np.uint16)
    Image.fromarray(grey).save(tmp_path / "deep.png")  # 16-bit grey
    decoded, _, reason = imagefolder.decode_file(tmp_path / "deep.png", 16, "fixed")
    assert reason is None
    flat = decoded[..., 0].astype(int).ravel()
    assert flat[-1] > flat[0], "the brightest pixel is brighter than the darkest"


# ---------------------------------------------------------------- the digest cache
def imagefolder_root(root: Path, per_class: int = 3) -> Path:
    for split in ("train", "val"):
        for label, colour in enumerate((RED, BLUE)):
            for i in range(per_class):
                folder = root / split / f"class{label}"
                folder.mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (8, 8), colour).save(folder / f"{i}.png")
    return root


def test_a_warm_digest_cache_reads_no_file(tmp_path, monkeypatch):
    root = imagefolder_root(tmp_path / "data")
    spec = {"name": "x", "kind": "imagefolder", "root": str(root)}
    cache_file = tmp_path / "digests.json"
    read = []
    real_md5 = sources.file_md5
    monkeypatch.setattr(sources, "file_md5", lambda path: read.append(Path(path).name) or real_md5(path))

    cold = datasets.fingerprint(spec, cache_file)
    assert len(read) == 12, "a cold cache reads every file once"
    assert len(json.loads(cache_file.read_text())) == 12
    read.clear()
    assert datasets.fingerprint(spec, cache_file) == cold
    assert read == [], "a warm cache only stats the files"

    touched = root / "train" / "class0" / "1.png"
    os.utime(touched, ns=(1, 1))
    assert datasets.fingerprint(spec, cache_file) == cold
    assert read == ["1.png"], "a touched file is read again, and only it"
    read.clear()
    assert datasets.fingerprint(spec, cache_file) == cold and read == []
    # no cache file: every look reads everything
    datasets.fingerprint(spec)
    assert len(read) == 12


def test_digest_cache_notices_a_same_size_edit_and_survives_damage(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"aaaa")
    cache = sources.DigestCache(tmp_path / "c.json")
    first = cache.md5(path)
    cache.save()
    path.write_bytes(b"bbbb")  # same size
    os.utime(path, ns=(10**18, 10**18))
    assert sources.DigestCache(tmp_path / "c.json").md5(path) == sources.file_md5(path) != first
    (tmp_path / "c.json").write_text("{not json")
    assert sources.DigestCache(tmp_path / "c.json").md5(path) == sources.file_md5(path)
    assert sources.DigestCache(tmp_path / "c.json").md5(tmp_path / "missing") is None


def test_combine_digests_changes_with_any_path_or_digest():
    base = {"a/1.png": "x", "b/2.png": "y"}
    reference = sources.combine_digests(base)
    assert sources.combine_digests(dict(reversed(base.items()))) == reference, "order does not matter"
    variants = [{"a/1.png": "x"}, {**base, "c.png": "z"}, {"a/1.png": "x", "b/3.png": "y"},
                {"a/1.png": "x", "b/2.png": "w"}, {"a/1.png": "x", "b/2.png": None}]  # fmt: skip
    hashes = {sources.combine_digests(v) for v in variants}
    assert reference not in hashes and len(hashes) == len(variants)


# ---------------------------------------------------------------- parallel decoding
def test_threads_decode_in_a_process_pool(tmp_path, monkeypatch):
    monkeypatch.setattr(imagefolder, "CHUNK", 4)
    root = imagefolder_root(tmp_path / "data", per_class=5)
    pools = []

    class CountedPool(ProcessPoolExecutor):
        def __init__(self, max_workers=None, **kw):
            pools.append(max_workers)
            super().__init__(max_workers=max_workers, **kw)

    monkeypatch.setattr(imagefolder, "ProcessPoolExecutor", CountedPool)
    serial = imagefolder.load(root, image_size=8, threads=1)
    assert pools == [], "one thread decodes in this process"
    parallel = imagefolder.load(root, image_size=8, threads=2)
    assert pools == [2], "20 files in chunks of 4: two worker processes"
    for split in ("train", "test"):
        np.testing.assert_array_equal(serial[1][split][0], parallel[1][split][0])
    assert imagefolder.load(root, image_size=8, threads=8) and pools[-1] == 5, "no more workers than chunks"


def test_list_images_walks_subfolders_and_skips_hidden_ones(tmp_path):
    split = tmp_path / "train"
    for relative in ("cat/a.png", "cat/2019/b.PNG", "cat/2019/deep/c.jpeg", "cat/.cache/d.png",
                     "cat/notes.txt", ".thumbs/x/e.png", "dog/f.webp"):  # fmt: skip
        (split / relative).parent.mkdir(parents=True, exist_ok=True)
        (split / relative).write_bytes(b"x")
    found = sources.list_images(split)
    assert list(found) == ["cat", "dog"], "hidden folders are no classes"
    assert [p.relative_to(split).as_posix() for p in found["cat"]] == [
        "cat/2019/b.PNG",
        "cat/2019/deep/c.jpeg",
        "cat/a.png",
    ]
    assert sources.list_images(tmp_path / "absent") == {}


def test_the_digest_cache_file_may_live_in_a_new_folder_and_is_not_rewritten_when_warm(tmp_path):
    data = tmp_path / "f.bin"
    data.write_bytes(b"abc")
    cache_file = tmp_path / "new" / "deeper" / "digests.json"
    cold = sources.DigestCache(cache_file)
    cold.md5(data)
    cold.save()
    written = cache_file.stat().st_mtime_ns
    os.utime(cache_file, ns=(1, 1))
    warm = sources.DigestCache(cache_file)
    assert warm.md5(data) == sources.file_md5(data)
    warm.save()
    assert cache_file.stat().st_mtime_ns == 1, "nothing new learned: the cache file is left alone"
    assert written != 1
    in_memory = sources.DigestCache()
    assert in_memory.md5(data) == sources.file_md5(data) and in_memory.md5(data) == sources.file_md5(data)
    in_memory.save()  # no file to write: nothing happens


def test_printable_shows_undecodable_bytes_of_a_file_name():
    assert sources.printable("caf\udcff.png") == "caf\\xff.png"
    assert sources.printable("café.png") == "café.png"
