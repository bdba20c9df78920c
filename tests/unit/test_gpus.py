"""One GPU per job (labbook/gpus.py): `python -m labbook.gpus -- COMMAND`, run as real processes on a
faked device list; the lock folder's default place and mode. (The workflow giving each training
job its own device: workflows/test_workflow_gpus.py.)"""

import os
import signal
import stat
import subprocess
import sys
import tempfile
import time

from builders import REPO
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


# ---------------------------------------------------------------- the lock folder
def test_gpu_locks_default_to_a_shared_folder_in_tmp(tmp_path, monkeypatch):
    monkeypatch.delenv("LABBOOK_GPU_LOCKS", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    old_umask = os.umask(0o077)  # even a strict umask leaves it open to every user
    try:
        locks = gpus.lock_dir()
    finally:
        os.umask(old_umask)
    assert locks == tmp_path / "labbook-gpu-locks"
    assert stat.S_IMODE(locks.stat().st_mode) == 0o1777, "sticky and world-writable, like /tmp"
    device, fd = gpus.claim(["GPU-1/2"], locks)
    os.close(fd)
    assert device == "GPU-1/2" and (locks / "gpu-GPU-1_2.lock").exists()


def test_a_configured_lock_folder_is_used_as_given(tmp_path, monkeypatch):
    chosen = tmp_path / "mine" / "locks"
    monkeypatch.setenv("LABBOOK_GPU_LOCKS", str(chosen))
    old_umask = os.umask(0o077)
    try:
        assert gpus.lock_dir() == chosen
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(chosen.stat().st_mode) == 0o700, "the user's own folder keeps their umask"
