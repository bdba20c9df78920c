"""File and folder names that are not UTF-8 (bytes Python sees as surrogates): read, fingerprinted,
and shown printably in what the data step writes and in its errors. (How one name prints:
unit/test_plan_sources.py.)"""

import os

import pytest
from builders import image_folder, odd_name, write_image
from labbook import imagefolder, prepare
from labbook.plan import datasets


def test_names_that_are_not_utf8_are_read_and_shown_printably(tmp_path):
    root = tmp_path / "photos"
    bees = odd_name("bees")
    image_folder(root, ("ants", bees), 3, colour={"ants": (200, 30, 30), bees: (30, 30, 200)}, size=(20, 20))
    write_image(root / "train" / "ants" / odd_name("photo") / f"{odd_name('x')}.png", size=(20, 20))
    (root / "train" / "ants" / f"{odd_name('broken')}.png").write_bytes(b"not a png")

    fingerprint = datasets.fingerprint({"name": "p", "kind": "imagefolder", "root": str(root)})
    manifest = prepare.prepare(
        {"name": "p", "kind": "imagefolder", "root": str(root), "image_size": 8}, tmp_path / "out"
    )
    assert manifest["source_hash"] == fingerprint
    assert manifest["classes"] == ["ants", "bees-\\xe9t\\xe9\\xff"]
    # the odd folder's too; one image of each class is the validation split
    train, val = manifest["counts"]["train"], manifest["counts"]["val"]
    assert {c: train[c] + val[c] for c in train} == {"ants": 4, "bees-\\xe9t\\xe9\\xff": 3}
    assert [s["path"] for s in manifest["skipped"]] == [str(root / "train/ants/broken-\\xe9t\\xe9\\xff.png")]
    (tmp_path / "out" / "manifest.json").read_bytes().decode("utf-8")  # strict UTF-8, any reader
    renamed = root / "train" / "ants" / f"{odd_name('y')}.png"
    os.rename(root / "train" / "ants" / "0.png", renamed)
    assert datasets.fingerprint({"name": "p", "kind": "imagefolder", "root": str(root)}) != fingerprint


def test_a_missing_test_class_folder_with_an_odd_name_is_named_printably(tmp_path):
    root = tmp_path / "photos"
    image_folder(
        root, per_class={"train": {"ants": 2, odd_name("bees"): 2}, "val": {"ants": 1}}, size=(20, 20)
    )
    with pytest.raises(imagefolder.LayoutError, match=r"'bees-\\\\xe9t\\\\xe9\\\\xff'"):
        imagefolder.plan_splits(root, 0.5, 0)
