"""Shared fixtures: a small demo dataset, and throwaway copies of the workflow to run."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
# What a copy of the workflow needs; results/, logs/ and .snakemake/ stay behind.
WORKFLOW_FILES = ("Snakefile", "config.yaml", "rules", "envs", "notebooks", "schemas", "scripts", "profiles")


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory):
    """A small demo cache (1000 train, 200 test images), built once per test session."""
    from labbook import prepare

    out = tmp_path_factory.mktemp("demo-data")
    prepare.prepare({"name": "shapes", "kind": "demo", "train_size": 1000, "test_size": 200}, out)
    return out


@pytest.fixture(scope="session")
def demo_report(demo_data, tmp_path_factory):
    """report.html built from fabricated runs by the real analyze and report notebooks (see
    report_demo.py), once per test session."""
    import report_demo

    return report_demo.build(demo_data, tmp_path_factory.mktemp("report"))


def data_dir(workdir: Path, dataset: dict) -> Path:
    """Where the workflow keeps the prepared data of a dataset spec."""
    from labbook.plan import datasets

    return workdir / "results" / "data" / datasets.key(dataset)


def copy_workflow(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, dest / name)
    return dest


def venv_environment() -> dict:
    """The environment with this interpreter's bin/ first: rules call `python` from PATH."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def snakemake(workdir: Path, *args, check=True, timeout=900) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [*SNAKEMAKE, "--cores", "2", *args],
        cwd=workdir,
        env=venv_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result
