"""Dataset specs (labbook/plan/datasets.py): one folder per spec whatever defaults it spells
out; options merged with the kind's defaults, unknown keys refused."""

import pytest
from labbook.plan import datasets


def test_a_dataset_spec_gets_one_folder_whatever_defaults_it_spells_out():
    implicit = {"name": "shapes", "kind": "demo"}
    explicit = {
        "name": "shapes",
        "kind": "demo",
        "train_size": 4000,
        "test_size": 1000,
        "seed": 0,
        "image_size": 32,
    }
    assert datasets.key(implicit) == datasets.key(explicit)
    assert datasets.key(implicit).startswith("shapes-")
    assert datasets.key({**implicit, "image_size": 48}) != datasets.key(implicit)
    assert datasets.key({**implicit, "name": "other"}) != datasets.key(implicit)


def test_dataset_options_merge_defaults_and_reject_unknown_keys():
    options = datasets.options({"name": "i", "kind": "imagefolder", "root": "photos"})
    assert options == {**datasets.KINDS["imagefolder"].defaults, "root": "photos"}
    with pytest.raises(ValueError, match=r"'imagefolder' needs \['root'\]"):
        datasets.options({"name": "i", "kind": "imagefolder"})
    with pytest.raises(ValueError, match=r"'cifar10' does not take \['holdout'\]"):
        datasets.options({"name": "c", "kind": "cifar10", "holdout": 0.1})
