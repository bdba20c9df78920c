"""One run trained by 1 process and by N (`gpus: N`: torchrun workers; gloo on a CPU), side by
side on the same data: wall seconds, images/s, and how far their numbers are apart.

    python bench/processes.py                   # demo data, CIFARNet, 2 processes
    python bench/processes.py --processes 4 --train-size 20000 --epochs 3

On a GPU machine each worker gets a GPU of its own (set CUDA_VISIBLE_DEVICES to N devices); on a
CPU the workers share its cores, so they gain little there: the point of running it on a CPU is
that the numbers agree. They agree to float rounding, which training can amplify: with SGD (the
default) a few 1e-5 after 2 epochs; with Adam at the start of training (loss near log 10, where
the network leaves a saddle) the first step is identical and the difference grows tenfold every
few steps, to a few percent by step 40, as between two GPU runs with nondeterministic kernels.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

from labbook import prepare, train


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--train-size", type=int, default=5000, help="demo images generated for training")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--model", default="cifarnet")
    parser.add_argument("--optimizer", default="sgd")
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument(
        "--threads", type=int, default=0, help="CPU threads of the job, shared by its processes"
    )
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="labbook-processes-"))
    spec = {
        "name": "shapes",
        "kind": "demo",
        "train_size": args.train_size,
        "val_size": 500,
        "test_size": 1000,
    }
    prepare.prepare(spec, folder / "data")
    runs = {}
    for processes in (1, args.processes):
        opts = train.TrainOptions(
            model=args.model,
            optimizer=args.optimizer,
            lr=args.lr,
            epochs=args.epochs,
            batch_size=args.batch_size,
            gpus=processes,
        )
        started = time.perf_counter()
        metrics = train.train(
            opts, folder / "data", folder / f"p{processes}", threads=args.threads, log=lambda *_: None
        )
        runs[processes] = {
            "wall_s": time.perf_counter() - started,
            "images_per_s": metrics["images_per_s"],
            "device": metrics["device"],
            "val_loss": [r["val_loss"] for r in metrics["history"]],
            "test_acc": metrics["test_acc"],
        }
    one, many = runs[1], runs[args.processes]
    apart = max(abs(a - b) / abs(a) for a, b in zip(one["val_loss"], many["val_loss"], strict=True))
    print(json.dumps(runs, indent=2))
    print(
        f"{args.processes} processes / 1 on {one['device']}: images/s {many['images_per_s'] / one['images_per_s']:.2f}×, "
        f"wall {many['wall_s'] / one['wall_s']:.2f}× (with torchrun's start); val loss apart by at most "
        f"{apart:.1e} (relative), test accuracy {one['test_acc']:.4f} and {many['test_acc']:.4f}"
    )


if __name__ == "__main__":
    main()
