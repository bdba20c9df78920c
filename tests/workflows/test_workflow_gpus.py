"""GPUs of its own per training job in the workflow: the tiny workflow up to training, two jobs at
once on three faked GPUs, one run on two of them (`gpus: 2`), each claiming its own through
labbook.gpus. (The wrapper itself: unit/test_gpus.py.)"""

import re
import subprocess

import pytest
import yaml
from builders import SNAKEMAKE, copy_workflow, tiny_config, venv_environment

FAKE_GPUS = ["fake-gpu-a", "fake-gpu-b", "fake-gpu-c"]


@pytest.mark.slow
def test_workflow_gives_each_training_job_its_own_devices(tmp_path):
    """The tiny workflow up to training, two jobs at once on three faked GPUs, resnet18 asking for two
    (they train on the CPU)."""
    work = copy_workflow(tmp_path / "wf")
    config = tiny_config()
    config["runs"]["resnet18"]["gpus"] = 2
    (work / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    # the rules call `python`: this venv's, also when pytest was started without activating it
    env = {k: v for k, v in venv_environment().items() if k not in ("CUDA_VISIBLE_DEVICES", "PYTHONPATH")}
    env.update(LABBOOK_GPUS=",".join(FAKE_GPUS), LABBOOK_GPU_LOCKS=str(tmp_path / "locks"))
    targets = [
        "results/tiny/runs/cifarnet/seed0/metrics.json",
        "results/tiny/runs/resnet18/seed0/metrics.json",
    ]
    result = subprocess.run(
        [*SNAKEMAKE, *targets, "--cores", "2", "--resources", "gpu=3", "--set-threads", "train=1"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    claimed = {
        run: re.search(
            r"labbook.gpus: CUDA_VISIBLE_DEVICES=(\S+) \(of ",
            (work / "results/tiny/logs/train" / run / "seed0.log").read_text(),
        )
        for run in ("cifarnet", "resnet18")
    }
    assert all(claimed.values()), "a training log does not say which devices it got"
    devices = {run: found.group(1).split(",") for run, found in claimed.items()}
    assert len(devices["cifarnet"]) == 1
    assert len(devices["resnet18"]) == 2 == len(set(devices["resnet18"])), devices
    # both started together once the data were ready: three devices, none shared
    assert sorted(devices["cifarnet"] + devices["resnet18"]) == FAKE_GPUS, devices
