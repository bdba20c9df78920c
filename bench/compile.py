"""What `compile: true` buys: training images/s with and without torch.compile, side by side in
one process, on the same images from the same seed, per model; and what compiling costs (the
seconds of the first step, which compiles, against a plain first step).

    python bench/compile.py                               # CIFARNet and ResNet18, 512 demo images at 32 px
    python bench/compile.py --models resnet18 --images 2048 --batch-size 128 --device cuda

Each loop is labbook's training step (train.TrainState's network: torch.compile's wrapper with
`compile`, train.train_step, DeviceData's augmentation). After its first step and one untimed
epoch (the last, smaller batch of an epoch compiles once more), `--rounds` rounds time one epoch
of every loop in turn; each loop keeps its best. Prints images/s and the ratio compiled / plain.
"""

import argparse
import math
import time

import torch
from labbook import arrays, batches, demo, train


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def loop(model_name: str, compiled: bool, images, labels, device, batch_size: int, seed: int = 0):
    """(seconds of the first step, a function running one epoch) of one model, compiled or not."""
    opts = train.TrainOptions(model=model_name, optimizer="adam", lr=1e-3, batch_size=batch_size, precision="fp32",
                              compile=compiled, device=str(device))  # fmt: skip
    mean, std = arrays.channel_stats(images)
    data = batches.DeviceData(images, labels, mean, std, device)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    network = train.build_network(opts, 10, device)
    state = train.TrainState.start(network, opts, math.ceil(len(data) / batch_size), gen, device)
    loss_fn = torch.nn.CrossEntropyLoss()
    state.net.train()

    def step(x, y):
        loss, _ = train.train_step(
            state.net, x, y, opts, loss_fn, state.optimizer, state.scheduler, state.scaler
        )
        return loss

    x, y = data.batch(torch.arange(batch_size, device=data.labels.device), opts, gen)
    sync(device)
    started = time.perf_counter()
    step(x, y).item()
    first = time.perf_counter() - started

    def epoch():
        for x, y in data.epoch(batch_size, opts, gen):
            step(x, y)
        sync(device)

    return first, epoch


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["cifarnet", "resnet18"])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="timed epochs per loop, taken in turns")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = train.choose_device(args.device)
    images, labels = demo.make_images(args.images, seed=0)  # 32×32 RGB, ten classes
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"cpu ({torch.get_num_threads()} threads)"
    )
    print(
        f"{len(images)} images {images.shape[1:]}, batch {args.batch_size}, fp32, adam, on {name}; torch {torch.__version__}"
    )

    loops, first = {}, {}
    for model in args.models:
        for compiled in (False, True):
            key = (model, compiled)
            first[key], loops[key] = loop(model, compiled, images, labels, device, args.batch_size)
    for run_epoch in loops.values():  # warm-up: the last batch's shape compiles here
        run_epoch()
    best = dict.fromkeys(loops, 0.0)
    for _ in range(args.rounds):
        for key, run_epoch in loops.items():
            started = time.perf_counter()
            run_epoch()
            best[key] = max(best[key], len(images) / (time.perf_counter() - started))
    for model in args.models:
        plain, compiled = best[(model, False)], best[(model, True)]
        print(f"{model:<10} plain    {plain:9.0f} images/s   first step {first[(model, False)]:6.2f} s")
        print(
            f"{model:<10} compiled {compiled:9.0f} images/s   first step {first[(model, True)]:6.2f} s (compiling)"
        )
        print(f"{model:<10} compiled / plain {compiled / plain:.2f}×")


if __name__ == "__main__":
    main()
