"""The plan (scripts/labbook/plan/): what the workflow decides while it builds the job graph,
standard library only, testable without Snakemake; its one entry point names the failing key."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import yaml
from conftest import REPO
from labbook import prepare
from labbook.plan import code, datasets, files, limits, options
from labbook.plan.config import load
from labbook.plan.kinds.kind import Kind, Loaded, settings_hash
from snakemake.utils import validate

LIBRARY = REPO / "scripts" / "labbook"
SCHEMA = str(REPO / "schemas" / "config.schema.yaml")
TINY = yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())


def tiny(**changes) -> dict:
    config = json.loads(json.dumps(TINY))
    config.update(changes)
    return config


def schema(config):
    validate(config, SCHEMA)


# ---------------------------------------------------------------- the layer
BLOCKED = ("numpy", "torch", "torchvision", "PIL", "sklearn", "matplotlib", "snakemake", "yaml")


def test_the_plan_loads_every_shipped_config_with_numpy_and_torch_unimportable(tmp_path):
    """Snakemake's own Python may have none of the steps' packages: the plan needs none."""
    copies = []
    for name in ("config.yaml", "tests/configs/tiny.yaml"):  # as JSON: yaml is blocked too
        copies.append(tmp_path / f"{len(copies)}.json")
        copies[-1].write_text(json.dumps(yaml.safe_load((REPO / name).read_text())))
    script = f"""
import importlib, json, pkgutil, sys
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ImportError(f"{{name}} is not importable here")
sys.meta_path.insert(0, Refuse())
sys.path.insert(0, {str(LIBRARY.parent)!r})
import labbook.plan
for module in pkgutil.walk_packages(labbook.plan.__path__, "labbook.plan."):
    importlib.import_module(module.name)
from labbook.plan.config import load
for path in {[str(c) for c in copies]!r}:
    plan = load(json.loads(open(path).read()))
    print(plan.dataset_key, len(plan.jobs), plan.limits("train", 4, plan.jobs[0][0])["runtime"])
"""
    result = subprocess.run(
        [sys.executable, "-I", "-c", script], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith("shapes-") and lines[0].split()[1] == "2", lines


def test_no_import_cycle_in_the_library_and_no_import_from_the_plan_to_a_step():
    """The command anyone can run: python -m labbook.plan.code (exit 0, 'none' twice)."""
    graph = code.import_graph(LIBRARY)
    assert "labbook.train" in graph and "labbook.plan.options" in graph["labbook.train"]
    assert code.cycles(graph) == []
    plan = {m: imports for m, imports in graph.items() if m.startswith("labbook.plan")}
    assert len(plan) >= 10
    assert all(i.startswith("labbook.plan") for imports in plan.values() for i in imports), plan
    result = subprocess.run(
        [sys.executable, "-m", "labbook.plan.code"], capture_output=True, text=True, cwd=LIBRARY.parent
    )
    assert result.returncode == 0 and "import cycles: none" in result.stdout, result.stdout


def test_cycles_finds_each_cycle_once_also_one_through_a_lazy_import():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}, "f": {"g"}, "g": {"f"}}
    assert code.cycles(graph) == [["a", "b", "c"], ["f", "g"]]
    tree = code.ast.parse("def f():\n    from . import train\n")
    assert "labbook.train" in code._imports(tree, "labbook.options", False)


# ---------------------------------------------------------------- each step's code
def hashes(library):
    notebooks = REPO / "notebooks"
    return {
        step: code.code_hash(library, notebooks / f"{step}.ipynb") for step in ("train", "analyze", "index")
    }


def test_a_steps_code_is_found_from_its_imports_and_editing_a_module_reruns_its_users_only(tmp_path):
    train = {
        p.relative_to(LIBRARY).as_posix() for p in code.step_modules(LIBRARY, REPO / "notebooks/train.ipynb")
    }
    # what the hand-written lists missed: train reads the arrays (arrays.py) and decodes as imagefolder.py
    assert {"train.py", "models.py", "export.py", "plan/options.py", "arrays.py", "imagefolder.py"} <= train
    data = {
        p.relative_to(LIBRARY).as_posix()
        for p in code.step_modules(LIBRARY, REPO / "notebooks/prepare_data.ipynb")
    }
    assert {"demo.py", "cifar10.py", "imagefolder.py"} <= data  # the kinds' loaders, named by a string
    analyze = {
        p.relative_to(LIBRARY).as_posix()
        for p in code.step_modules(LIBRARY, REPO / "notebooks/analyze.ipynb")
    }
    assert "metrics.py" in analyze and not {"train.py", "models.py", "export.py"} & analyze  # no torch
    assert not {"prepare.py", "cifar10.py", "imagefolder.py"} & analyze  # its standalone data: demo.py
    copy = tmp_path / "labbook"
    shutil.copytree(LIBRARY, copy)
    before = hashes(copy)
    (copy / "metrics.py").write_text((copy / "metrics.py").read_text() + "\n# edited\n")
    after = hashes(copy)
    assert after["analyze"] != before["analyze"]
    assert after["train"] == before["train"] and after["index"] == before["index"]
    (copy / "train.py").write_text((copy / "train.py").read_text() + "\n# edited\n")
    assert hashes(copy)["train"] != after["train"]


# ---------------------------------------------------------------- the entry point
def test_load_expands_sweeps_fills_defaults_and_lists_every_job():
    config = tiny(runs={"a": {"seeds": [0, 1]}, "b": {"sweep": {"lr": [0.1, 0.01]}}})
    schema(config)
    plan = load(config, validate=schema)
    assert plan.jobs == [("a", 0), ("a", 1), ("b-lr0.1", 0), ("b-lr0.01", 0)]
    assert plan.sweeps["b-lr0.01"] == {"run": "b", "values": {"lr": 0.01}}
    assert plan.train_options("b-lr0.01")["lr"] == 0.01 and plan.train_options("a")["lr"] == 0.003
    assert plan.analysis == {"top_k": 3, "calibration_bins": 10, "mistakes": 8}
    assert load(tiny(analysis={})).analysis == {"top_k": 3, "calibration_bins": 15, "mistakes": 16}
    records = plan.job_records("r/{run}/s{seed}", "r/{run}/s{seed}/a")
    assert [(r.name, r.seed, r.run_dir) for r in records][1] == ("a", 1, "r/a/s1")
    assert records[2].sweep == {"run": "b", "values": {"lr": 0.1}}
    assert records[0].train_files()["metrics"].as_posix() == f"r/a/s0/{files.RUN['metrics']}"


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
    ],
)
def test_load_stops_a_bad_config_naming_the_key(changes, message):
    with pytest.raises((ValueError, TypeError), match=message):
        load(tiny(**changes))


def test_predict_options_have_their_defaults_once_and_name_what_is_missing():
    plan = load(tiny(predict={"images": "new"}))
    assert plan.predict_options() == {
        "images": "new",
        "run": "best",
        "top_k": 5,
        "batch_size": 256,
        "device": "auto",
    }
    assert [c["run"] for c in plan.predict_candidates("{run}/{seed}")] == ["cifarnet", "vgg16"]
    with pytest.raises(ValueError, match="needs a predict: block with images"):
        load(tiny()).predict_options()
    with pytest.raises(ValueError, match=r"predict\.run: 'nope' is not a run"):
        load(tiny(predict={"images": "new", "run": "nope"})).predict_candidates("{run}")
    with pytest.raises(ValueError, match=r"predict option predict\.top_k=0"):
        load(tiny(predict={"images": "new", "top_k": 0})).predict_options()


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
        defaults={"images": 10, "image_size": 8},
        size=lambda o: (o["images"], 4, o["image_size"]),
        fingerprint=lambda o, digests: settings_hash(o),
        loader="test_plan:load_toy",
        classes=lambda o: 2,
        prepare_minutes=lambda o, size, threads: 1.5,
        default_name="toy",
    )
    datasets.register(kind)
    yield kind
    del datasets.KINDS["toy"]


def test_a_new_dataset_kind_is_its_module_alone(toy_kind, tmp_path):
    spec = {"name": "toys", "kind": "toy", "images": 12}
    plan = load(tiny(dataset=spec, analysis={"top_k": 2}))
    assert plan.dataset_size == (12, 4, 8) and plan.dataset_key.startswith("toys-")
    assert limits.prepare_data(spec, 1)["runtime"] == 15  # 10 start + 2 × 1.5, rounded up to 5
    with pytest.raises(ValueError, match="top_k: 3 is more than the dataset's 2 classes"):
        load(tiny(dataset=spec))
    manifest = prepare.prepare(spec, tmp_path)
    assert manifest["classes"] == ["dark", "light"] and manifest["source"]["kind"] == "toy"
    assert manifest["counts"] == {"train": {"dark": 6, "light": 6}, "test": {"dark": 2, "light": 2}}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(files.DATA.values())


@pytest.mark.parametrize("kind", [options.AnalysisOptions, options.PredictOptions])
def test_the_readme_lists_each_kind_of_options_from_its_one_definition(kind):
    """Like the training options' table (test_train.py): generated, so docs cannot drift."""
    assert options.options_table(kind) in (REPO / "README.md").read_text()
