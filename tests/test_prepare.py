"""Dataset specs: options, the schema's dataset section, shipped configs, and what reruns when
the source files change."""

import os
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO, copy_workflow, data_dir, snakemake
from jsonschema import Draft202012Validator
from labbook import prepare
from labbook.plan import datasets
from PIL import Image

SCHEMA = Draft202012Validator(yaml.safe_load((REPO / "schemas" / "config.schema.yaml").read_text()))


def schema_errors(config: dict) -> list[str]:
    return [error.message for error in SCHEMA.iter_errors(config)]


def with_dataset(dataset: dict) -> dict:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["dataset"] = dataset
    return config


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_are_valid(path):
    config = yaml.safe_load(path.read_text())
    assert schema_errors(config) == []
    datasets.options(config["dataset"])  # the library takes them too


def test_shipped_configs_cover_both_kinds():
    kinds = {yaml.safe_load(p.read_text())["dataset"]["kind"] for p in (REPO / "configs").glob("*.yaml")}
    assert {"cifar10", "imagefolder"} <= kinds


@pytest.mark.parametrize(
    "dataset, complaint",
    [
        ({"name": "c", "kind": "cifar10", "root": "x", "image_size": 32}, "'image_size' was unexpected"),
        ({"name": "i", "kind": "imagefolder"}, "'root' is a required property"),
        ({"name": "i", "kind": "imagefolder", "root": "x", "resize": "stretch"}, "'stretch' is not one of"),
        ({"name": "i", "kind": "imagefolder", "root": "x", "holdout": 1.0}, "1.0 is greater than or equal"),
        (
            {"name": "i", "kind": "imagefolder", "root": "x", "strict": "yes"},
            "'yes' is not of type 'boolean'",
        ),
        ({"name": "m", "kind": "mnist"}, "'mnist' is not one of"),
    ],
)
def test_schema_rejects_bad_dataset_options(dataset, complaint):
    assert any(complaint in message for message in schema_errors(with_dataset(dataset)))


def test_dataset_options_merge_defaults_and_reject_unknown_keys():
    options = datasets.options({"name": "i", "kind": "imagefolder", "root": "photos"})
    assert options == {**datasets.KINDS["imagefolder"].defaults, "root": "photos"}
    with pytest.raises(ValueError, match=r"'imagefolder' needs \['root'\]"):
        datasets.options({"name": "i", "kind": "imagefolder"})
    with pytest.raises(ValueError, match=r"'cifar10' does not take \['holdout'\]"):
        datasets.options({"name": "c", "kind": "cifar10", "holdout": 0.1})


def test_demo_manifest_is_unchanged(tmp_path):
    from labbook import demo

    spec = {"name": "shapes", "kind": "demo", "train_size": 20, "test_size": 10}
    manifest = prepare.prepare(spec, tmp_path)
    assert manifest["source_hash"] == demo.source_hash(20, 10, 0, 32)
    assert manifest["source"] == {
        "kind": "demo",
        "train_size": 20,
        "test_size": 10,
        "seed": 0,
        "image_size": 32,
    }
    assert datasets.fingerprint(spec) != datasets.fingerprint({**spec, "seed": 1})


# ------------------------------------------------------------------ reruns, in a workflow copy
def write_photos(root: Path) -> None:
    for split in ("train", "val"):
        for label, name in enumerate(("ants", "bees")):
            (root / split / name).mkdir(parents=True)
            for i in range(6):
                image = Image.new("RGB", (48 + 4 * i, 40), (40 + 150 * label, 90, 200 - 150 * label))
                image.save(root / split / name / f"{i}.jpg")


PHOTOS = {"name": "photos", "kind": "imagefolder", "root": "photos", "image_size": 16}


def prep_would_run(workdir: Path) -> bool:
    """Whether a dry run of the data step's output plans the data step."""
    result = snakemake(workdir, "-n", str(data_dir(Path(), PHOTOS) / "manifest.json"))
    return "prepare_data" in result.stdout


@pytest.mark.slow
def test_changed_source_files_rerun_data_prep_identical_ones_do_not(tmp_path, monkeypatch):
    # The step runs `python -m labbook.runner`: the Python running the tests, whether or not
    # its venv is activated.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    workdir = copy_workflow(tmp_path / "workflow")
    write_photos(workdir / "photos")
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["dataset"] = PHOTOS
    config["train"]["input_size"] = 32  # CIFARNet takes 32×32 only; these photos are stored smaller
    config["analysis"]["top_k"] = 1  # two classes
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

    manifest = data_dir(workdir, PHOTOS) / "manifest.json"
    snakemake(workdir, str(manifest.relative_to(workdir)))
    assert manifest.exists()
    assert not prep_would_run(workdir)

    image = workdir / "photos/train/ants/0.jpg"
    os.utime(image)  # touched, same bytes
    shutil.copy2(image, workdir / "copy.jpg")
    shutil.copy2(workdir / "copy.jpg", image)  # rewritten with identical bytes
    assert not prep_would_run(workdir)

    Image.new("RGB", (50, 40), (0, 255, 0)).save(image)  # new content
    assert prep_would_run(workdir)
    built = manifest.stat().st_mtime_ns
    snakemake(workdir, str(manifest.relative_to(workdir)))
    assert manifest.stat().st_mtime_ns != built
    assert not prep_would_run(workdir)

    (workdir / "photos/val/bees/5.jpg").unlink()  # a file removed
    assert prep_would_run(workdir)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cifar10.yaml", "imagefolder.yaml"])
def test_shipped_config_plans_the_whole_workflow(tmp_path, name):
    workdir = copy_workflow(tmp_path / "workflow")
    result = snakemake(workdir, "-n", "--configfile", str(REPO / "configs" / name))
    assert "prepare_data" in result.stdout and "report" in result.stdout
