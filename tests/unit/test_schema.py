"""The config schema (schemas/config.schema.yaml), the config checks Snakemake runs first: the
shipped configs pass it and cover both dataset kinds; bad dataset options and a missing or unsafe
experiment name are refused, naming what is wrong. (Degenerate values: hostile/test_degenerate_configs.py.)"""

import re

import pytest
import yaml
from builders import REPO, SCHEMA_FILE, schema_errors, tiny_config
from labbook.plan import datasets
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate


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


@pytest.mark.parametrize(
    "change, named",
    [
        (lambda c: c.pop("experiment"), "'experiment' is a required property"),
        (lambda c: c.update(experiment="../elsewhere"), "../elsewhere"),
        (lambda c: c.update(experiment=".hidden"), ".hidden"),
        (lambda c: c.update(experiment="data"), "data"),
        (lambda c: c["runs"]["cifarnet"].update(sweep={"lr": []}), "should be non-empty"),
    ],
)
def test_a_missing_or_unsafe_experiment_name_is_refused(change, named):
    config = tiny_config()
    change(config)
    with pytest.raises(WorkflowError, match=re.escape(named)):
        validate(config, str(SCHEMA_FILE))
