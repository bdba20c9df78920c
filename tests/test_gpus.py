"""One GPU per job: `python -m labbook.gpus -- COMMAND`, run as real processes on a faked device list."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, SNAKEMAKE, copy_workflow
from labbook import gpus

# A job that records which device it got and when it held it, then sleeps (or crashes).
JOB = """
import os, sys, time
out, seconds = sys.argv[1], float(sys.argv[2])
start = time.time()
time.sleep(seconds)
with open(out, "w") as f:
    f.write(f"{os.environ.get('CUDA_VISIBLE_DEVICES', '<unset>')} {start} {time.time()}")
"""


def wrapper_env(tmp_path, devices):
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    env.update(
        LABBOOK_GPUS=devices,
        LABBOOK_GPU_LOCKS=str(tmp_path / "locks"),
        PYTHONPATH=str(REPO / "scripts"),
    )
    return env


def start_job(tmp_path, env, name, seconds):
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "labbook.gpus",
            "--",
            sys.executable,
            "-c",
            JOB,
            str(tmp_path / name),
            str(seconds),
        ],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )


def read_job(path):
    device, start, end = path.read_text().split()
    return device, float(start), float(end)


def test_concurrent_jobs_never_share_a_device(tmp_path):
    env = wrapper_env(tmp_path, "0,1")
    jobs = [start_job(tmp_path, env, f"job{i}", 1.5) for i in range(4)]
    for job in jobs:
        assert job.wait(timeout=60) == 0, job.stderr.read()
    held = [read_job(tmp_path / f"job{i}") for i in range(4)]
    assert {device for device, _, _ in held} == {"0", "1"}
    for i, (device_a, start_a, end_a) in enumerate(held):
        for device_b, start_b, end_b in held[i + 1 :]:
            overlap = start_a < end_b and start_b < end_a
            assert not (overlap and device_a == device_b), f"two jobs on device {device_a} at once: {held}"
    # four jobs, two devices: two of them had to wait for a device to come free
    assert sum("waiting" in job.stderr.read() for job in jobs) == 2


def test_a_crashed_job_frees_its_device(tmp_path):
    env = wrapper_env(tmp_path, "7")
    holder = start_job(tmp_path, env, "holder", 300)
    time.sleep(1.0)  # the holder has the only device
    waiter = start_job(tmp_path, env, "waiter", 0)
    time.sleep(1.0)
    assert waiter.poll() is None, "the second job ran although the only device was taken"
    holder.send_signal(signal.SIGKILL)  # a crash: no cleanup code runs
    assert waiter.wait(timeout=30) == 0
    assert read_job(tmp_path / "waiter")[0] == "7"
    assert holder.wait() == -signal.SIGKILL


def test_a_device_set_by_slurm_is_kept(tmp_path):
    env = wrapper_env(tmp_path, "0,1")
    env["CUDA_VISIBLE_DEVICES"] = "3"
    assert start_job(tmp_path, env, "job", 0).wait(timeout=30) == 0
    assert read_job(tmp_path / "job")[0] == "3"


def test_no_gpu_leaves_the_job_on_the_cpu(tmp_path):
    env = wrapper_env(tmp_path, "")
    assert start_job(tmp_path, env, "job", 0).wait(timeout=30) == 0
    assert read_job(tmp_path / "job")[0] == "<unset>"


def test_devices_from_nvidia_smi_are_uuids_mig_slices_replace_their_gpu():
    listing = (
        "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-aaaa)\n"
        "GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-bbbb)\n"
        "  MIG 3g.40gb     Device  0: (UUID: MIG-b1)\n"
        "  MIG 3g.40gb     Device  1: (UUID: MIG-b2)\n"
    )
    assert gpus.devices_from_nvidia_smi(listing) == ["GPU-aaaa", "MIG-b1", "MIG-b2"]


@pytest.mark.slow
def test_workflow_gives_each_training_job_its_own_device(tmp_path):
    """The tiny workflow up to training, two jobs at once on two faked GPUs (they train on the CPU)."""
    work = copy_workflow(tmp_path / "wf")
    shutil.copy(REPO / "tests" / "configs" / "tiny.yaml", work / "config.yaml")
    env = wrapper_env(tmp_path, "fake-gpu-a,fake-gpu-b")
    env.pop("PYTHONPATH")
    # the rules call `python`: this venv's, also when pytest was started without activating it
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
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
