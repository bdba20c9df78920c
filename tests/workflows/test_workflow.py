"""The whole workflow on the tiny config, in a throwaway copy: outputs, reruns, errors."""

import json
import re
import subprocess
import time
from pathlib import Path

import nbformat
import pytest
import torch
import yaml
from builders import SNAKEMAKE, copy_workflow, data_dir, snakemake, tiny_config, venv_environment

pytestmark = pytest.mark.slow

# The tiny config with VGG16 for its torchvision run: the one workflow test that trains VGG16
# (138M parameters, 3.7 GB and 24 s a training job here; the other tests train ResNet18).
TINY = tiny_config()
TINY["runs"]["vgg16"] = {**TINY["runs"].pop("resnet18"), "model": "vgg16"}
# The one output that stands for each job: its mtime tells whether the job ran.
EXPERIMENT = Path("results") / TINY["experiment"]
JOB_OUTPUTS = {
    "prepare_data": data_dir(Path(), TINY["dataset"]) / "manifest.json",
    "train cifarnet": EXPERIMENT / "runs/cifarnet/seed0/metrics.json",
    "train vgg16": EXPERIMENT / "runs/vgg16/seed0/metrics.json",
    "analyze cifarnet": EXPERIMENT / "runs/cifarnet/seed0/analysis/evaluation.json",
    "analyze vgg16": EXPERIMENT / "runs/vgg16/seed0/analysis/evaluation.json",
    "report": EXPERIMENT / "report.html",
}


@pytest.fixture(scope="module")
def workflow(module_folder):
    """A copy of the workflow with TINY (the tiny config, VGG16 for ResNet18), run once to completion."""
    workdir = copy_workflow(module_folder)
    (workdir / "config.yaml").write_text(yaml.safe_dump(TINY, sort_keys=False))
    result = snakemake(workdir)
    return workdir, result


def edit_config(workdir: Path, change) -> None:
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    change(config)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def jobs_that_ran(workdir: Path, change=None) -> set:
    """Apply change, rerun the workflow, and name the jobs whose outputs were rewritten."""
    before = {job: (workdir / path).stat().st_mtime_ns for job, path in JOB_OUTPUTS.items()}
    if change:
        change()
    snakemake(workdir)
    return {job for job, path in JOB_OUTPUTS.items() if (workdir / path).stat().st_mtime_ns != before[job]}


def test_the_workflow_produces_every_output_and_the_report(workflow):
    workdir, result = workflow
    for path in JOB_OUTPUTS.values():
        assert (workdir / path).exists(), path
    assert f"The report: {workdir / EXPERIMENT / 'report.html'}" in result.stdout
    assert f"The lab book: {workdir / 'results' / 'index.html'}" in result.stdout
    for run in ("cifarnet", "vgg16"):
        metrics = json.loads((workdir / EXPERIMENT / f"runs/{run}/seed0/metrics.json").read_text())
        assert metrics["model"] == run and len(metrics["history"]) == metrics["options"]["epochs"]
        assert (workdir / EXPERIMENT / f"logs/train/{run}/seed0.ipynb").exists(), "executed notebook kept"
        assert (workdir / EXPERIMENT / f"benchmarks/train/{run}/seed0.tsv").exists()
        assert list((workdir / EXPERIMENT / f"runs/{run}/seed0/tensorboard").glob("events.*"))
    page = (workdir / EXPERIMENT / "report.html").read_text()
    for heading in ("Objective", "Environment", "Data", "Training", "Results", "Conclusions"):
        assert re.search(rf"<h2[^>]*>{heading}", page), heading
    assert "<script src=" not in page and "data:image/png;base64" in page


def test_rerun_only_what_changed(workflow):
    workdir, _ = workflow
    started = time.perf_counter()
    assert jobs_that_ran(workdir) == set(), "a second run does nothing"
    noop_seconds = time.perf_counter() - started
    print(f"no-op rerun: {noop_seconds:.1f} s")

    def halve_lr(config):
        config["runs"]["cifarnet"]["lr"] = config["train"]["lr"] / 2

    assert jobs_that_ran(workdir, lambda: edit_config(workdir, halve_lr)) == {
        "train cifarnet",
        "analyze cifarnet",
        "report",
    }

    def ask_a_cluster_for_more(config):
        config["runs"]["vgg16"].update(runtime=300, mem_mb=9000)

    # what a job asks a cluster for is no training parameter; the report prints the config
    assert jobs_that_ran(workdir, lambda: edit_config(workdir, ask_a_cluster_for_more)) == {"report"}

    def change_analysis(config):
        config["analysis"]["top_k"] = 2

    assert jobs_that_ran(workdir, lambda: edit_config(workdir, change_analysis)) == {
        "analyze cifarnet",
        "analyze vgg16",
        "report",
    }

    def edit_analysis_notebook():
        path = workdir / "notebooks" / "analyze.ipynb"
        book = nbformat.read(path, 4)
        book.cells.append(nbformat.v4.new_markdown_cell("A note added by a user."))
        nbformat.write(book, path)

    assert jobs_that_ran(workdir, edit_analysis_notebook) == {"analyze cifarnet", "analyze vgg16", "report"}

    def edit_training_code():
        path = workdir / "scripts" / "labbook" / "train.py"
        path.write_text(path.read_text() + "\n# a change to the training code\n")

    assert jobs_that_ran(workdir, edit_training_code) == set(JOB_OUTPUTS) - {"prepare_data"}


def test_a_change_of_cores_reruns_nothing(workflow):
    """Threads follow --cores, but no step's params or outputs do: nothing reruns."""
    workdir, _ = workflow
    before = {job: (workdir / path).stat().st_mtime_ns for job, path in JOB_OUTPUTS.items()}
    for cores in ("1", "3"):
        result = subprocess.run(
            [*SNAKEMAKE, "--cores", cores],
            cwd=workdir,
            env=venv_environment(),
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr
        assert "Nothing to be done" in result.stdout + result.stderr, f"--cores {cores}"
    assert {job: (workdir / path).stat().st_mtime_ns for job, path in JOB_OUTPUTS.items()} == before


def test_a_failing_step_keeps_its_notebook_and_loses_nothing(workflow):
    workdir, _ = workflow
    config_text = (workdir / "config.yaml").read_text()
    before = {job: (workdir / path).stat().st_mtime_ns for job, path in JOB_OUTPUTS.items()}

    # a weights file that is there (the plan checks that before any job) but holds no state_dict:
    # only the train step finds out
    torch.save(torch.zeros(1), workdir / "not-a-state-dict.pt")

    def wrong_weights(config):
        config["runs"]["vgg16"]["weights"] = "not-a-state-dict.pt"

    edit_config(workdir, wrong_weights)
    try:
        result = snakemake(workdir, check=False)
    finally:
        (workdir / "config.yaml").write_text(config_text)
        (workdir / "not-a-state-dict.pt").unlink()
    assert result.returncode != 0
    log = (workdir / EXPERIMENT / "logs/train/vgg16/seed0.log").read_text()
    assert "not-a-state-dict.pt holds a Tensor" in log and f"{EXPERIMENT}/logs/train/vgg16/seed0.ipynb" in log
    executed = nbformat.read(workdir / EXPERIMENT / "logs/train/vgg16/seed0.ipynb", 4)
    errors = [o for c in executed.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors and errors[0]["ename"] == "ValueError"
    for job in ("prepare_data", "train cifarnet", "analyze cifarnet"):
        assert (workdir / JOB_OUTPUTS[job]).stat().st_mtime_ns == before[job], f"{job} untouched"


@pytest.mark.parametrize(
    "change, named",
    [
        (lambda c: c["train"].update(lrr=0.1), "unknown training option 'train.lrr'"),
        (lambda c: c["runs"]["cifarnet"].update(epochs="two"), "epochs"),
        (lambda c: c["dataset"].update(kind="mnist"), "mnist"),
        (lambda c: c["analysis"].update(top_kk=3), "unknown analysis option 'analysis.top_kk'"),
    ],
)
def test_a_bad_config_stops_before_any_job_naming_the_key(tmp_path, change, named):
    workdir = copy_workflow(tmp_path)
    config = tiny_config()
    change(config)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(workdir, check=False)
    assert result.returncode != 0
    assert named in result.stdout + result.stderr
    assert not (workdir / "results").exists(), "no job ran"
