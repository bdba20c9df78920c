"""ImageFolder datasets (labbook/imagefolder.py): layouts and the errors that name their folder,
labels from folder names, bad files skipped and listed (or an error, with strict), held-out
splits, how files are split into chunks and when worker processes start, and the data step's
manifest and fingerprint. (What one file decodes to: test_imagefolder_decode.py.)"""

import functools
import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from builders import image_folder, write_image
from labbook import arrays, imagefolder, prepare, splits
from labbook.imagefolder import LayoutError
from labbook.plan import datasets
from PIL import Image

# Photos: JPEGs of a distinct colour per class, so a test can tell from pixels which class an
# image came from, each a little wider than the last.
COLOURS = {"ants": (200, 30, 30), "bees": (30, 30, 200), "cats": (30, 200, 30)}
photos = functools.partial(
    image_folder, name="{i}.jpg", colour=COLOURS, size=lambda slot: (40 + slot.i * 7, 30)
)


def coded(code: int) -> tuple:
    """A colour that holds `code`, so an array can be traced back to its file."""
    return (code, 255 - code, (code * 7) % 256)


def coded_image(path: Path, code: int, size=(12, 8)) -> Path:
    return write_image(path, coded(code), size)


# Coded PNGs of classes a and b: 10 × class + index (+ 100 outside train) in every pixel.
coded_folder = functools.partial(
    image_folder,
    classes=("a", "b"),
    per_class=10,
    splits=("train",),
    name="{i:02d}.png",
    size=(12, 8),
    colour=lambda slot: coded(10 * slot.label + slot.i + (100 if slot.split != "train" else 0)),
)


def load(root, **options):
    return imagefolder.load(root, **{"image_size": 16, **options})


# ---------------------------------------------------------------- layouts, labels, defaults
def test_classes_labels_and_resize_from_folders(tmp_path):
    root = photos(tmp_path / "data", classes=("bees", "ants"))
    classes, splits, skipped, digests, test_source = load(root)
    assert classes == ["ants", "bees"]  # sorted folder names
    assert test_source == "val"
    assert skipped == []
    assert len(digests) == 16
    for images, labels in splits.values():
        assert images.shape == (8, 16, 16, 3) and images.dtype == np.uint8
        assert list(np.bincount(labels)) == [4, 4]
        # each image's colour says its class: red ants, blue bees (JPEG shifts colours a little)
        red_minus_blue = images[..., 0].mean((1, 2)) - images[..., 2].mean((1, 2))
        assert np.all((red_minus_blue > 100) == (labels == 0))


def test_test_folder_is_preferred_over_val(tmp_path):
    root = photos(tmp_path / "data", splits=("train", "val"))
    photos(root, splits=("test",), per_class=2)
    _, splits, _, _, test_source = load(root)
    assert test_source == "test"
    assert len(splits["test"][1]) == 4


def test_train_val_and_test_folders_are_the_three_splits_and_all_count_in_the_fingerprint(tmp_path):
    root = photos(tmp_path / "data", splits=("train", "val"), per_class=3)
    photos(root, splits=("test",), per_class=2)
    spec = {"name": "abc", "kind": "imagefolder", "root": str(root), "image_size": 8}
    manifest = prepare.prepare(spec, tmp_path / "out")
    assert manifest["counts"]["val"] == {"ants": 3, "bees": 3}, "val/ is validation, none taken from train/"
    assert manifest["counts"]["train"] == {"ants": 3, "bees": 3}
    assert manifest["counts"]["test"] == {"ants": 2, "bees": 2}
    assert manifest["source"]["val_split"] == "val" and manifest["source"]["test_split"] == "test"
    before = datasets.fingerprint(spec)
    write_image(root / "val" / "ants" / "new.png", colour=(1, 2, 3))
    assert datasets.fingerprint(spec) != before, "an image added to val/ changes the data"


def test_defaults_are_32_pixels_a_tenth_held_out_by_seed_0_in_one_process(tmp_path, monkeypatch):
    root = coded_folder(tmp_path / "data")
    monkeypatch.setattr(imagefolder, "ProcessPoolExecutor", None)  # any use of a pool fails
    monkeypatch.setattr(imagefolder, "CHUNK", 4)  # several chunks: one process still, by default
    classes, splits, _, _, test_source = imagefolder.load(root)
    assert splits["train"][0].shape == (18, 32, 32, 3)
    assert list(np.bincount(splits["test"][1])) == [1, 1] and test_source == "holdout 0.1 of train"
    expected = [path.name for path, _ in imagefolder.plan_splits(root, 0.1, 0)[2]]
    codes = sorted(int(image[0, 0, 0]) for image in splits["test"][0])
    assert codes == sorted(10 * c + int(name[:2]) for c, name in zip((0, 1), expected, strict=True))


@pytest.mark.parametrize("mode", ["RGB", "L", "P", "RGBA", "CMYK", "LA", "1"])
def test_every_mode_becomes_rgb(tmp_path, mode):
    root = photos(tmp_path / "data")
    fmt = "JPEG" if mode in ("CMYK", "L", "RGB") else "PNG"
    ext = ".jpg" if fmt == "JPEG" else ".png"
    write_image(root / "train" / "ants" / f"odd{ext}", COLOURS["ants"], size=(64, 20), mode=mode, fmt=fmt)
    _, splits, skipped, _, _ = load(root)
    assert skipped == []
    images, labels = splits["train"]
    assert images.shape == (9, 16, 16, 3)


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


def test_an_unknown_resize_mode_is_named():
    with pytest.raises(ValueError, match="resize 'stretch' unknown; choose one of"):
        imagefolder.load("anywhere", resize="stretch")


def test_layout_errors_name_the_folder(tmp_path):
    with pytest.raises(LayoutError, match="nowhere does not exist"):
        load(tmp_path / "nowhere")

    no_train = tmp_path / "no-train"
    write_image(no_train / "val" / "ants" / "0.jpg")
    with pytest.raises(LayoutError, match="no-train has no train/"):
        load(no_train)

    flat = tmp_path / "flat"
    write_image(flat / "train" / "0.jpg")
    with pytest.raises(LayoutError, match="flat/train has no class folders"):
        load(flat)

    empty_class = photos(tmp_path / "empty-class")
    (empty_class / "train" / "wasps").mkdir()
    with pytest.raises(LayoutError, match="empty-class/train/wasps holds no images"):
        load(empty_class)

    missing = photos(tmp_path / "missing")
    for path in (missing / "val" / "bees").iterdir():
        path.unlink()
    (missing / "val" / "bees").rmdir()
    with pytest.raises(LayoutError, match="'bees' has no folder .*missing/val/bees"):
        load(missing)

    extra = photos(tmp_path / "extra")
    write_image(extra / "val" / "wasps" / "0.jpg")
    with pytest.raises(LayoutError, match=r"extra/val has class folder\(s\) \['wasps'\]"):
        load(extra)


def test_an_empty_class_in_the_test_folder_is_named(tmp_path):
    root = coded_folder(tmp_path / "data", per_class=2, splits=("train", "val"))
    for path in (root / "val" / "b").iterdir():
        path.unlink()
    with pytest.raises(
        LayoutError, match=r"class folder .*val/b holds no images \(extensions read: .bmp, .gif"
    ):
        imagefolder.plan_splits(root, 0.1, 0)


# ---------------------------------------------------------------- bad files
def test_bad_files_are_skipped_and_listed(tmp_path):
    root = photos(tmp_path / "data")
    ants = root / "train" / "ants"
    good = (ants / "0.jpg").read_bytes()
    (ants / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (ants / "empty.jpg").write_bytes(b"")
    (ants / "notes.jpg").write_text("not an image at all")
    (ants / "dangling.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (ants / "README.txt").write_text("ignored: not an image extension")
    (ants / ".hidden.jpg").write_text("ignored: hidden")

    _, splits, skipped, _, _ = load(root)
    reasons = {Path(s["path"]).name: s["reason"] for s in skipped}
    assert set(reasons) == {"truncated.jpg", "empty.jpg", "notes.jpg", "dangling.jpg"}
    assert "truncated" in reasons["truncated.jpg"].lower()
    assert "empty" in reasons["empty.jpg"]
    assert reasons["notes.jpg"] == "cannot decode: not an image format Pillow reads"
    assert "unreadable" in reasons["dangling.jpg"]
    assert all(s["path"].startswith(str(ants)) for s in skipped)
    assert list(np.bincount(splits["train"][1])) == [4, 4]  # only the good images are left


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_permission_is_skipped(tmp_path):
    root = photos(tmp_path / "data")
    locked = write_image(root / "train" / "ants" / "locked.jpg")
    locked.chmod(0)
    _, _, skipped, _, _ = load(root)
    assert [Path(s["path"]).name for s in skipped] == ["locked.jpg"]
    assert "unreadable" in skipped[0]["reason"]


def test_strict_lists_every_bad_file_one_per_line(tmp_path):
    root = coded_folder(tmp_path / "data", per_class=3)
    for name in ("00.png", "01.png"):
        (root / "train" / "a" / name).write_bytes(b"")
    with pytest.raises(ValueError) as raised:
        imagefolder.load(root, image_size=4, strict=True)
    lines = str(raised.value).splitlines()
    assert lines[0] == f"2 file(s) under {root} could not be read (strict: true):"
    assert lines[1:] == [f"  {root}/train/a/0{i}.png: empty file (0 bytes)" for i in (0, 1)]


def test_a_class_of_only_bad_files_is_an_error_naming_it(tmp_path):
    root = photos(tmp_path / "data")
    for path in (root / "val" / "bees").iterdir():
        path.write_bytes(b"")
    with pytest.raises(LayoutError, match="val/bees has no readable image"):
        load(root)


def test_a_train_class_of_only_bad_files_names_its_train_folder(tmp_path):
    root = coded_folder(tmp_path / "data", per_class=2, splits=("train", "val"))
    for path in (root / "train" / "a").iterdir():
        path.write_bytes(b"broken")
    with pytest.raises(LayoutError, match=r"class folder \S+/data/train/a has no readable image for train"):
        imagefolder.load(root, image_size=4)


# ---------------------------------------------------------------- held-out splits
def test_holdout_is_stratified_and_seeded(tmp_path):
    root = photos(tmp_path / "data", splits=("train",), per_class=10, classes=("ants", "bees", "cats"))
    first = load(root, holdout=0.2, seed=1)
    again = load(root, holdout=0.2, seed=1)
    _, splits, _, digests, test_source = first
    assert test_source == "holdout 0.2 of train"
    assert list(np.bincount(splits["train"][1])) == [8, 8, 8]
    assert list(np.bincount(splits["test"][1])) == [2, 2, 2]
    assert len(digests) == 30  # every training file, held out or not
    np.testing.assert_array_equal(first[1]["test"][1], again[1]["test"][1])

    def held_out(seed):
        return [path.relative_to(root) for path, _ in imagefolder.plan_splits(root, 0.2, seed)[2]]

    assert held_out(1) == held_out(1)
    assert held_out(1) != held_out(2)
    assert len(set(held_out(1))) == 6


def test_the_seed_chooses_the_held_out_files(tmp_path):
    root = coded_folder(tmp_path / "data")
    first = imagefolder.load(root, image_size=4, holdout=0.3, seed=5)[1]["test"][0]
    again = imagefolder.load(root, image_size=4, holdout=0.3, seed=5)[1]["test"][0]
    other = imagefolder.load(root, image_size=4, holdout=0.3, seed=6)[1]["test"][0]
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("holdout", [0, 1, 1.5, -0.1])
def test_holdout_must_be_a_fraction_strictly_between_0_and_1(tmp_path, holdout):
    root = coded_folder(tmp_path / "data", per_class=3)
    with pytest.raises(LayoutError, match=f"{root} has no test/ or val/ folder and holdout {holdout} is not"):
        imagefolder.plan_splits(root, holdout, 0)


def test_holdout_needs_two_images_per_class(tmp_path):
    root = photos(tmp_path / "data", splits=("train",), per_class=3)
    write_image(root / "train" / "cats" / "only.jpg")
    with pytest.raises(LayoutError, match="train/cats has 1 image.*too few"):
        load(root, holdout=0.1)


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


def test_threads_decode_in_a_process_pool(tmp_path, monkeypatch):
    monkeypatch.setattr(imagefolder, "CHUNK", 4)
    root = coded_folder(tmp_path / "data", per_class=5, splits=("train", "val"))
    pools = []

    class CountedPool(ProcessPoolExecutor):
        def __init__(self, max_workers=None, **kw):
            pools.append(max_workers)
            super().__init__(max_workers=max_workers, **kw)

    monkeypatch.setattr(imagefolder, "ProcessPoolExecutor", CountedPool)
    serial = imagefolder.load(root, image_size=8, threads=1)
    assert pools == [], "one thread decodes in this process"
    parallel = imagefolder.load(root, image_size=8, threads=2)
    assert pools == [2, 2], "per split (train, test), 10 files in chunks of 4: two worker processes"
    for split in ("train", "test"):
        np.testing.assert_array_equal(serial[1][split][0], parallel[1][split][0])
    assert imagefolder.load(root, image_size=8, threads=8) and pools[-2:] == [3, 3], (
        "no more workers than chunks"
    )


def test_large_images_go_to_the_workers_in_smaller_chunks():
    """A decoded chunk waits in memory until it is written: at most CHUNK_BYTES of pixels."""
    assert imagefolder.files_per_chunk(32) == imagefolder.CHUNK
    assert imagefolder.files_per_chunk(224) * 224 * 224 * 3 <= imagefolder.CHUNK_BYTES
    assert imagefolder.files_per_chunk(10_000) == 1


def test_parallel_decoding_gives_the_same_arrays(tmp_path, monkeypatch):
    monkeypatch.setattr(imagefolder, "CHUNK", 5)  # several chunks from a small folder
    root = photos(tmp_path / "data", per_class=9)
    (root / "train" / "ants" / "bad.jpg").write_text("no")
    one = load(root, threads=1)
    two = load(root, threads=2)
    for split in ("train", "test"):
        np.testing.assert_array_equal(one[1][split][0], two[1][split][0])
        np.testing.assert_array_equal(one[1][split][1], two[1][split][1])
    assert one[2] == two[2] and one[3] == two[3]


# ---------------------------------------------------------------- the data step's manifest and fingerprint
def test_prepare_writes_the_manifest(tmp_path):
    root = photos(tmp_path / "data")
    (root / "train" / "bees" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    spec = {"name": "ab", "kind": "imagefolder", "root": str(root), "image_size": 24}
    manifest = prepare.prepare(spec, tmp_path / "out", threads=2)
    on_disk = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert on_disk == manifest
    assert manifest["classes"] == ["ants", "bees"]
    assert manifest["image_shape"] == [24, 24, 3]
    # train/ + val/ (the transfer-learning tutorial's layout): val/ is the test split, and the
    # validation split is val_size (a tenth, at least one per class) of train/
    assert manifest["counts"] == {
        "train": {"ants": 3, "bees": 3},
        "val": {"ants": 1, "bees": 1},
        "test": {"ants": 4, "bees": 4},
    }
    assert manifest["skipped"][0]["path"].endswith("train/bees/broken.png")
    assert manifest["source"]["test_split"] == "val"
    assert manifest["mean"][0] > manifest["mean"][1]  # red ants and blue bees, no green
    images, labels = arrays.load_split(tmp_path / "out", "test")
    assert images.shape == (8, 24, 24, 3)


def test_the_data_step_writes_byte_for_byte_what_decoding_in_memory_gives(tmp_path, monkeypatch):
    """The data step decodes chunk by chunk in worker processes and writes each chunk as it
    comes; its files hold exactly what decoding every file in memory gives (bad files left out,
    the validation split held out of train/ as splits.py does), in the same order."""
    monkeypatch.setattr(imagefolder, "CHUNK", 3)  # several chunks per split, two processes
    root = photos(tmp_path / "data", per_class=7)  # train/ and val/ (the test split)
    (root / "train" / "bees" / "2.jpg").write_bytes(b"broken")
    (root / "val" / "ants" / "bad.png").write_bytes(b"")
    spec = {
        "name": "ab",
        "kind": "imagefolder",
        "root": str(root),
        "image_size": 12,
        "val_size": 4,
        "seed": 1,
    }
    manifest = prepare.prepare(spec, tmp_path / "out", threads=2)
    assert len(manifest["skipped"]) == 2

    def decoded(planned):
        pairs = [
            (imagefolder.decode_file(path, 12, "shorter_center_crop")[0], label) for path, label in planned
        ]
        pairs = [(image, label) for image, label in pairs if image is not None]
        return np.stack([image for image, _ in pairs]), np.array([label for _, label in pairs], np.int64)

    _, train, test, _, _ = imagefolder.plan_splits(root, 0.1, 0)
    train_images, train_labels = decoded(train)
    held = splits.stratified_holdout(train_labels, 4, 1, "val")
    expected = dict(zip(("train", "val"), splits.split_off(train_images, train_labels, held), strict=True))
    expected["test"] = decoded(test)
    for split, (images, labels) in expected.items():
        stored_images, stored_labels = arrays.load_split(tmp_path / "out", split)
        assert stored_images.shape == images.shape and stored_images.tobytes() == images.tobytes(), split
        np.testing.assert_array_equal(stored_labels, labels)
    assert manifest["mean"] == arrays.channel_stats(expected["train"][0])[0]


def test_source_hash_matches_the_workflow_fingerprint_and_follows_the_files(tmp_path):
    root = photos(tmp_path / "data")
    (root / "train" / "ants" / "empty.jpg").write_bytes(b"")
    spec = {"name": "ab", "kind": "imagefolder", "root": str(root)}
    digest_cache = tmp_path / "md5.json"
    manifest = prepare.prepare(spec, tmp_path / "out")
    fingerprint = datasets.fingerprint(spec, digest_cache)
    assert manifest["source_hash"] == fingerprint

    os.utime(root / "train" / "ants" / "0.jpg", (1, 1))  # touched, same content
    assert datasets.fingerprint(spec, digest_cache) == fingerprint
    write_image(root / "train" / "ants" / "0.jpg", (0, 255, 0))  # edited
    edited = datasets.fingerprint(spec, digest_cache)
    assert edited != fingerprint
    (root / "train" / "ants" / "0.jpg").rename(root / "train" / "ants" / "9.jpg")  # renamed
    assert datasets.fingerprint(spec, digest_cache) not in (fingerprint, edited)
    # A missing root is the data step's error to report, not the job graph's.
    assert datasets.fingerprint({**spec, "root": str(tmp_path / "nowhere")})
