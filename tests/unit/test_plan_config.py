"""The plan's entry point (labbook/plan/config.py), what the workflow decides while it builds the
job graph, testable without Snakemake: it expands sweeps, fills defaults and lists every job;
stops a bad config naming the failing key; has the predict options' defaults; and takes a new
dataset kind that is its module alone."""

import numpy as np
import pytest
from builders import SCHEMA_FILE, tiny_config
from labbook import prepare
from labbook.plan import datasets, files, limits
from labbook.plan.config import load
from labbook.plan.kinds.kind import Kind, Loaded, settings_hash
from snakemake.utils import validate


def schema(config):
    validate(config, str(SCHEMA_FILE))


def test_load_expands_sweeps_fills_defaults_and_lists_every_job():
    config = tiny_config(runs={"a": {"seeds": [0, 1]}, "b": {"sweep": {"lr": [0.1, 0.01]}}})
    schema(config)
    plan = load(config, validate=schema)
    assert plan.jobs == [("a", 0), ("a", 1), ("b-lr0.1", 0), ("b-lr0.01", 0)]
    assert plan.sweeps["b-lr0.01"] == {"run": "b", "values": {"lr": 0.01}}
    assert plan.train_options("b-lr0.01")["lr"] == 0.01 and plan.train_options("a")["lr"] == 0.003
    assert plan.analysis == {"top_k": 3, "calibration_bins": 10, "mistakes": 8}
    assert load(tiny_config(analysis={})).analysis == {"top_k": 3, "calibration_bins": 15, "mistakes": 16}
    records = plan.job_records("r/{run}/s{seed}", "r/{run}/s{seed}/a")
    assert [(r.name, r.seed, r.run_dir) for r in records][1] == ("a", 1, "r/a/s1")
    assert records[2].sweep == {"run": "b", "values": {"lr": 0.1}}
    assert records[0].train_files()["metrics"].as_posix() == f"r/a/s0/{files.RUN['metrics']}"
    claims = {"baseline": "b-lr0.1", "runs": {"a": {"beats": "b-lr0.1"}, "b": {"sweep": {"lr": [0.1, 0.01]}}}}
    records = load(tiny_config(**claims)).job_records("r/{run}/s{seed}", "r/{run}/s{seed}/a")
    assert records[0].beats == {"run": "b-lr0.1", "margin": 0.0}
    assert [r.name for r in records if r.baseline] == ["b-lr0.1"]


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"analysis": {"top_k": 0}}, "analysis option analysis.top_k=0: must be ≥ 1"),
        ({"analysis": {"topk": 3}}, "unknown analysis option 'analysis.topk'"),
        ({"analysis": {"top_k": 11}}, r"^analysis\.top_k: 11 is more than the dataset's 10 classes"),
        ({"train": {"lr": "fast"}}, "training option 'train.lr' must be float"),
        ({"runs": {"a": {"sweep": {"epochs": [0]}}}}, r"runs\.a-epochs0\.epochs=0: must be ≥ 1"),
        ({"dataset": {"name": "d", "kind": "demo", "colour": 1}}, "does not take \\['colour'\\]"),
        ({"dataset": {"name": "d", "kind": "tapes"}}, "dataset kind 'tapes' unknown"),
        ({"baseline": "c"}, r"^baseline: 'c' is not a run of this config \(runs: cifarnet, resnet18\)"),
        ({"runs": {"a": {"beats": "b"}}}, r"^runs\.a\.beats: 'b' is not a run"),
        ({"runs": {"a": {"beats": {"run": "a"}}}}, r"^runs\.a\.beats: a run cannot claim to beat itself"),
        (
            {"dataset": {"kind": "demo", "train_size": 50, "val_size": 50}},
            r"^dataset\.val_size: 50 validation",
        ),
    ],
)
def test_load_stops_a_bad_config_naming_the_key(changes, message):
    with pytest.raises((ValueError, TypeError), match=message):
        load(tiny_config(**changes))


def test_predict_options_have_their_defaults_once_and_name_what_is_missing():
    plan = load(tiny_config(predict={"images": "new"}))
    assert plan.predict_options() == {
        "images": "new",
        "run": "best",
        "top_k": 5,
        "batch_size": 256,
        "device": "auto",
    }
    assert [c["run"] for c in plan.predict_candidates("{run}/{seed}")] == ["cifarnet", "resnet18"]
    with pytest.raises(ValueError, match="needs a predict: block with images"):
        load(tiny_config()).predict_options()
    with pytest.raises(ValueError, match=r"predict\.run: 'nope' is not a run"):
        load(tiny_config(predict={"images": "new", "run": "nope"})).predict_candidates("{run}")
    with pytest.raises(ValueError, match=r"predict option predict\.top_k=0"):
        load(tiny_config(predict={"images": "new", "top_k": 0})).predict_options()


# ---------------------------------------------------------------- a dataset kind is one module
def load_toy(options: dict, threads: int = 1) -> Loaded:
    """The toy kind's loader: a handful of generated images, two classes (dark and light)."""
    side, count = options["image_size"], options["images"]
    labels = np.arange(count) % 2
    images = np.repeat((labels * 200 + 20).astype(np.uint8), side * side * 3).reshape(count, side, side, 3)
    splits = {"train": (images, labels), "test": (images[:4], labels[:4])}
    return Loaded(["dark", "light"], splits, settings_hash(options))


@pytest.fixture
def toy_kind():
    kind = Kind(
        name="toy",
        defaults={"images": 10, "image_size": 8, "val_size": 2, "seed": 0},
        size=lambda o: (o["images"], 4, o["image_size"]),
        fingerprint=lambda o, digests: settings_hash(o),
        loader="test_plan_config:load_toy",
        classes=lambda o: 2,
        prepare_minutes=lambda o, size, threads: 1.5,
        default_name="toy",
    )
    datasets.register(kind)
    yield kind
    del datasets.KINDS["toy"]


def test_a_new_dataset_kind_is_its_module_alone(toy_kind, tmp_path):
    spec = {"name": "toys", "kind": "toy", "images": 12}
    plan = load(tiny_config(dataset=spec, analysis={"top_k": 2}))
    assert plan.dataset_size == (12, 4, 8) and plan.dataset_key.startswith("toys-")
    assert limits.prepare_data(spec, 1)["runtime"] == 15  # 10 start + 2 × 1.5, rounded up to 5
    with pytest.raises(ValueError, match="top_k: 3 is more than the dataset's 2 classes"):
        load(tiny_config(dataset=spec))
    manifest = prepare.prepare(spec, tmp_path)
    assert manifest["classes"] == ["dark", "light"] and manifest["source"]["kind"] == "toy"
    assert manifest["counts"] == {
        "train": {"dark": 5, "light": 5},
        "val": {"dark": 1, "light": 1},
        "test": {"dark": 2, "light": 2},
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(files.DATA.values())
