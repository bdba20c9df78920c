"""One of a run's training processes, as torchrun starts them (distributed.launch):

    python -m labbook.worker JOB.json

It joins the process group torchrun set up (NCCL on GPUs, gloo on a CPU), takes the GPU of its
LOCAL_RANK, trains the job's run (train.train, which shards each batch) and leaves the group.
Only rank 0 logs.
"""

import json
import os
import sys
from pathlib import Path


def main(argv: list[str]) -> None:
    """One worker: join the process group torchrun set up, train, leave it."""
    import torch
    import torch.distributed as dist

    from . import train
    from .plan.options import TrainOptions

    job = json.loads(Path(argv[0]).read_text())
    opts = TrainOptions.from_dict(job["options"])
    on_gpus = torch.cuda.is_available() and opts.device != "cpu"
    if on_gpus:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group("nccl" if on_gpus else "gloo")
    say = print if dist.get_rank() == 0 else lambda *args, **kwargs: None  # one log: rank 0's
    try:
        train.train(
            opts, job["data_dir"], job["out_dir"], job["seed"], job["threads"], job["checkpoint_path"], say
        )
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1:])
