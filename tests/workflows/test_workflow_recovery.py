"""Recovery of a finished workflow (the tiny config, one run, one epoch) in a throwaway copy:
deleting any output a user relies on plans the job that writes it, deleted they are made again,
and a truncated data file fails the training naming the file and what to do, which done gives
back a trained model."""

import re
from pathlib import Path

import pytest
import yaml
from builders import copy_workflow, data_dir, snakemake, tiny_config

pytestmark = pytest.mark.slow


def one_run_config() -> dict:
    config = tiny_config(train__epochs=1)
    config["runs"] = {"cifarnet": config["runs"]["cifarnet"]}
    return config


CONFIG = one_run_config()
RUN = Path("results") / CONFIG["experiment"] / "runs" / "cifarnet" / "seed0"
DATA = data_dir(Path(), CONFIG["dataset"])
OUTPUTS = {
    "predictions": RUN / "predictions.npz",
    "evaluation": RUN / "analysis" / "evaluation.json",
    "train data": DATA / "train_images.npy",
    "book entry": Path("results") / CONFIG["experiment"] / "book.json",
    "portable model": RUN / "model.pt2",  # what predict and a receiver of the model use
}
TRAIN_LOG = Path("results") / CONFIG["experiment"] / "logs" / "train" / "cifarnet" / "seed0.log"


@pytest.fixture(scope="module")
def workflow(module_folder):
    """A copy of the workflow, run once to completion."""
    workdir = copy_workflow(module_folder)
    (workdir / "config.yaml").write_text(yaml.safe_dump(CONFIG, sort_keys=False))
    snakemake(workdir)
    return workdir


@pytest.mark.parametrize("output", OUTPUTS)
def test_a_deleted_output_is_planned_again(workflow, output):
    """Each output alone: its deletion makes Snakemake plan the job that writes it (a dry run;
    the next test runs them). Put back as it was, nothing is left to do."""
    path = workflow / OUTPUTS[output]
    aside = path.with_name(path.name + ".aside")
    path.rename(aside)
    try:
        planned = snakemake(workflow, "-n", check=False)
    finally:
        aside.rename(path)
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert re.search(
        rf"reason: Missing output files: .*\b{re.escape(str(OUTPUTS[output]))}\b", planned.stdout
    ), planned.stdout
    again = snakemake(workflow, "-n", check=False)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr, again.stdout


def test_every_deleted_output_is_made_again(workflow):
    for path in OUTPUTS.values():
        (workflow / path).unlink()
    result = snakemake(workflow, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    missing = [str(path) for path in OUTPUTS.values() if not (workflow / path).is_file()]
    assert not missing, f"{missing} not made again:\n{result.stdout}\n{result.stderr}"
    again = snakemake(workflow, "-n", check=False)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr, again.stdout


def test_a_truncated_train_split_fails_the_training_saying_to_delete_it_and_that_recovers(workflow):
    data = workflow / OUTPUTS["train data"]
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    result = snakemake(workflow, check=False)
    assert result.returncode != 0, result.stdout + result.stderr
    log = (workflow / TRAIN_LOG).read_text()
    assert f"{OUTPUTS['train data']} is damaged or truncated" in log, log[-3000:]
    assert "delete it and rerun" in log, log[-3000:]

    data.unlink()  # what the message says to do
    snakemake(workflow)
    model = workflow / RUN / "model.pt"
    assert model.is_file()
    import torch

    assert torch.load(model, weights_only=True), "a trained state_dict"
    assert (workflow / OUTPUTS["train data"]).is_file()
