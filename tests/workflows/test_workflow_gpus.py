"""One GPU per training job in the workflow: the tiny workflow up to training, two jobs at once on
two faked GPUs, each claims its own through labbook.gpus. (The wrapper itself: unit/test_gpus.py.)"""

import re
import shutil
import subprocess

import pytest
from builders import SNAKEMAKE, TINY_CONFIG, copy_workflow, venv_environment


@pytest.mark.slow
def test_workflow_gives_each_training_job_its_own_device(tmp_path):
    """The tiny workflow up to training, two jobs at once on two faked GPUs (they train on the CPU)."""
    work = copy_workflow(tmp_path / "wf")
    shutil.copy(TINY_CONFIG, work / "config.yaml")
    # the rules call `python`: this venv's, also when pytest was started without activating it
    env = {k: v for k, v in venv_environment().items() if k not in ("CUDA_VISIBLE_DEVICES", "PYTHONPATH")}
    env.update(LABBOOK_GPUS="fake-gpu-a,fake-gpu-b", LABBOOK_GPU_LOCKS=str(tmp_path / "locks"))
    targets = ["results/tiny/runs/cifarnet/seed0/metrics.json", "results/tiny/runs/vgg16/seed0/metrics.json"]
    result = subprocess.run(
        [*SNAKEMAKE, *targets, "--cores", "2", "--resources", "gpu=2", "--set-threads", "train=1"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    claimed = [
        re.search(
            r"labbook.gpus: CUDA_VISIBLE_DEVICES=(\S+)",
            (work / "results/tiny/logs/train" / run / "seed0.log").read_text(),
        )
        for run in ("cifarnet", "vgg16")
    ]
    assert all(claimed), "a training log does not say which device it got"
    # both started together once the data were ready: one device each
    assert sorted(m.group(1) for m in claimed) == ["fake-gpu-a", "fake-gpu-b"]
