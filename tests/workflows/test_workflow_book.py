"""The book of experiments run by the workflow, in throwaway copies: experiments side by side
sharing their data, sweeps, the lab book page, and the workflow run from another folder, as a
module, and after the project was moved. (The pieces: unit/test_book.py, unit/test_plan_runs.py,
unit/test_plan_datasets.py, unit/test_schema.py.)"""

import hashlib
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from builders import SNAKEMAKE, copy_workflow, snakemake, tiny_config, venv_environment


def micro(experiment: str, **runs) -> dict:
    """The tiny config cut to one epoch of cifarnet (or the runs given), named `experiment`."""
    config = tiny_config(experiment=experiment)
    config["dataset"].update(train_size=200, test_size=100)
    config["train"].update(epochs=1)
    config["runs"] = runs or {"cifarnet": {"seeds": [0], "target_accuracy": 0.1}}
    return config


def job_counts(output: str) -> dict:
    """{rule: jobs} from Snakemake's 'Job stats' table; {} when there was nothing to do."""
    if "Nothing to be done" in output:
        return {}
    table = output.split("Job stats:", 1)[1].split("total", 1)[0]
    return {rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.M) if rule != "all"}


def run(workdir: Path, config: dict, *args) -> dict:
    path = workdir / f"{config['experiment']}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    result = snakemake(workdir, "--configfile", path.name, *args)
    return job_counts(result.stdout + result.stderr)


def file_hashes(folder: Path) -> dict:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file()
    }


@pytest.mark.slow
def test_experiments_side_by_side_shared_data_and_sweeps(tmp_path):
    workdir = copy_workflow(tmp_path / "project")
    first = micro("first")
    assert run(workdir, first) == {"prepare_data": 1, "train": 1, "analyze": 1, "report": 1, "index": 1}
    first_files = file_hashes(workdir / "results" / "first")

    # A second experiment on the same dataset spec: no data step of its own; a 2×2 sweep.
    sweep = {"seeds": [0], "target_accuracy": 0.1, "sweep": {"lr": [0.003, 0.001], "batch_size": [32, 64]}}
    second = micro("second", cnn=sweep)
    assert run(workdir, second) == {"train": 4, "analyze": 4, "report": 1, "index": 1}

    # The first again: nothing to do, and not one of its files changed.
    assert run(workdir, first) == {}
    assert file_hashes(workdir / "results" / "first") == first_files

    # The lab book lists both, newest first, each linking to a report that exists.
    page = (workdir / "results" / "index.html").read_text()
    links = re.findall(r'<a href="([^"]+)">', page)
    assert links == ["second/report.html", "first/report.html"]
    assert all((workdir / "results" / link).is_file() for link in links)
    report = (workdir / "results" / "second" / "report.html").read_text()
    assert "Sweep <code>cnn</code>" in report and "cnn-lr0.001-batch_size64" in report

    # One more value: only the new combinations train, then their analyses, the report, the book.
    sweep["sweep"]["lr"].append(0.0003)
    assert run(workdir, second) == {"train": 2, "analyze": 2, "report": 1, "index": 1}
    assert {p.name for p in (workdir / "results" / "second" / "runs").iterdir()} == {
        f"cnn-lr{lr}-batch_size{bs}" for lr in (0.003, 0.001, 0.0003) for bs in (32, 64)
    }

    # Copied elsewhere (mtimes kept, as `cp -a` does), the project is up to date: moving a
    # project reruns nothing.
    moved = tmp_path / "moved"
    shutil.copytree(workdir, moved, symlinks=True)
    shutil.rmtree(workdir)
    assert run(moved, first, "-n") == {} and run(moved, second, "-n") == {}


@pytest.mark.slow
def test_runs_from_another_directory_and_as_a_module(tmp_path):
    clone = copy_workflow(tmp_path / "clone")
    config = micro("elsewhere")

    # snakemake -s <clone>/Snakefile --directory <empty folder> --configfile <that folder>/my.yaml
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "my.yaml").write_text(yaml.safe_dump(config))
    command = [*SNAKEMAKE, "-s", str(clone / "Snakefile"), "--directory", str(folder)]
    command += ["--configfile", str(folder / "my.yaml"), "--cores", "2"]
    result = subprocess.run(
        command, cwd=tmp_path, env=venv_environment(), capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (folder / "results" / "elsewhere" / "report.html").is_file()
    assert (folder / "results" / "index.html").is_file()
    assert not (clone / "results").exists(), "nothing written beside the workflow"

    # Another workflow using labbook as a module
    host = tmp_path / "host"
    host.mkdir()
    (host / "labbook.yaml").write_text(yaml.safe_dump({**config, "experiment": "as-module"}))
    (host / "Snakefile").write_text(
        f"""configfile: "labbook.yaml"


module labbook:
    snakefile:
        "{clone / "Snakefile"}"
    config:
        config


use rule * from labbook as labbook_*


rule all:
    default_target: True
    input:
        rules.labbook_all.input,
"""
    )
    result = subprocess.run(
        [*SNAKEMAKE, "--cores", "2"],
        cwd=host,
        env=venv_environment(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (host / "results" / "as-module" / "report.html").is_file()
    assert '<a href="as-module/report.html">' in (host / "results" / "index.html").read_text()
