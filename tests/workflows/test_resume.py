"""A training process killed mid-run resumes, on the workflow's rerun, to the uninterrupted result."""

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest
import torch
import yaml
from builders import (
    SNAKEMAKE,
    copy_workflow,
    data_dir,
    snakemake,
    tiny_config,
    venv_environment,
    weights_hash,
    without_timings,
)
from labbook import train

pytestmark = pytest.mark.slow
EPOCHS = 6
RUN_DIR = Path("results/tiny/runs/cifarnet/seed0")


def kill_training_after_epoch(workdir, target, epoch: int) -> int:
    """Start the workflow, SIGKILL the kernel that trains once `epoch` is checkpointed;
    return the epoch the checkpoint held when the process died."""
    checkpoint = workdir / RUN_DIR / "checkpoint.pt"
    workflow = subprocess.Popen(
        [*SNAKEMAKE, "--cores", "2", target],
        cwd=workdir,
        env=venv_environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline:
            if checkpoint.exists() and torch.load(checkpoint, weights_only=True)["epoch"] >= epoch:
                kernels = [
                    p
                    for p in psutil.Process(workflow.pid).children(recursive=True)
                    if "ipykernel" in " ".join(p.cmdline())
                ]
                assert kernels, "the training kernel is running"
                for kernel in kernels:
                    kernel.send_signal(signal.SIGKILL)
                break
            assert workflow.poll() is None, "the workflow ended before it could be interrupted"
            time.sleep(0.05)
        assert workflow.wait(timeout=120) != 0, "the interrupted workflow reports the failure"
    finally:
        if workflow.poll() is None:
            workflow.kill()
    return torch.load(checkpoint, weights_only=True)["epoch"]


def test_sigkilled_training_resumes_to_the_same_metrics_and_weights(tmp_path):
    workdir = copy_workflow(tmp_path / "workflow")
    config = tiny_config()
    config["dataset"].update(train_size=1000, test_size=200)
    config["train"].update(epochs=EPOCHS, batch_size=64, deterministic=True, device="cpu")
    config["runs"] = {"cifarnet": {"seeds": [0]}}
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    target = str(RUN_DIR / "metrics.json")

    killed_at = kill_training_after_epoch(workdir, target, epoch=2)
    assert 2 <= killed_at < EPOCHS, "killed mid-run"
    assert not (workdir / target).exists()

    snakemake(workdir, target)
    resumed = json.loads((workdir / target).read_text())
    assert resumed["resumed_after_epoch"] >= killed_at
    assert "resuming from" in (workdir / "results/tiny/logs/train/cifarnet/seed0.log").read_text()

    # The same job uninterrupted, with the options and thread count the workflow used.
    reference_dir = tmp_path / "uninterrupted"
    options = {**config["train"]}
    uninterrupted = train.train(
        train.TrainOptions.from_dict(options),
        data_dir(workdir, config["dataset"]),
        reference_dir,
        seed=0,
        threads=2,
        log=lambda *_: None,
    )
    assert without_timings(resumed) == without_timings(uninterrupted)
    assert weights_hash(workdir / RUN_DIR / "model.pt") == weights_hash(reference_dir / "model.pt")
    shutil.rmtree(reference_dir)
