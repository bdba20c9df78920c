"""`snakemake --use-conda`, the way users run labbook, with a real conda: conda 24.7.1 and
Snakemake's own conda path (env creation from envs/*.yaml, activation in every job,
`--conda-create-envs-only`), over a local channel of PyPI builds repackaged under conda-forge's
names -- not a conda-forge solve (tests/conda/build.py makes both, cached per machine).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from builders import REPO, SNAKEMAKE, TINY_CONFIG, copy_workflow, tiny_config

pytestmark = pytest.mark.slow
ENV_FILES = {p.name: p for p in (REPO / "envs").glob("*.yaml")}
EXPERIMENT = tiny_config()["experiment"]
TIMINGS = {}  # printed at the end: the numbers a CI budget needs


@pytest.fixture(scope="module")
def conda_base() -> Path:
    started = time.time()
    folder = subprocess.run(
        [sys.executable, REPO / "tests" / "conda" / "build.py"], check=True, capture_output=True, text=True
    ).stdout.strip()
    TIMINGS["build or find the conda and its channel"] = round(time.time() - started, 1)
    return Path(folder) / "conda"


@pytest.fixture(scope="module")
def workflow(module_folder, conda_base):
    work = copy_workflow(module_folder / "wf")
    shutil.copy(TINY_CONFIG, work / "config.yaml")
    no_user_kernels = work.parent / "no-user-kernels"  # a kernelspec outside the env must not win
    no_user_kernels.mkdir()
    environment = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "VIRTUAL_ENV", "CUDA_VISIBLE_DEVICES", "JUPYTER_PATH", "CONDARC")
        and not k.startswith("CONDA")
    }
    # Only this conda on PATH; the venv's python is not (Snakemake runs from it by full path).
    environment.update(
        PATH=f"{conda_base / 'bin'}{os.pathsep}/usr/bin:/bin",
        JUPYTER_DATA_DIR=str(no_user_kernels),
        PYTHONNOUSERSITE="1",
        LABBOOK_GPUS="",
    )
    yield work, environment
    print(f"\nreal conda over a local channel of PyPI builds (not conda-forge), seconds: {TIMINGS}")


def snakemake_conda(workflow, *args, check=True, label=None):
    work, environment = workflow
    started = time.time()
    result = subprocess.run(
        [*SNAKEMAKE, "--use-conda", "--cores", "2", *args],
        cwd=work,
        env=environment,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    if label:
        TIMINGS[label] = round(time.time() - started, 1)
    if check and result.returncode != 0:
        logs = "\n".join(p.read_text()[-3000:] for p in (work / "results").rglob("logs/**/*.log"))
        raise AssertionError(
            f"snakemake --use-conda {' '.join(args)} failed (real conda, local channel of PyPI builds):\n"
            f"{result.stdout[-4000:]}\n{result.stderr[-6000:]}\n{logs}"
        )
    return result


def conda_envs(work: Path) -> dict:
    """{env file name: env folder} for the envs Snakemake built under .snakemake/conda/ (it keeps
    a copy of each env file next to its env, <hash>.yaml)."""
    envs = {}
    for copy in (work / ".snakemake" / "conda").glob("*.yaml"):
        name = next(n for n, p in ENV_FILES.items() if p.read_text() == copy.read_text())
        envs[name] = copy.with_suffix("")
    return envs


def env_python(env: Path, code: str) -> subprocess.CompletedProcess:
    return subprocess.run([env / "bin" / "python", "-c", code], capture_output=True, text=True)


def test_real_conda_local_channel_create_envs_only_then_run_creates_nothing_new(workflow):
    """The README's cluster recipe: build the envs first, then run with them."""
    work, _ = workflow
    created = snakemake_conda(workflow, "--conda-create-envs-only", label="create the four envs")
    envs = conda_envs(work)
    assert set(envs) == set(ENV_FILES), f"envs built: {sorted(envs)}, env files: {sorted(ENV_FILES)}"
    assert all((env / "conda-meta" / "history").is_file() for env in envs.values()), "not conda envs"
    assert "Creating conda environment" in created.stderr
    assert not (work / "results").exists(), "--conda-create-envs-only ran a job"
    before = sorted(p.name for p in (work / ".snakemake" / "conda").iterdir())

    run = snakemake_conda(workflow, label="the tiny workflow, every step in its env")
    assert "Creating conda environment" not in run.stderr, run.stderr[-3000:]
    assert sorted(p.name for p in (work / ".snakemake" / "conda").iterdir()) == before
    assert (work / "results" / EXPERIMENT / "report.html").is_file()
    assert (work / "results" / "index.html").is_file()

    again = snakemake_conda(workflow, label="second run")
    assert "Nothing to be done" in again.stdout + again.stderr, again.stderr[-3000:]


def env_pins(env_name: str) -> dict:
    return dict(str(d).split("=", 1) for d in yaml.safe_load(ENV_FILES[env_name].read_text())["dependencies"])


def test_real_conda_local_channel_each_step_ran_in_its_own_env(workflow):
    work, _ = workflow
    envs = conda_envs(work)
    results = work / "results"
    records = {
        "data.yaml": list((results / "data").glob("*/provenance.json")),
        "train.yaml": list((results / EXPERIMENT / "runs").glob("*/seed*/provenance.json")),
        "analysis.yaml": list((results / EXPERIMENT / "runs").glob("*/seed*/analysis/provenance.json")),
        "report.yaml": [results / EXPERIMENT / "report.provenance.json"],
    }
    for env_name, paths in records.items():
        assert paths, f"no provenance for the steps of {env_name}"
        for path in paths:
            record = json.loads(path.read_text())
            prefix = Path(record["python_prefix"].replace("~", str(Path.home()), 1))
            assert prefix == envs[env_name], (
                f"{path.relative_to(work)}: ran in {prefix}, not {envs[env_name]}"
            )
            # The versions it recorded are the env file's pins, not the venv's (envs/PINS.md).
            for package, version in record["packages"].items():
                conda_name = {"torch": "pytorch", "matplotlib": "matplotlib-base"}.get(package, package)
                if conda_name in env_pins(env_name):
                    assert version.split("+")[0] == env_pins(env_name)[conda_name], (path, package, version)


def test_real_conda_local_channel_no_torch_outside_training(workflow):
    work, _ = workflow
    for name, env in conda_envs(work).items():
        found = env_python(env, "import importlib.util as u; print(u.find_spec('torch') is not None)")
        assert found.returncode == 0, found.stderr
        assert found.stdout.strip() == str(name == "train.yaml"), (
            f"torch importable in {name}: {found.stdout}"
        )
        numpy = env_python(env, "import numpy; print(numpy.__version__)")
        assert numpy.stdout.strip() == env_pins(name)["numpy"], f"{name}: numpy {numpy.stdout}"


def test_real_conda_local_channel_a_pin_file_next_to_an_env_file_is_what_conda_installs(workflow):
    """The README's freezing: an explicit list of builds (here from the built env; snakedeploy or
    conda-lock on a machine with conda-forge) next to the env file makes the env, with no solve."""
    work, environment = workflow
    env = conda_envs(work)["data.yaml"]
    explicit = subprocess.run(
        ["conda", "list", "--explicit", "--md5", "--prefix", env],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "@EXPLICIT" in explicit and "/numpy-2.4.6-" in explicit, explicit
    (work / "envs" / "data.linux-64.pin.txt").write_text(explicit)
    result = snakemake_conda(workflow, "--until", "prepare_data", label="run with a pin file")
    assert re.search(r"Using pinnings from \S*envs/data\.linux-64\.pin\.txt", result.stderr), result.stderr[
        -3000:
    ]
    pin_copies = list((work / ".snakemake" / "conda").glob("*.pin.txt"))  # Snakemake keeps a copy
    assert [c.read_text() for c in pin_copies] == [explicit]
    pinned_env = Path(str(pin_copies[0]).removesuffix(".pin.txt"))
    assert pinned_env != env and (pinned_env / "conda-meta").is_dir()
    record = json.loads(next((work / "results" / "data").glob("*/provenance.json")).read_text())
    assert Path(record["python_prefix"].replace("~", str(Path.home()), 1)) == pinned_env


def test_real_conda_local_channel_a_package_missing_from_an_env_file_fails_its_step(workflow):
    """Runs last: edits the workflow copy's analysis env, so its steps rerun in a new env."""
    work, _ = workflow
    env_file = work / "envs" / "analysis.yaml"
    env_file.write_text(re.sub(r"\n\s+- scikit-learn=\S+", "", env_file.read_text()))
    result = snakemake_conda(workflow, "--until", "analyze", check=False, label="missing package run")
    logs = "\n".join(
        p.read_text() for p in (work / "results" / EXPERIMENT / "logs" / "analyze").rglob("*.log")
    )
    assert result.returncode != 0, "analyze ran without scikit-learn in its env"
    assert "No module named 'sklearn'" in logs, logs[-3000:]
