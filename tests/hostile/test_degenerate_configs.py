"""Degenerate configs: values the schema must stop (names that are paths, sizes and seeds out of
range), one class, top_k beyond the classes, images that would not fit in memory. Each is stopped
naming its key, by the plan and by the workflow before any job runs."""

import numpy as np
import pytest
import yaml
from builders import copy_workflow, odd_name, schema_errors, snakemake, tiny_config, write_image
from labbook import imagefolder, metrics
from labbook.plan import checks


@pytest.mark.parametrize(
    "changes, key",
    [
        ({"dataset__name": "."}, "['dataset', 'name']"),
        ({"dataset__name": ".."}, "['dataset', 'name']"),
        ({"dataset__image_size": 100_000}, "['dataset', 'image_size']"),
        ({"dataset__seed": 2**63}, "['dataset', 'seed']"),
        ({"runs__cifarnet__seeds": [0, 2**64]}, "['runs', 'cifarnet', 'seeds', 1]"),
    ],
)
def test_the_schema_stops_degenerate_values_naming_the_key(changes, key):
    errors = schema_errors(tiny_config(**changes))
    assert errors and all(error.startswith(key) for error in errors), errors


def test_the_largest_seed_the_schema_takes_works():
    import torch

    seed = 2**63 - 1
    assert schema_errors(tiny_config(runs__cifarnet__seeds=[seed], dataset__seed=seed)) == []
    torch.Generator().manual_seed(seed)
    np.random.default_rng(seed)


def imagefolder_config(root, **analysis) -> dict:
    config = tiny_config()
    config["dataset"] = {"name": "photos", "kind": "imagefolder", "root": str(root), "image_size": 32}
    config["analysis"] = {"top_k": 3, **analysis}
    return config


def test_one_class_and_top_k_beyond_the_classes_are_stopped_naming_the_key(tmp_path):
    root = tmp_path / "photos"
    write_image(root / "train" / "ants" / "0.png")
    with pytest.raises(ValueError, match=r"^dataset\.root: .* 1 class folder"):
        checks.check_config(imagefolder_config(root, top_k=1))
    with pytest.raises(imagefolder.LayoutError, match="one class folder"):
        imagefolder.plan_splits(root, 0.5, 0)  # the data step says the same
    write_image(root / "train" / "bees" / "0.png")
    with pytest.raises(ValueError, match=r"^analysis\.top_k: 3 is more than the dataset's 2 classes"):
        checks.check_config(imagefolder_config(root))
    checks.check_config(imagefolder_config(root, top_k=2))
    with pytest.raises(ValueError, match=r"^analysis\.top_k: 11 .* 10 classes"):
        checks.check_config({**tiny_config(), "analysis": {"top_k": 11}})  # the demo's ten classes
    with pytest.raises(ValueError, match="top_k 3 is more than the 2 classes"):
        metrics.evaluate(np.zeros((4, 2)), np.array([0, 1, 0, 1]), ["a", "b"], top_k=3)


def test_an_image_size_that_would_not_fit_in_memory_is_stopped(tmp_path):
    config = tiny_config(dataset__image_size=1024, dataset__train_size=20_000)
    with pytest.raises(ValueError, match=r"^dataset\.image_size: 1024 makes 20100 images take 58\.9 GiB"):
        checks.check_config(config, memory=16 * 2**30)
    checks.check_config(tiny_config(), memory=16 * 2**30)


def test_the_workflow_stops_before_any_job_naming_the_key(tmp_path):
    workdir = copy_workflow(tmp_path / "workflow")
    root = tmp_path / "photos"
    write_image(root / "train" / "ants" / "0.png")
    cases = {
        "one-class.yaml": (imagefolder_config(root, top_k=1), "dataset.root:"),
        "dot.yaml": (tiny_config(dataset__name=".."), "dataset"),
    }
    for name, (config, key) in cases.items():
        (workdir / name).write_text(yaml.safe_dump(config))
        result = snakemake(workdir, "-n", "--configfile", name, check=False)
        output = result.stdout + result.stderr
        assert result.returncode != 0 and key in output, output
        assert "prepare_data" not in result.stdout
    assert not (workdir / "results").exists()
    (workdir / "fine.yaml").write_text(yaml.safe_dump(tiny_config()))
    assert "prepare_data" in snakemake(workdir, "-n", "--configfile", "fine.yaml").stdout
    write_image(root / "train" / odd_name("bees") / f"{odd_name('photo')}.png")  # names not UTF-8
    (workdir / "odd.yaml").write_text(yaml.safe_dump(imagefolder_config(root, top_k=1)))
    assert "prepare_data" in snakemake(workdir, "-n", "--configfile", "odd.yaml").stdout


def test_a_malformed_config_is_named_with_its_line_in_verbose_mode(tmp_path):
    """What the README tells a user to do when Snakemake says a config is not valid YAML."""
    workdir = copy_workflow(tmp_path / "workflow")
    (workdir / "broken.yaml").write_text("title: x\nobjective:\n  goal: a\n   hypothesis: b\n")
    plain = snakemake(workdir, "-n", "--configfile", "broken.yaml", check=False)
    assert plain.returncode != 0 and "not valid JSON or YAML" in plain.stdout + plain.stderr
    verbose = snakemake(workdir, "-n", "--verbose", "--configfile", "broken.yaml", check=False)
    assert 'in "broken.yaml", line 4, column' in verbose.stdout + verbose.stderr
