"""ImageFolder loading at its edges: defaults, transparency in every mode, exact skip reasons,
how files are split into chunks and when worker processes start, holdout bounds, messages."""

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from labbook import imagefolder
from labbook.imagefolder import LayoutError
from PIL import Image


def coded_image(path: Path, code: int, size=(12, 8)) -> Path:
    """An image whose pixels hold `code`, so an array can be traced back to its file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (code, 255 - code, (code * 7) % 256)).save(path)
    return path


def folder(root: Path, per_class=10, splits=("train",), classes=("a", "b")) -> Path:
    for split in splits:
        for c, name in enumerate(classes):
            for i in range(per_class):
                coded_image(
                    root / split / name / f"{i:02d}.png", 10 * c + i + (100 if split != "train" else 0)
                )
    return root


def test_defaults_are_32_pixels_a_tenth_held_out_by_seed_0_in_one_process(tmp_path, monkeypatch):
    root = folder(tmp_path / "data")
    monkeypatch.setattr(imagefolder, "ProcessPoolExecutor", None)  # any use of a pool fails
    monkeypatch.setattr(imagefolder, "CHUNK", 4)  # several chunks: one process still, by default
    classes, splits, _, _, test_source = imagefolder.load(root)
    assert splits["train"][0].shape == (18, 32, 32, 3)
    assert list(np.bincount(splits["test"][1])) == [1, 1] and test_source == "holdout 0.1 of train"
    expected = [path.name for path, _ in imagefolder.plan_splits(root, 0.1, 0)[2]]
    codes = sorted(int(image[0, 0, 0]) for image in splits["test"][0])
    assert codes == sorted(10 * c + int(name[:2]) for c, name in zip((0, 1), expected, strict=True))


def test_the_seed_chooses_the_held_out_files(tmp_path):
    root = folder(tmp_path / "data")
    first = imagefolder.load(root, image_size=4, holdout=0.3, seed=5)[1]["test"][0]
    again = imagefolder.load(root, image_size=4, holdout=0.3, seed=5)[1]["test"][0]
    other = imagefolder.load(root, image_size=4, holdout=0.3, seed=6)[1]["test"][0]
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("holdout", [0, 1, 1.5, -0.1])
def test_holdout_must_be_a_fraction_strictly_between_0_and_1(tmp_path, holdout):
    root = folder(tmp_path / "data", per_class=3)
    with pytest.raises(LayoutError, match=f"{root} has no test/ or val/ folder and holdout {holdout} is not"):
        imagefolder.plan_splits(root, holdout, 0)


def test_an_empty_class_in_the_test_folder_is_named(tmp_path):
    root = folder(tmp_path / "data", per_class=2, splits=("train", "val"))
    for path in (root / "val" / "b").iterdir():
        path.unlink()
    with pytest.raises(
        LayoutError, match=r"class folder .*val/b holds no images \(extensions read: .bmp, .gif"
    ):
        imagefolder.plan_splits(root, 0.1, 0)


def test_a_train_class_of_only_bad_files_names_its_train_folder(tmp_path):
    root = folder(tmp_path / "data", per_class=2, splits=("train", "val"))
    for path in (root / "train" / "a").iterdir():
        path.write_bytes(b"broken")
    with pytest.raises(LayoutError, match=r"class folder \S+/data/train/a has no readable image for train"):
        imagefolder.load(root, image_size=4)


def test_strict_lists_every_bad_file_one_per_line(tmp_path):
    root = folder(tmp_path / "data", per_class=3)
    for name in ("00.png", "01.png"):
        (root / "train" / "a" / name).write_bytes(b"")
    with pytest.raises(ValueError) as raised:
        imagefolder.load(root, image_size=4, strict=True)
    lines = str(raised.value).splitlines()
    assert lines[0] == f"2 file(s) under {root} could not be read (strict: true):"
    assert lines[1:] == [f"  {root}/train/a/0{i}.png: empty file (0 bytes)" for i in (0, 1)]


def test_an_unknown_resize_mode_is_named():
    with pytest.raises(ValueError, match="resize 'stretch' unknown; choose one of"):
        imagefolder.load("anywhere", resize="stretch")


# ---------------------------------------------------------------- transparency
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
    good = coded_image(tmp_path / "good.png", 5, size=(64, 64)).read_bytes()
    (tmp_path / "cut.png").write_bytes(good[: len(good) // 2])
    _, digest, reason = imagefolder.decode_file(tmp_path / "cut.png", 8, "fixed")
    assert digest and reason.startswith(("cannot decode: OSError: ", "cannot decode: SyntaxError: ")), reason


# ---------------------------------------------------------------- chunks and worker processes
def test_decode_all_keeps_every_file_once_in_order_across_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(imagefolder, "CHUNK", 2)
    monkeypatch.setattr(imagefolder, "ProcessPoolExecutor", None)  # by default: in this process
    paths = [coded_image(tmp_path / f"{i}.png", 20 * i) for i in range(5)]
    paths.insert(2, tmp_path / "missing.png")
    images, results = imagefolder.decode_all(paths, 4, "fixed")
    assert [int(image[0, 0, 0]) for image in images] == [0, 20, 40, 60, 80]
    assert len(results) == 6 and results[2] == (None, "unreadable: No such file or directory")
    assert all(reason is None for i, (_, reason) in enumerate(results) if i != 2)


def test_decode_all_of_nothing_or_only_bad_files_is_an_empty_uint8_array(tmp_path):
    images, results = imagefolder.decode_all([], 6, "fixed")
    assert images.shape == (0, 6, 6, 3) and images.dtype == np.uint8 and results == []
    (tmp_path / "bad.png").write_bytes(b"")
    stacked, results = imagefolder.decode_chunk([tmp_path / "bad.png"], 6, "fixed")
    assert stacked.shape == (0, 6, 6, 3) and stacked.dtype == np.uint8
    assert results[0][1] == "empty file (0 bytes)"


@pytest.mark.parametrize("files, threads, workers", [(4, 2, None), (8, 2, 2), (12, 8, 3), (12, 1, None)])
def test_worker_processes_start_only_for_several_chunks_and_threads(
    tmp_path, monkeypatch, files, threads, workers
):
    monkeypatch.setattr(imagefolder, "CHUNK", 4)
    started = []

    class Pool(ProcessPoolExecutor):
        def __init__(self, max_workers=None):
            started.append(max_workers)
            super().__init__(max_workers=max_workers)

    monkeypatch.setattr(imagefolder, "ProcessPoolExecutor", Pool)
    paths = [coded_image(tmp_path / f"{i}.png", i) for i in range(files)]
    images, _ = imagefolder.decode_all(paths, 4, "fixed", threads)
    assert started == ([] if workers is None else [workers])
    assert [int(image[0, 0, 0]) for image in images] == list(range(files))


def test_load_passes_the_resize_mode_on(tmp_path):
    root = tmp_path / "data"
    for split in ("train", "val"):
        wide = Image.new("RGB", (30, 10), (0, 0, 255))
        wide.paste((255, 0, 0), (10, 0, 20, 10))  # blue | red | blue
        (root / split / "a").mkdir(parents=True)
        wide.save(root / split / "a" / "wide.png")
        coded_image(root / split / "b" / "other.png", 9)  # a classifier needs two classes
    fixed = imagefolder.load(root, image_size=9, resize="fixed", threads=1)[1]["train"][0][0]
    crop = imagefolder.load(root, image_size=9, resize="shorter_center_crop")[1]["train"][0][0]
    assert fixed[:, 0, 2].min() > 200, "fixed keeps the blue edges"
    assert crop[:, :, 0].min() > 200, "the crop keeps only the red middle"
