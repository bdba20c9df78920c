"""Give a job GPUs of its own, then run it:  python -m labbook.gpus [--count N] -- COMMAND [ARGS...]

Snakemake's `--resources gpu=N` only counts GPUs: it never says *which* ones a job may use, so
two training jobs started at once would both pick device 0. This wrapper claims free devices by
holding an exclusive `flock` on one lock file per device, sets CUDA_VISIBLE_DEVICES to them
(comma-separated, in the listed order) and replaces itself (exec) with COMMAND. The locks live as
long as the open files do, so they are released when COMMAND exits, also when it crashes or is
killed: nothing to clean up.

`--count N` (default 1) claims N distinct devices, all or none: a job never waits while holding
some, so two jobs each holding one of the devices the other wants cannot deadlock. Where fewer
than N are free it lets go of those it got and tries again later (so a job asking for many can
be overtaken by jobs asking for one; Snakemake's `--resources gpu=K` keeps that rare). Asking
for more devices than are listed is an error, not an endless wait.

Which devices: LABBOOK_GPUS ("0,1,2" or UUIDs), else what `nvidia-smi -L` lists, else none, and
then COMMAND runs unchanged (CPU). A CUDA_VISIBLE_DEVICES that is already set (by Slurm, or by
the user) is respected: COMMAND runs unchanged. When not enough devices are free (more jobs than
GPUs, e.g. a run without `--resources gpu=N`) it waits for them to come free.

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

WAIT_SECONDS = 2.0  # between attempts while not enough devices are free
USAGE = "usage: python -m labbook.gpus [--count N] -- COMMAND [ARGS...]"


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


def try_claim(devices: list[str], locks: Path, count: int) -> tuple[list[str], list[int]] | None:
    """`count` free devices and their open lock fds, taken without waiting; None (and nothing
    held) when fewer are free."""
    claimed, fds = [], []
    for device in devices:
        name = locks / f"gpu-{re.sub(r'[^A-Za-z0-9_.-]', '_', device)}.lock"
        fd = os.open(name, os.O_RDONLY | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        claimed.append(device)
        fds.append(fd)
        if len(claimed) == count:
            return claimed, fds
    for fd in fds:  # not enough: hold none, so no one waits on a job that waits itself
        os.close(fd)
    return None


def claim(devices: list[str], locks: Path, count: int = 1) -> tuple[list[str], list[int]]:
    """(devices, open lock fds) for `count` distinct free devices; waits until that many are
    free at once. ValueError when fewer than `count` are listed at all."""
    if count > len(devices):
        raise ValueError(
            f"{count} GPUs asked for, but only {len(devices)} listed: {','.join(devices) or 'none'}"
        )
    told_waiting = False
    while True:
        if got := try_claim(devices, locks, count):
            return got
        if not told_waiting:
            wanted = "all of" if count == 1 else f"{count} free at once among"
            print(f"labbook.gpus: waiting for {wanted} {devices} (in use)", file=sys.stderr, flush=True)
            told_waiting = True
        time.sleep(WAIT_SECONDS)


def parse(argv: list[str]) -> tuple[int, list[str]]:
    """(count, COMMAND) from `[--count N] [--] COMMAND...`."""
    count = "1"
    if argv[:1] == ["--count"]:
        count, argv = (argv[1] if len(argv) > 1 else ""), argv[2:]
    elif argv[:1] and argv[0].startswith("--count="):
        count, argv = argv[0].partition("=")[2], argv[1:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv or not count.isdigit() or int(count) < 1:
        sys.exit(f"{USAGE}\n(--count is a whole number of GPUs, at least 1)")
    return int(count), argv


def main(argv: list[str]) -> None:
    count, argv = parse(argv)
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        given = os.environ["CUDA_VISIBLE_DEVICES"]
        note = f"CUDA_VISIBLE_DEVICES={given!r} already set, kept"
        if len([device for device in given.split(",") if device.strip()]) < count:
            note += f" (fewer than the {count} asked for)"
    elif devices := listed_devices():
        try:
            claimed, fds = claim(devices, lock_dir(), count)
        except ValueError as error:
            where = "LABBOOK_GPUS" if "LABBOOK_GPUS" in os.environ else "nvidia-smi -L"
            sys.exit(f"labbook.gpus: {error} ({where}); ask for fewer (the run's `gpus:`)")
        for fd in fds:
            os.set_inheritable(fd, True)  # the locks must outlive exec: held until COMMAND ends
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(claimed)
        note = f"CUDA_VISIBLE_DEVICES={','.join(claimed)} (of {','.join(devices)})"
    else:
        note = "no GPU listed (LABBOOK_GPUS, nvidia-smi): CUDA_VISIBLE_DEVICES left unset"
    print(f"labbook.gpus: {note}", file=sys.stderr, flush=True)
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main(sys.argv[1:])
