"""The plan's code (labbook/plan/code.py) and what it may import: the plan loads every shipped
config with numpy, torch and the other steps' packages unimportable; the library has no import
cycle and the plan imports no step module; a step's code is what its notebook's imports reach, so
editing a module reruns only the steps that use it."""

import json
import shutil
import subprocess
import sys

import yaml
from builders import LIBRARY, REPO, TINY_CONFIG
from labbook.plan import code

BLOCKED = ("numpy", "torch", "torchvision", "PIL", "sklearn", "matplotlib", "snakemake", "yaml")


def test_the_plan_loads_every_shipped_config_with_numpy_and_torch_unimportable(tmp_path):
    """Snakemake's own Python may have none of the steps' packages: the plan needs none."""
    copies = []
    for path in (REPO / "config.yaml", TINY_CONFIG):  # as JSON: yaml is blocked too
        copies.append(tmp_path / f"{len(copies)}.json")
        copies[-1].write_text(json.dumps(yaml.safe_load(path.read_text())))
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
