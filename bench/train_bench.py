"""Training throughput, measured side by side in one process on the same images:

  pipeline    labbook.train: uint8 split on the device, augmentation there, train_step()
  bare        the same math written as a plain PyTorch loop, no labbook code
  seed-style  torchvision ImageFolder + DataLoader + PIL transforms (the seed's loop)

    python bench/train_bench.py --imagefolder /tmp/cifar10/train --images 10000
    python bench/train_bench.py                        # generated demo images, anywhere
    python bench/train_bench.py --placements           # only: resident split against streamed

Prints images/s per loop (best of several epochs taken in turns) and the ratios. On CUDA it adds the fast setting (bs 512, bf16,
channels_last) for the pipeline and the bare loop.
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from labbook import arrays, batches, demo, models, train
from PIL import Image


def demo_imagefolder(root: Path, n: int) -> Path:
    images, labels = demo.make_images(n, seed=0)
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        folder = root / demo.CLASSES[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i:05d}.png")
    return root


def pick_files(root: Path, n: int):
    """n files, as balanced over the class folders as they allow, in a fixed order."""
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    per_class = [sorted((root / c).iterdir()) for c in classes]
    files = []
    for i in range(max(len(f) for f in per_class)):
        files += [(f[i], label) for label, f in enumerate(per_class) if i < len(f)]
    return classes, files[:n]


def seed_style(files, classes, mean, std, opts, device, workers):
    from torchvision import datasets, transforms

    transform = transforms.Compose(
        [
            transforms.RandomCrop(32, padding=opts.crop_padding),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(mean, std),
        ]
    )
    folder = datasets.ImageFolder(str(files[0][0].parents[1]), transform=transform)
    wanted = {str(path) for path, _ in files}
    folder.samples = [s for s in folder.samples if s[0] in wanted]
    loader = torch.utils.data.DataLoader(
        folder, batch_size=opts.batch_size, shuffle=True, num_workers=workers, persistent_workers=workers > 0
    )
    model = models.build(opts.model, len(classes)).to(device)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=opts.lr)

    def epoch():
        for x, y in loader:
            _plain_step(model, optimizer, x.to(device), y.to(device))

    return len(folder), epoch


def _plain_step(model, optimizer, x, y):
    loss = F.cross_entropy(model(x), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def bare(images, labels, mean, std, opts, device, classes):
    """The pipeline's math without labbook: crop by indexing a padded batch, flip, normalize, and
    resize to opts.input_size where one is set (bilinear, after normalizing, as DeviceData.batch)."""
    x_all = torch.from_numpy(images).to(device).permute(0, 3, 1, 2).contiguous()
    y_all = torch.from_numpy(labels).to(device)
    mean_t = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=device).view(1, 3, 1, 1)
    model = models.build(opts.model, len(classes)).to(device)
    if opts.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=opts.lr)
    dtype = torch.bfloat16 if opts.precision == "bf16" else None
    p, n, size = opts.crop_padding, len(y_all), images.shape[1]

    def epoch():
        order = torch.randperm(n, device=device)
        for start in range(0, n, opts.batch_size):
            index = order[start : start + opts.batch_size]
            x = F.pad(x_all[index].float() / 255, (p, p, p, p))
            dy, dx = torch.randint(0, 2 * p + 1, (2, len(index)), device=device)
            rows = (dy[:, None] + torch.arange(size, device=device))[:, :, None]
            cols = (dx[:, None] + torch.arange(size, device=device))[:, None, :]
            x = x[torch.arange(len(index), device=device)[:, None, None], :, rows, cols].permute(0, 3, 1, 2)
            flip = torch.rand(len(index), device=device) < 0.5
            x = (torch.where(flip[:, None, None, None], x.flip(3), x) - mean_t) / std_t
            if opts.input_size and opts.input_size != size:
                x = F.interpolate(x, size=opts.input_size, mode="bilinear", align_corners=False)
            if opts.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                loss = F.cross_entropy(model(x).float(), y_all[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    return n, epoch


def pipeline(images, labels, mean, std, opts, device, classes, compile_model=False):
    """labbook's train step on its device data. compile_model: through torch.compile, which has to
    wrap the model before its first step; dynamic=False as train.py's `compile` does, so a last,
    smaller batch compiles once more (in the untimed warm-up)."""
    data = batches.DeviceData(images, labels, mean, std, device, opts.input_size)
    model = models.build(opts.model, len(classes)).to(device)
    if opts.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = train.make_optimizer(opts, model.parameters())
    net = torch.compile(model, dynamic=False) if compile_model else model
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    scaler = torch.amp.GradScaler(device.type, enabled=opts.precision == "fp16")
    loss_fn = torch.nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(0)

    def epoch():
        order = torch.randperm(len(data), generator=gen).to(device)
        for start in range(0, len(data), opts.batch_size):
            x, y = data.batch(order[start : start + opts.batch_size], opts, gen)
            train.train_step(net, x, y, opts, loss_fn, optimizer, scheduler, scaler)

    return len(data), epoch


def placements(images, labels, mean, std, opts, device, classes, folder: Path) -> dict:
    """Two loops of train.train's own epochs (SplitData.epoch, train_step) on the same images:
    the split resident on the device, and streamed from a `.npy` file in folder as the data step
    writes it (read batch by batch in a background thread; pinned memory on CUDA). The file is
    in the page cache after the first epoch, as a split that fits the host's memory is."""
    path = Path(folder) / "train_images.npy"
    np.save(path, images)
    rows = batches.Rows(np.load(path, mmap_mode="r"))
    splits = {
        "resident": batches.DeviceData(images, labels, mean, std, device, opts.input_size),
        "streamed": batches.StreamedData(rows, labels, mean, std, device, opts.input_size),
    }
    loops = {}
    for name, data in splits.items():
        model = models.build(opts.model, len(classes)).to(device)
        if opts.channels_last:
            model = model.to(memory_format=torch.channels_last)
        optimizer = train.make_optimizer(opts, model.parameters())
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
        scaler = torch.amp.GradScaler(device.type, enabled=opts.precision == "fp16")
        gen = torch.Generator().manual_seed(0)

        def epoch(data=data, model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler, gen=gen):
            loss_fn = torch.nn.CrossEntropyLoss()
            for x, y in data.epoch(opts.batch_size, opts, gen):
                train.train_step(model, x, y, opts, loss_fn, optimizer, scheduler, scaler)

        loops[name] = (len(data), epoch)
    return loops


def best_rates(loops: dict, rounds: int) -> dict:
    """Images/s of each loop: one untimed warm-up epoch each, then `rounds` rounds that time one
    epoch of every loop in turn, keeping each loop's best. Taking turns spreads drifts in the
    machine's load over all loops alike."""
    for _, run_epoch in loops.values():
        run_epoch()
    best = dict.fromkeys(loops, 0.0)
    for _ in range(rounds):
        for name, (n, run_epoch) in loops.items():
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            start = time.perf_counter()
            run_epoch()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            best[name] = max(best[name], n / (time.perf_counter() - start))
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--imagefolder", type=Path, help="a folder of <class>/<image> (default: generated)")
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3, help="timed epochs per loop, taken in turns")
    parser.add_argument("--model", default="cifarnet")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers of the seed-style loop")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument(
        "--placements", action="store_true", help="only the split resident against streamed from its file"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = train.choose_device("auto")
    root = args.imagefolder or demo_imagefolder(Path(tempfile.mkdtemp()) / "train", args.images)
    classes, files = pick_files(root, args.images)
    images = np.stack([np.asarray(Image.open(path).convert("RGB")) for path, _ in files])
    labels = np.array([label for _, label in files], dtype=np.int64)
    mean, std = arrays.channel_stats(images)
    opts = train.TrainOptions(
        model=args.model, optimizer="adam", lr=1e-3, batch_size=args.batch_size, precision="fp32"
    )
    name = (
        torch.cuda.get_device_name() if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    )
    print(
        f"{len(images)} images {images.shape[1:]}, model {args.model}, batch {args.batch_size}, fp32, on {name}"
    )

    if args.placements:
        with tempfile.TemporaryDirectory() as folder:
            rates = best_rates(
                placements(images, labels, mean, std, opts, device, classes, folder), args.rounds
            )
        for loop, rate in rates.items():
            print(f"  {loop:<14} {rate:10.0f} images/s")
        print(f"streamed / resident   {rates['streamed'] / rates['resident']:.2f}×")
        return
    loops = {
        "pipeline": pipeline(images, labels, mean, std, opts, device, classes),
        "bare": bare(images, labels, mean, std, opts, device, classes),
        "seed-style": seed_style(files, classes, mean, std, opts, device, args.workers),
    }
    if device.type == "cuda":
        fast = train.TrainOptions(
            model=args.model, optimizer="adam", lr=1e-3, batch_size=512, precision="bf16", channels_last=True
        )
        loops["pipeline fast"] = pipeline(images, labels, mean, std, fast, device, classes)
        loops["bare fast"] = bare(images, labels, mean, std, fast, device, classes)
    rates = best_rates(loops, args.rounds)
    for loop, rate in rates.items():
        print(f"  {loop:<14} {rate:10.0f} images/s   {len(images) / rate:7.2f} s/epoch")
    print(f"pipeline / bare       {rates['pipeline'] / rates['bare']:.2f}×")
    print(f"pipeline / seed-style {rates['pipeline'] / rates['seed-style']:.2f}×")
    if device.type == "cuda":
        print(f"fast: pipeline / bare {rates['pipeline fast'] / rates['bare fast']:.2f}×")


if __name__ == "__main__":
    main()
