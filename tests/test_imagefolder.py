"""ImageFolder datasets: layouts, image modes and sizes, bad files, held-out splits."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from labbook import arrays, imagefolder, prepare
from labbook.imagefolder import LayoutError
from labbook.plan import datasets
from PIL import Image

# A distinct colour per class, so a test can tell from pixels which class an image came from.
COLOURS = {"ants": (200, 30, 30), "bees": (30, 30, 200), "cats": (30, 200, 30)}


def write_image(path: Path, colour=(200, 30, 30), size=(40, 30), mode="RGB", fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, colour)
    if mode == "P":
        image = image.convert("P", palette=Image.Palette.ADAPTIVE)
    elif mode != "RGB":
        image = image.convert(mode)
    image.save(path, format=fmt)
    return path


def make_folder(root: Path, splits=("train", "val"), per_class=4, classes=("ants", "bees")) -> Path:
    for split in splits:
        for name in classes:
            for i in range(per_class):
                write_image(root / split / name / f"{i}.jpg", COLOURS[name], size=(40 + i * 7, 30))
    return root


def load(root, **options):
    return imagefolder.load(root, **{"image_size": 16, **options})


def test_classes_labels_and_resize_from_folders(tmp_path):
    root = make_folder(tmp_path / "data", classes=("bees", "ants"))
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
    root = make_folder(tmp_path / "data", splits=("train", "val"))
    make_folder(root, splits=("test",), per_class=2)
    _, splits, _, _, test_source = load(root)
    assert test_source == "test"
    assert len(splits["test"][1]) == 4


@pytest.mark.parametrize("mode", ["RGB", "L", "P", "RGBA", "CMYK", "LA", "1"])
def test_every_mode_becomes_rgb(tmp_path, mode):
    root = make_folder(tmp_path / "data")
    fmt = "JPEG" if mode in ("CMYK", "L", "RGB") else "PNG"
    ext = ".jpg" if fmt == "JPEG" else ".png"
    write_image(root / "train" / "ants" / f"odd{ext}", COLOURS["ants"], size=(64, 20), mode=mode, fmt=fmt)
    _, splits, skipped, _, _ = load(root)
    assert skipped == []
    images, labels = splits["train"]
    assert images.shape == (9, 16, 16, 3)


def test_transparent_pixels_become_white(tmp_path):
    root = make_folder(tmp_path / "data")
    clear = Image.new("RGBA", (16, 16), (0, 0, 0, 0))
    clear.save(root / "train" / "ants" / "clear.png")
    _, splits, _, _, _ = load(root)
    images, _ = splits["train"]
    assert any((image == 255).all() for image in images)


def test_resize_modes(tmp_path):
    """A wide image: `fixed` squeezes all of it in; `shorter_center_crop` keeps the middle."""
    root = make_folder(tmp_path / "data")
    wide = Image.new("RGB", (96, 32), (0, 0, 255))
    wide.paste((255, 0, 0), (32, 0, 64, 32))  # blue | red | blue
    wide.save(root / "train" / "ants" / "wide.png")
    fixed = imagefolder.decode_file(root / "train" / "ants" / "wide.png", 30, "fixed")[0]
    crop = imagefolder.decode_file(root / "train" / "ants" / "wide.png", 30, "shorter_center_crop")[0]
    assert fixed.shape == crop.shape == (30, 30, 3)
    assert fixed[:, 0, 2].min() > 200 and fixed[:, -1, 2].min() > 200  # blue edges kept
    assert crop[:, :, 0].min() > 200  # only the red middle third is left


def test_bad_files_are_skipped_and_listed(tmp_path):
    root = make_folder(tmp_path / "data")
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
    root = make_folder(tmp_path / "data")
    locked = write_image(root / "train" / "ants" / "locked.jpg")
    locked.chmod(0)
    _, _, skipped, _, _ = load(root)
    assert [Path(s["path"]).name for s in skipped] == ["locked.jpg"]
    assert "unreadable" in skipped[0]["reason"]


def test_strict_makes_bad_files_an_error_naming_them(tmp_path):
    root = make_folder(tmp_path / "data")
    (root / "val" / "bees" / "empty.jpg").write_bytes(b"")
    with pytest.raises(ValueError, match=r"strict.*\n.*val/bees/empty.jpg: empty"):
        load(root, strict=True)


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

    empty_class = make_folder(tmp_path / "empty-class")
    (empty_class / "train" / "wasps").mkdir()
    with pytest.raises(LayoutError, match="empty-class/train/wasps holds no images"):
        load(empty_class)

    missing = make_folder(tmp_path / "missing")
    for path in (missing / "val" / "bees").iterdir():
        path.unlink()
    (missing / "val" / "bees").rmdir()
    with pytest.raises(LayoutError, match="'bees' has no folder .*missing/val/bees"):
        load(missing)

    extra = make_folder(tmp_path / "extra")
    write_image(extra / "val" / "wasps" / "0.jpg")
    with pytest.raises(LayoutError, match=r"extra/val has class folder\(s\) \['wasps'\]"):
        load(extra)


def test_a_class_of_only_bad_files_is_an_error_naming_it(tmp_path):
    root = make_folder(tmp_path / "data")
    for path in (root / "val" / "bees").iterdir():
        path.write_bytes(b"")
    with pytest.raises(LayoutError, match="val/bees has no readable image"):
        load(root)


def test_holdout_is_stratified_and_seeded(tmp_path):
    root = make_folder(tmp_path / "data", splits=("train",), per_class=10, classes=("ants", "bees", "cats"))
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


def test_holdout_needs_two_images_per_class(tmp_path):
    root = make_folder(tmp_path / "data", splits=("train",), per_class=3)
    write_image(root / "train" / "cats" / "only.jpg")
    with pytest.raises(LayoutError, match="train/cats has 1 image.*too few"):
        load(root, holdout=0.1)


def test_parallel_decoding_gives_the_same_arrays(tmp_path, monkeypatch):
    monkeypatch.setattr(imagefolder, "CHUNK", 5)  # several chunks from a small folder
    root = make_folder(tmp_path / "data", per_class=9)
    (root / "train" / "ants" / "bad.jpg").write_text("no")
    one = load(root, threads=1)
    two = load(root, threads=2)
    for split in ("train", "test"):
        np.testing.assert_array_equal(one[1][split][0], two[1][split][0])
        np.testing.assert_array_equal(one[1][split][1], two[1][split][1])
    assert one[2] == two[2] and one[3] == two[3]


def test_prepare_writes_the_manifest(tmp_path):
    root = make_folder(tmp_path / "data")
    (root / "train" / "bees" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    spec = {"name": "ab", "kind": "imagefolder", "root": str(root), "image_size": 24}
    manifest = prepare.prepare(spec, tmp_path / "out", threads=2)
    on_disk = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert on_disk == manifest
    assert manifest["classes"] == ["ants", "bees"]
    assert manifest["image_shape"] == [24, 24, 3]
    assert manifest["counts"] == {"train": {"ants": 4, "bees": 4}, "test": {"ants": 4, "bees": 4}}
    assert manifest["skipped"][0]["path"].endswith("train/bees/broken.png")
    assert manifest["source"]["test_split"] == "val"
    assert manifest["mean"][0] > manifest["mean"][1]  # red ants and blue bees, no green
    images, labels = arrays.load_split(tmp_path / "out", "test")
    assert images.shape == (8, 24, 24, 3)


def test_source_hash_matches_the_workflow_fingerprint_and_follows_the_files(tmp_path):
    root = make_folder(tmp_path / "data")
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
