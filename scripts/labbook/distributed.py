"""Several processes for one run (`gpus: N`): `torchrun --standalone` starts N workers on this
machine, each on a GPU of its own (NCCL; on a machine without GPUs, on the CPU with gloo), and
PyTorch's DistributedDataParallel averages their gradients after every step.

    python -m labbook.worker JOB.json      # one worker (worker.py); torchrun starts N (launch)

The run stays one run: every worker draws the same seeded order and augmentation of each whole
batch and trains on its contiguous shard of it (batches.shard), so the global batch is the run's
`batch_size`, and each worker's loss is weighted by its shard's share of the batch: the averaged
gradient is the whole batch's, as in one process. Batch normalization is synchronized across the
GPUs (SyncBatchNorm: the statistics of the whole batch); with dropout the masks differ from one
process's. Every worker evaluates val in full, so all make the same choices (best epoch, patience)
without talking; only rank 0 writes checkpoints, metrics, TensorBoard and the export.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

from .atomic import atomic_write
from .plan import files

JOB = "workers.json"  # what the workers are to do, in the run's folder while they run


def active() -> bool:
    """Is this process one of several workers of a run (a process group is up)?"""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def rank_and_world() -> tuple[int, int]:
    """(this worker's rank, how many workers); (0, 1) in a run of one process."""
    import torch.distributed as dist

    return (dist.get_rank(), dist.get_world_size()) if active() else (0, 1)


def total(tensor):
    """The tensor summed over every worker (in place); itself in a run of one process."""
    import torch.distributed as dist

    if active():
        dist.all_reduce(tensor)
    return tensor


def replicate(model, device):
    """What the training steps of this worker call: the model itself in one process; else
    DistributedDataParallel's replica of it, with batch norm synchronized on GPUs (the model's
    own parameters and buffers: training it trains the model)."""
    import torch
    from torch.nn.modules.batchnorm import _BatchNorm
    from torch.nn.parallel import DistributedDataParallel

    if not active():
        return model
    if device.type == "cuda":  # SyncBatchNorm runs on GPUs only; swapped back by plain_batch_norm
        kinds = {name: type(m) for name, m in model.named_modules() if isinstance(m, _BatchNorm)}
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        for name, module in model.named_modules():
            if name in kinds:
                module.plain_kind = kinds[name]
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def plain_batch_norm(module):
    """The module with every SyncBatchNorm replaced by the batch norm it came from (replicate),
    holding the same parameters and statistics: what is saved and exported needs no process group."""
    import torch

    for name, child in module.named_children():
        if isinstance(child, torch.nn.SyncBatchNorm):
            plain = getattr(child, "plain_kind", torch.nn.BatchNorm2d)(
                child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats
            )
            plain.weight, plain.bias = child.weight, child.bias
            plain.running_mean, plain.running_var = child.running_mean, child.running_var
            plain.num_batches_tracked = child.num_batches_tracked
            plain.train(child.training)
            setattr(module, name, plain)
        else:
            plain_batch_norm(child)
    return module


def launch(opts, data_dir, out_dir, seed: int, threads: int, checkpoint_path, log=print) -> dict:
    """Train with opts.gpus workers under `torchrun --standalone`; their output into log; the
    metrics rank 0 wrote. A worker that fails fails the run, naming the exit status."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    job = {
        "options": opts.to_dict(),
        "data_dir": str(data_dir),
        "out_dir": str(out_dir),
        "seed": seed,
        "threads": threads,
        "checkpoint_path": str(checkpoint_path) if checkpoint_path else None,
    }
    job_path = out_dir / JOB
    text = json.dumps(job, indent=2).encode()
    atomic_write(job_path, lambda f: f.write(text))
    library = str(Path(__file__).resolve().parents[1])
    cpus = threads or os.cpu_count() or 1
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (library, os.environ.get("PYTHONPATH")) if p),
        "OMP_NUM_THREADS": str(max(1, cpus // opts.gpus)),  # torchrun's default would be 1
    }
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += [f"--nproc-per-node={opts.gpus}", "-m", "labbook.worker", str(job_path)]
    log(f"training with {opts.gpus} processes: {' '.join(command[2:])}")
    try:
        with subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment
        ) as workers:
            for line in workers.stdout:
                log(line.rstrip("\n"))
        if workers.returncode:
            raise RuntimeError(
                f"training with {opts.gpus} processes failed: torchrun exited with status "
                f"{workers.returncode}; the workers' output is above"
            )
    finally:
        job_path.unlink(missing_ok=True)
    return json.loads((out_dir / files.RUN["metrics"]).read_text())
