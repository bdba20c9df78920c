"""GPUs of its own per job (labbook/gpus.py): `python -m labbook.gpus [--count N] -- COMMAND`, run as
real processes on a faked device list; the lock folder's default place and mode. (The workflow
giving each training job its own devices: workflows/test_workflow_gpus.py.)"""

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


def start_job(tmp_path, env, name, seconds, count=None):
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "labbook.gpus",
            *(["--count", str(count)] if count is not None else []),
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


# ---------------------------------------------------------------- several devices per job
def overlapping(held):
    """Pairs of jobs (by name) that held their devices at the same time."""
    names = sorted(held)
    return [
        (a, b)
        for i, a in enumerate(names)
        for b in names[i + 1 :]
        if held[a][1] < held[b][2] and held[b][1] < held[a][2]
    ]


def two_jobs_of_two(tmp_path, devices: str):
    """Jobs a and b started together, each asking for 2 of the devices and holding them 1.5 s:
    ({job: what it held, from when, until when}, {job: its stderr})."""
    env = wrapper_env(tmp_path, devices)
    jobs = {name: start_job(tmp_path, env, name, 1.5, count=2) for name in ("a", "b")}
    said = {}
    for name, job in jobs.items():
        assert job.wait(timeout=60) == 0, job.stderr.read()
        said[name] = job.stderr.read()
    return {name: read_job(tmp_path / name) for name in jobs}, said


def test_two_jobs_of_two_on_four_devices_get_disjoint_pairs(tmp_path):
    held, said = two_jobs_of_two(tmp_path, "0,1,2,3")
    pairs = {name: held[name][0].split(",") for name in held}
    assert all(len(pair) == 2 == len(set(pair)) for pair in pairs.values()), pairs
    assert set(pairs["a"]).isdisjoint(pairs["b"]), pairs
    assert sorted(pairs["a"] + pairs["b"]) == ["0", "1", "2", "3"]
    assert overlapping(held) == [("a", "b")], "four devices: both pairs at once, no waiting"
    assert not any("waiting" in text for text in said.values())


def test_a_job_of_two_on_three_devices_while_one_is_held_gets_the_other_two(tmp_path):
    env = wrapper_env(tmp_path, "0,1,2")
    holder = start_job(tmp_path, env, "holder", 3)  # one device, for a while
    time.sleep(1.0)
    pair = start_job(tmp_path, env, "pair", 0, count=2)
    assert pair.wait(timeout=30) == 0
    assert "waiting" not in pair.stderr.read(), "two of three were free: no need to wait"
    assert holder.wait(timeout=30) == 0
    held = {name: read_job(tmp_path / name)[0] for name in ("holder", "pair")}
    assert len(held["pair"].split(",")) == 2
    assert sorted([held["holder"], *held["pair"].split(",")]) == ["0", "1", "2"], held


def test_a_job_of_two_takes_none_until_two_are_free_at_once(tmp_path):
    """All or none: with one of two devices held, a job of two holds nothing while it waits, so a
    job of one started after it still gets the free device (no deadlock of half-claims)."""
    env = wrapper_env(tmp_path, "0,1")
    holder = start_job(tmp_path, env, "holder", 4)
    time.sleep(1.0)
    pair = start_job(tmp_path, env, "pair", 0, count=2)
    time.sleep(1.0)
    assert pair.poll() is None, "the job of two ran with one device held elsewhere"
    single = start_job(tmp_path, env, "single", 0)
    assert single.wait(timeout=10) == 0, "the waiting job of two held the free device"
    assert pair.wait(timeout=60) == 0
    assert holder.wait(timeout=30) == 0
    held = {name: read_job(tmp_path / name) for name in ("holder", "pair", "single")}
    assert {held["holder"][0], held["single"][0]} == {"0", "1"}
    assert sorted(held["pair"][0].split(",")) == ["0", "1"]
    assert held["pair"][1] >= held["holder"][2], "the pair started before the holder let go"
    assert "waiting" in pair.stderr.read()


def test_two_jobs_of_two_on_three_devices_take_turns(tmp_path):
    held, _ = two_jobs_of_two(tmp_path, "0,1,2")
    assert all(len(set(held[name][0].split(","))) == 2 for name in held), held
    assert overlapping(held) == [], f"two pairs on three devices at once: {held}"


def test_more_devices_than_listed_is_an_error_naming_them(tmp_path):
    env = wrapper_env(tmp_path, "0,1")
    job = start_job(tmp_path, env, "job", 0, count=3)
    assert job.wait(timeout=30) != 0
    message = job.stderr.read()
    assert "3 GPUs asked for, but only 2 listed: 0,1" in message and "LABBOOK_GPUS" in message
    assert not (tmp_path / "job").exists()


def test_a_count_with_slurms_devices_keeps_them(tmp_path):
    env = wrapper_env(tmp_path, "0")  # one listed: Slurm's own setting wins, no error
    env["CUDA_VISIBLE_DEVICES"] = "0,1"
    job = start_job(tmp_path, env, "job", 0, count=2)
    assert job.wait(timeout=30) == 0
    assert read_job(tmp_path / "job")[0] == "0,1"
    assert "CUDA_VISIBLE_DEVICES='0,1' already set, kept\n" in job.stderr.read()
    env["CUDA_VISIBLE_DEVICES"] = "0"
    job = start_job(tmp_path, env, "job", 0, count=2)
    assert job.wait(timeout=30) == 0
    assert "already set, kept (fewer than the 2 asked for)" in job.stderr.read()


def test_a_count_without_a_gpu_leaves_the_job_on_the_cpu(tmp_path):
    env = wrapper_env(tmp_path, "")
    assert start_job(tmp_path, env, "job", 0, count=2).wait(timeout=30) == 0
    assert read_job(tmp_path / "job")[0] == "<unset>"


def test_a_bad_count_is_a_usage_error(tmp_path):
    env = wrapper_env(tmp_path, "0")
    for count in ("0", "two", ""):
        job = start_job(tmp_path, env, "job", 0, count=count)
        assert job.wait(timeout=30) != 0 and "--count" in job.stderr.read()
    assert not (tmp_path / "job").exists()


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
    claimed, fds = gpus.claim(["GPU-1/2"], locks)
    for fd in fds:
        os.close(fd)
    assert claimed == ["GPU-1/2"] and (locks / "gpu-GPU-1_2.lock").exists()


def test_a_configured_lock_folder_is_used_as_given(tmp_path, monkeypatch):
    chosen = tmp_path / "mine" / "locks"
    monkeypatch.setenv("LABBOOK_GPU_LOCKS", str(chosen))
    old_umask = os.umask(0o077)
    try:
        assert gpus.lock_dir() == chosen
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(chosen.stat().st_mode) == 0o700, "the user's own folder keeps their umask"
