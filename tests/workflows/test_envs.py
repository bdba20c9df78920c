"""The per-step conda envs (envs/*.yaml) are complete, pinned to builds conda-forge has, and agree
with the venv's pins where envs/PINS.md says they do.

Static checks, fast: every rule names an env file; channels and pins are explicit; every module a
step's notebook and library code import is declared in that step's env (conda, PyPI and import
names mapped); every pin has its conda-forge evidence row in envs/PINS.md, whose venv column is
what requirements.txt / constraints.txt pin. The envs themselves are built and run by a real conda
in workflows/test_conda.py (over a local channel of PyPI builds, not conda-forge).
"""

import ast
import json
import platform
import re
import sys
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from builders import LIBRARY, REPO
from labbook.plan import code

ENVS = sorted((REPO / "envs").glob("*.yaml"))

# conda-forge package names where PyPI's differ; the rest are the same on both.
CONDA_TO_PYPI = {"pytorch": "torch", "matplotlib-base": "matplotlib", "nbconvert-core": "nbconvert"}
# Modules a declared package brings along by design (its own dependency), not to be declared twice.
COMES_WITH = {
    "IPython": "ipykernel",
    "nbformat": "papermill",
    "jupyter_client": "papermill",
    "scipy": "scikit-learn",
}
# Imports inside these functions are needed only by the steps listed, which call them.
CALLED_ONLY_BY = {
    ("labbook.provenance", "torch_environment"): {"train"},  # provenance.collect(with_torch=True)
    ("labbook.runner", "to_html"): {"report"},  # runner --html
}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# ------------------------------------------------------------------ what the files declare
def rule_blocks() -> dict:
    """{rule name: its text} for every rule in rules/*.smk."""
    blocks = {}
    for smk in sorted((REPO / "rules").glob("*.smk")):
        parts = re.split(r"^rule (\w+):\n", smk.read_text(), flags=re.M)
        for name, body in zip(parts[1::2], parts[2::2], strict=True):
            blocks[name] = re.split(r"^\S", body, maxsplit=1, flags=re.M)[0]  # up to the next top-level line
    return blocks


def rule_env(body: str) -> Path:
    found = re.search(r"^    conda:\n\s+\"([^\"]+)\"", body, flags=re.M)
    assert found, "no conda: directive"
    return (REPO / "rules" / found.group(1)).resolve()


def rule_notebook(body: str) -> Path:
    return REPO / re.search(r"notebook=workflow_path\(\"(notebooks/[^\"]+\.ipynb)\"\)", body).group(1)


def env_dependencies(env_file: Path) -> dict:
    """{conda name: version} from an env file (pins only; the pin check rejects the rest)."""
    spec = yaml.safe_load(env_file.read_text())
    pins = {}
    for dependency in spec["dependencies"]:
        name, _, version = str(dependency).partition("=")
        pins[name] = version.lstrip("=")
    return pins


def pinned_requirements() -> dict:
    """{canonical PyPI name: version} from constraints.txt, then requirements.txt on top."""
    pins = {}
    for source in ("constraints.txt", "requirements.txt"):
        for line in (REPO / source).read_text().splitlines():
            line = line.split("#")[0].strip()
            if "==" in line:
                name, version = line.split("==")
                pins[canonical(name)] = version.strip()
    return pins


# ------------------------------------------------------------------ what the code imports
def notebook_tree(notebook: Path) -> ast.Module:
    cells = json.loads(notebook.read_text())["cells"]
    code = [
        "\n".join(
            line for line in "".join(c["source"]).splitlines() if not line.lstrip().startswith(("%", "!"))
        )
        for c in cells
        if c["cell_type"] == "code"
    ]
    return ast.parse("\n".join(code))


def optional(node, parents) -> bool:
    """An import inside `try: ... except ImportError` has a fallback: the env may lack it."""
    for parent in parents.get(node, ()):
        if isinstance(parent, ast.Try) and any(
            isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError")
            for h in parent.handlers
        ):
            return True
    return False


def imports_of(tree: ast.Module, module: str, step: str) -> set:
    """Dotted names imported by a module (absolute; `from . import x` made labbook.x)."""
    parents = {}  # node -> its enclosing nodes, outermost first
    skipped_functions = {f for (m, f), steps in CALLED_ONLY_BY.items() if m == module and step not in steps}

    def visit(node, chain):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef) and child.name in skipped_functions:
                continue
            parents[child] = chain
            visit(child, (*chain, child))

    visit(tree, ())
    names = set()
    for node in parents:
        if optional(node, parents):
            continue
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: inside the labbook package
                base = "labbook" + (f".{base}" if base else "")
            names.add(base)
            names |= {f"{base}.{alias.name}" for alias in node.names}
    return names


def step_imports(step: str, notebook: Path, shell: str) -> set:
    """Top-level modules outside labbook that a step needs: its notebook, the runner, and every
    labbook module they reach (found as the workflow finds a step's code: labbook.plan.code)."""
    extra = {"labbook.runner", *(["labbook.gpus"] if "on_own_gpu" in shell else [])}
    trees = [("notebook", notebook_tree(notebook))]
    for path in code.step_modules(LIBRARY, notebook, extra):
        parts = path.relative_to(LIBRARY.parent).with_suffix("").parts
        trees.append(
            (".".join(parts[:-1] if parts[-1] == "__init__" else parts), ast.parse(path.read_text()))
        )
    needed = set()
    for module, tree in trees:
        for name in imports_of(tree, module, step):
            top = name.split(".")[0]
            if top in ("labbook", "__future__") or top in sys.stdlib_module_names:
                continue
            needed.add("torch.utils.tensorboard" if name.startswith("torch.utils.tensorboard") else top)
    return needed


# ------------------------------------------------------------------ static checks
STEPS = rule_blocks()


def test_every_rule_runs_in_an_existing_env_file():
    assert STEPS, "no rules found in rules/*.smk"
    for name, body in STEPS.items():
        env = rule_env(body)
        assert env.is_file(), f"rule {name}: conda env {env} does not exist"
        assert env.parent == REPO / "envs"
    assert {rule_env(body) for body in STEPS.values()} == set(ENVS), "an env file no rule uses"


@pytest.mark.parametrize("env_file", ENVS, ids=lambda p: p.name)
def test_env_file_has_explicit_channels_and_exact_pins(env_file):
    spec = yaml.safe_load(env_file.read_text())
    assert spec["channels"] == ["conda-forge", "nodefaults"]
    for dependency in spec["dependencies"]:
        assert isinstance(dependency, str), f"{env_file.name}: {dependency!r} (pip: sections are not allowed)"
        assert re.fullmatch(r"[a-z0-9][a-z0-9_.-]*==?\d[\w.]*", dependency), (
            f"{env_file.name}: {dependency!r} is not pinned to one exact version"
        )


def test_one_python_across_envs():
    versions = {env.name: env_dependencies(env).get("python") for env in ENVS}
    assert len(set(versions.values())) == 1 and None not in versions.values(), versions
    assert next(iter(versions.values())).startswith(f"{sys.version_info.major}.{sys.version_info.minor}.")


def evidence_table() -> dict:
    """{conda name: row} from envs/PINS.md: each pin, the venv's pin, and the conda-forge build."""
    rows = {}
    for line in (REPO / "envs" / "PINS.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 7 and re.fullmatch(r"[0-9a-f]{40}", cells[4]):
            rows[cells[0]] = dict(
                zip(("env", "venv", "feedstock", "commit", "recipe", "matrix"), cells[1:], strict=True)
            )
    return rows


def test_every_env_pin_has_its_conda_forge_build_on_record():
    table = evidence_table()
    used = set()
    for env_file in ENVS:
        for conda_name, version in env_dependencies(env_file).items():
            used.add(conda_name)
            assert conda_name in table, f"{env_file.name}: {conda_name} has no row in envs/PINS.md"
            assert table[conda_name]["env"] == version, (
                f"{env_file.name}: {conda_name}={version}, but envs/PINS.md has evidence for "
                f"{table[conda_name]['env']}"
            )
            assert table[conda_name]["feedstock"].endswith("-feedstock")
            assert table[conda_name]["recipe"].startswith(("recipe/meta.yaml", "recipe/recipe.yaml"))
    assert set(table) == used, f"rows in envs/PINS.md no env file pins: {sorted(set(table) - used)}"


def test_venv_pins_are_the_ones_on_record_next_to_the_env_pins():
    """The venv may run newer PyPI releases than conda-forge has built, but only where PINS.md
    says so: its venv column must be what requirements.txt/constraints.txt really pin."""
    pins = pinned_requirements()
    for conda_name, row in evidence_table().items():
        if conda_name == "python":
            # the venv takes the machine's Python 3.11.x; the conda test needs the exact pin
            assert platform.python_version().startswith(row["venv"] + "."), (
                "the venv's Python is not PINS.md's"
            )
            continue
        pypi = canonical(CONDA_TO_PYPI.get(conda_name, conda_name))
        assert pypi in pins, f"{conda_name} is not pinned in requirements.txt/constraints.txt"
        assert pins[pypi] == row["venv"], (
            f"envs/PINS.md says the venv pins {pypi}=={row['venv']}, but the tests pin {pins[pypi]}"
        )


@pytest.mark.parametrize("step", sorted(STEPS))
def test_env_provides_every_module_the_step_imports(step):
    body = STEPS[step]
    env_file = rule_env(body)
    declared = {canonical(CONDA_TO_PYPI.get(name, name)) for name in env_dependencies(env_file)}
    providers = metadata.packages_distributions()  # import name -> PyPI distributions
    missing = []
    for module in sorted(step_imports(step, rule_notebook(body), body)):
        if module == "torch.utils.tensorboard":
            wanted = {"tensorboard"}  # torch imports it on use: a separate package
        else:
            assert module in providers, f"{step} imports {module}, which no installed package provides"
            wanted = {canonical(d) for d in providers[module]}
        if not (wanted & declared or canonical(COMES_WITH.get(module, "-")) in declared):
            missing.append(f"{module} (PyPI: {', '.join(sorted(wanted))})")
    assert not missing, f"rule {step} imports what {env_file.name} does not declare: {missing}"


def test_the_import_walk_sees_what_it_should():
    """Guards the walker itself: known imports of known steps are found, optional ones are not."""
    train = step_imports("train", rule_notebook(STEPS["train"]), STEPS["train"])
    assert {"torch", "numpy", "papermill", "torch.utils.tensorboard", "tqdm"} <= train
    data = step_imports("prepare_data", rule_notebook(STEPS["prepare_data"]), STEPS["prepare_data"])
    assert "torch" not in data and "torchvision" not in data  # lazy torch, optional torchvision
    assert "PIL" in data  # reached only through the imagefolder kind's named loader
    assert "nbconvert" in step_imports("report", rule_notebook(STEPS["report"]), STEPS["report"])
