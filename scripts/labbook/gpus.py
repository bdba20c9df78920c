"""Give a job a GPU of its own, then run it:  python -m labbook.gpus -- COMMAND [ARGS...]

Snakemake's `--resources gpu=N` only counts GPUs: it never says *which* one a job may use, so
two training jobs started at once would both pick device 0. This wrapper claims a free device by
holding an exclusive `flock` on one lock file per device, sets CUDA_VISIBLE_DEVICES to it and
replaces itself (exec) with COMMAND. The lock lives as long as the open file does, so it is
released when COMMAND exits, also when it crashes or is killed: nothing to clean up.

Which devices: LABBOOK_GPUS ("0,1,2" or UUIDs), else what `nvidia-smi -L` lists, else none, and
then COMMAND runs unchanged (CPU). A CUDA_VISIBLE_DEVICES that is already set (by Slurm, or by
the user) is respected: COMMAND runs unchanged. When every device is taken (more jobs than
GPUs, e.g. a run without `--resources gpu=N`) it waits for one to come free.

Locks are files in LABBOOK_GPU_LOCKS, else <tmp>/labbook-gpu-locks, shared by every workflow on
the machine, so two Snakemake runs side by side do not share a device either.
Only the standard library: it runs in every step's env.
"""

import fcntl
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WAIT_SECONDS = 2.0  # between attempts while every device is taken


def listed_devices() -> list[str]:
    """Device ids for CUDA_VISIBLE_DEVICES: LABBOOK_GPUS, else nvidia-smi's, else []."""
    configured = os.environ.get("LABBOOK_GPUS")
    if configured is not None:
        return [device.strip() for device in configured.split(",") if device.strip()]
    try:
        listing = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return devices_from_nvidia_smi(listing)


def devices_from_nvidia_smi(listing: str) -> list[str]:
    """UUIDs from `nvidia-smi -L`, a GPU's MIG slices instead of the GPU where it has them.

    UUIDs, not indices: nvidia-smi numbers GPUs in PCI order, CUDA by default fastest first,
    so index N may name two different devices; a UUID names one.
    """
    devices = []
    for line in listing.splitlines():
        found = re.search(r"\(UUID: (\S+)\)", line)
        if not found:
            continue
        if line.lstrip().startswith("MIG") and devices and devices[-1].startswith("GPU-"):
            devices.pop()  # the parent GPU is split: hand out its slices instead
        devices.append(found.group(1))
    return devices


def lock_dir() -> Path:
    configured = os.environ.get("LABBOOK_GPU_LOCKS")
    path = Path(configured) if configured else Path(tempfile.gettempdir()) / "labbook-gpu-locks"
    if not path.exists():
        path.mkdir(parents=True, exist_ok=True)
        if not configured:
            path.chmod(0o1777)  # like /tmp: every user of the machine can take a lock in it
    return path


def claim(devices: list[str], locks: Path) -> tuple[str, int]:
    """(device, open lock fd) for the first free device; waits while all are taken."""
    told_waiting = False
    while True:
        for device in devices:
            name = locks / f"gpu-{re.sub(r'[^A-Za-z0-9_.-]', '_', device)}.lock"
            fd = os.open(name, os.O_RDONLY | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            return device, fd
        if not told_waiting:
            print(f"labbook.gpus: all of {devices} are in use; waiting", file=sys.stderr, flush=True)
            told_waiting = True
        time.sleep(WAIT_SECONDS)


def main(argv: list[str]) -> None:
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        sys.exit(__doc__.splitlines()[0])
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        note = f"CUDA_VISIBLE_DEVICES={os.environ['CUDA_VISIBLE_DEVICES']!r} already set, kept"
    elif devices := listed_devices():
        device, fd = claim(devices, lock_dir())
        os.set_inheritable(fd, True)  # the lock must outlive exec: it is held until COMMAND ends
        os.environ["CUDA_VISIBLE_DEVICES"] = device
        note = f"CUDA_VISIBLE_DEVICES={device} (of {','.join(devices)})"
    else:
        note = "no GPU listed (LABBOOK_GPUS, nvidia-smi): CUDA_VISIBLE_DEVICES left unset"
    print(f"labbook.gpus: {note}", file=sys.stderr, flush=True)
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main(sys.argv[1:])
