"""Training: data on the device, augmentation there, one plain loop, a checkpoint every epoch.

Reads top to bottom: options → device → data → augmentation → model/optimizer/schedule →
checkpoint → loop. Everything random draws from one seeded generator whose state the
checkpoint keeps, so an interrupted run resumes to the same numbers as an uninterrupted one.
"""

import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import cache, export, gpustats, models
from .options import TrainOptions  # defined without torch: the workflow checks configs with it


def choose_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} asked for, but CUDA is not available here")
    return device


def set_deterministic(enabled: bool) -> None:
    if enabled:
        # cuBLAS needs this before its first use for deterministic results.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(enabled)
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = not enabled


# ---------------------------------------------------------------- augmentation on the device
def random_crop(x: torch.Tensor, padding: int, gen: torch.Generator) -> torch.Tensor:
    """Per-sample translate by up to `padding` pixels with zero fill (RandomCrop(padding=p))."""
    if padding <= 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (padding,) * 4)
    shifts = torch.randint(0, 2 * padding + 1, (2, n), generator=gen).to(x.device)
    rows = shifts[0][:, None] + torch.arange(h, device=x.device)  # n×h
    cols = shifts[1][:, None] + torch.arange(w, device=x.device)  # n×w
    batch = torch.arange(n, device=x.device)[:, None, None]
    out = padded[batch, :, rows[:, :, None], cols[:, None, :]]  # n×h×w×c
    return out.permute(0, 3, 1, 2)


def random_flip(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    flip = (torch.rand(x.shape[0], generator=gen) < 0.5).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def cutout(x: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    if size <= 0:
        return x
    n, _, h, w = x.shape
    cy = torch.randint(0, h, (n,), generator=gen).to(x.device)
    cx = torch.randint(0, w, (n,), generator=gen).to(x.device)
    ys = torch.arange(h, device=x.device)[None, :, None]
    xs = torch.arange(w, device=x.device)[None, None, :]
    # offsets -half .. size-half-1 from the centre: exactly `size` pixels, odd or even
    half = size // 2
    dy, dx = ys - cy[:, None, None], xs - cx[:, None, None]
    inside = (dy >= -half) & (dy < size - half) & (dx >= -half) & (dx < size - half)
    return x * (~inside)[:, None].to(x.dtype)


class DeviceData:
    """One split as uint8 N×C×H×W on the device; batches come out as normalized floats."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, mean, std, device, input_size=0):
        self.images = torch.from_numpy(images).to(device).permute(0, 3, 1, 2).contiguous()
        self.labels = torch.from_numpy(labels).to(device)
        self.mean = torch.tensor(mean, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, 3, 1, 1)
        self.input_size = input_size

    def __len__(self):
        return len(self.labels)

    def batch(self, index, opts: TrainOptions | None = None, gen=None):
        """Images index → float batch; augmented when opts and gen are given (training)."""
        x = self.images[index].float().div_(255)
        if opts is not None:
            x = random_crop(x, opts.crop_padding, gen)
            if opts.flip:
                x = random_flip(x, gen)
            x = cutout(x, opts.cutout, gen)
        x = (x - self.mean) / self.std
        if self.input_size and self.input_size != x.shape[-1]:
            x = F.interpolate(x, size=self.input_size, mode="bilinear", align_corners=False)
        return x, self.labels[index]


# ---------------------------------------------------------------- optimizer and schedule
def make_optimizer(opts: TrainOptions, params) -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    if opts.optimizer == "sgd":
        return torch.optim.SGD(
            params,
            lr=opts.lr,
            momentum=opts.momentum,
            nesterov=opts.nesterov,
            weight_decay=opts.weight_decay,
        )
    kind = torch.optim.Adam if opts.optimizer == "adam" else torch.optim.AdamW
    return kind(params, lr=opts.lr, weight_decay=opts.weight_decay)


def lr_factor(opts: TrainOptions, step: int, total_steps: int, steps_per_epoch: int) -> float:
    """Multiplier on opts.lr at a step: linear warm-up, then constant, cosine or linear decay."""
    warmup = int(opts.warmup_epochs * steps_per_epoch)
    if step < warmup:
        return (step + 1) / warmup
    if opts.schedule == "constant":
        return 1.0
    progress = (step - warmup) / max(1, total_steps - warmup)
    if opts.schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * progress))
    return max(0.0, 1.0 - progress)  # onecycle: warm-up up, linear decay down to zero


# ---------------------------------------------------------------- checkpoints
def save_checkpoint(path: Path, state: dict) -> None:
    """Atomic: a SIGKILL during the write leaves the previous checkpoint intact."""
    cache.atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path: Path, fingerprint: str, log=print):
    """The checkpoint if it exists and was written by a run with the same options, else None.
    A damaged one (truncated, not a checkpoint) could never be resumed: it counts as absent,
    with a word in the log, and the next epoch's checkpoint replaces it."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises RuntimeError, EOFError, UnpicklingError, ...
        log(f"checkpoint {path} is damaged ({type(error).__name__}: {error}); training starts afresh")
        return None
    if not isinstance(state, dict) or state.get("fingerprint") != fingerprint:
        log(f"checkpoint {path} is of other options, data or code; training starts afresh")
        return None
    return state


def _rng_state(gen: torch.Generator, device: torch.device) -> dict:
    state = {"gen": gen.get_state(), "torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, gen: torch.Generator, device: torch.device) -> None:
    gen.set_state(state["gen"])
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


# ---------------------------------------------------------------- evaluation
@torch.no_grad()
def evaluate(model, data: DeviceData, opts: TrainOptions, batch_size: int = 500):
    """Mean loss, accuracy and all logits (float32, on the CPU) over a split."""
    model.eval()
    logits = []
    for start in range(0, len(data), batch_size):
        index = torch.arange(start, min(start + batch_size, len(data)), device=data.labels.device)
        x, _ = data.batch(index)
        with _autocast(opts, x.device):
            logits.append(model(_layout(x, opts)).float())
    logits = torch.cat(logits)
    loss = F.cross_entropy(logits, data.labels).item()
    accuracy = (logits.argmax(1) == data.labels).float().mean().item()
    return loss, accuracy, logits.cpu()


def resolve_precision(precision: str, device: torch.device) -> tuple:
    """The precision a run uses, and a warning when it is a trap: `auto` is bf16 on a GPU that
    has it and fp32 elsewhere; bf16 on a CPU without native support is many times slower."""
    if precision == "auto":
        bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return ("bf16" if bf16 else "fp32"), None
    if precision == "bf16" and device.type == "cpu":
        return "bf16", (
            "precision bf16 on a CPU: most CPUs emulate bf16, which can make a step tens of times "
            "slower than fp32; use precision: auto or fp32 here"
        )
    return precision, None


def _autocast(opts: TrainOptions, device: torch.device):
    precision = resolve_precision(opts.precision, device)[0]  # callers may pass `auto` as is
    if precision == "fp32":
        return torch.autocast(device.type, enabled=False)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def _layout(x: torch.Tensor, opts: TrainOptions) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if opts.channels_last else x


# ---------------------------------------------------------------- the loop
def train_step(model, x, y, opts: TrainOptions, loss_fn, optimizer, scheduler, scaler):
    """One optimizer step on a ready batch; returns the loss and the logits."""
    with _autocast(opts, x.device):
        out = model(_layout(x, opts))
        loss = loss_fn(out.float(), y)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if opts.grad_clip:
        scaler.unscale_(optimizer)  # clip the true gradients, not fp16's scaled ones
        nn.utils.clip_grad_norm_(model.parameters(), opts.grad_clip)
    scaler.step(optimizer)
    scaler.update()
    scheduler.step()
    return loss, out


def train(
    opts: TrainOptions,
    data_dir,
    out_dir,
    seed: int = 0,
    threads: int = 0,
    checkpoint_path=None,
    log=print,
) -> dict:
    """Train one model; write model.pt, metrics.json, predictions.npz and tensorboard/ to out_dir.

    Resumes from checkpoint_path when it holds a checkpoint of the same options, seed and data.
    """
    from torch.utils.tensorboard import SummaryWriter
    from tqdm import tqdm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_path = Path(checkpoint_path or out_dir / "checkpoint.pt")
    if threads:
        torch.set_num_threads(threads)
    set_deterministic(opts.deterministic)
    device = choose_device(opts.device)
    if opts.precision == "fp16" and device.type != "cuda":
        raise ValueError("precision fp16 needs a CUDA device; use bf16 or fp32 here")
    given, warnings = opts, []
    precision, warning = resolve_precision(opts.precision, device)
    if warning:
        log(f"WARNING: {warning}")
        warnings.append(warning)
    opts = dataclasses.replace(opts, precision=precision)

    manifest = cache.read_manifest(data_dir)
    classes = manifest["classes"]
    train_images, train_labels = cache.load_split(data_dir, "train")
    test_images, test_labels = cache.load_split(data_dir, "test")
    gen = torch.Generator().manual_seed(seed)
    if opts.train_subset and opts.train_subset < len(train_labels):
        keep = torch.randperm(len(train_labels), generator=gen)[: opts.train_subset].sort().values
        train_images, train_labels = train_images[keep.numpy()], train_labels[keep.numpy()]
    # Pretrained weights bring their own normalization and input size (see models.preprocessing).
    inputs = export.preprocessing(opts, manifest)
    args = (inputs["mean"], inputs["std"], device, inputs["input_size"])
    train_data = DeviceData(train_images, train_labels, *args)
    test_data = DeviceData(test_images, test_labels, *args)

    torch.manual_seed(seed)
    model = models.build(opts.model, len(classes), opts.weights, opts.trainable, opts.model_args)
    model = model.to(device)
    if opts.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(opts, model.parameters())
    steps_per_epoch = math.ceil(len(train_data) / opts.batch_size)
    total_steps = steps_per_epoch * opts.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(opts, step, total_steps, steps_per_epoch)
    )
    scaler = torch.amp.GradScaler(device.type, enabled=opts.precision == "fp16")
    loss_fn = nn.CrossEntropyLoss(label_smoothing=opts.label_smoothing)

    fingerprint = given.fingerprint(seed, manifest["source_hash"])
    history, step_losses, start_epoch = [], [], 0
    checkpoint = load_checkpoint(checkpoint_path, fingerprint, log)
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        scaler.load_state_dict(checkpoint["scaler"])
        _set_rng_state(checkpoint["rng"], gen, device)
        history, step_losses = checkpoint["history"], checkpoint["step_losses"]
        start_epoch = checkpoint["epoch"]
        log(f"resuming from {checkpoint_path} after epoch {start_epoch}")
    writer = SummaryWriter(out_dir / "tensorboard", purge_step=start_epoch * steps_per_epoch)

    step = start_epoch * steps_per_epoch
    gpu = gpustats.EpochStats(device)  # peak memory and utilization per epoch, where a GPU is
    for epoch in range(start_epoch, opts.epochs):
        gpu.start()
        model.train()
        started = time.perf_counter()
        order = torch.randperm(len(train_data), generator=gen).to(device)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        bar = tqdm(
            range(steps_per_epoch),
            desc=f"epoch {epoch + 1}/{opts.epochs}",
            file=sys.__stderr__,  # the step's log, not the notebook
            mininterval=10,
            disable=False,  # progress belongs in the log even though it is not a terminal
        )
        for i in bar:
            index = order[i * opts.batch_size : (i + 1) * opts.batch_size]
            x, y = train_data.batch(index, opts, gen)
            if epoch == start_epoch and i == 0:
                grid = (x[:32] * train_data.std + train_data.mean).clamp(0, 1)
                writer.add_images("augmented_train_images", grid.float(), step)
            loss, out = train_step(model, x, y, opts, loss_fn, optimizer, scheduler, scaler)
            loss_sum += loss.detach() * len(y)
            correct += (out.argmax(1) == y).sum()
            step += 1
            if step % opts.log_every == 0:
                value = loss.item()
                step_losses.append([step, value])
                writer.add_scalar("train/loss", value, step)
                writer.add_scalar("train/lr", optimizer.param_groups[0]["lr"], step)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        train_seconds = time.perf_counter() - started
        test_loss, test_acc, _ = evaluate(model, test_data, opts)
        record = {
            "epoch": epoch + 1,
            "train_loss": loss_sum.item() / len(train_data),
            "train_acc": correct.item() / len(train_data),
            "test_loss": test_loss,
            "test_acc": test_acc,
            "lr": optimizer.param_groups[0]["lr"],
            "train_seconds": train_seconds,
            "images_per_s": len(train_data) / train_seconds,
            "gpu": gpu.finish(writer, epoch + 1),
        }
        history.append(record)
        for key in ("train_loss", "train_acc", "test_loss", "test_acc", "lr", "images_per_s"):
            writer.add_scalar(f"epoch/{key}", record[key], epoch + 1)
        writer.flush()
        log(
            f"epoch {epoch + 1:3d}/{opts.epochs}  train loss {record['train_loss']:.4f}  "
            f"acc {record['train_acc']:.4f}  test loss {test_loss:.4f}  acc {test_acc:.4f}  "
            f"{record['images_per_s']:.0f} img/s"
        )
        save_checkpoint(
            checkpoint_path,
            {
                "fingerprint": fingerprint,
                "epoch": epoch + 1,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "rng": _rng_state(gen, device),
                "history": history,
                "step_losses": step_losses,
            },
        )
    writer.close()

    test_loss, test_acc, logits = evaluate(model, test_data, opts)
    cache.atomic_write(out_dir / "model.pt", lambda f: torch.save(model.state_dict(), f))
    export.write_portable(out_dir / "model.pt", opts, manifest, seed, out_dir)  # model.pt2 + .json
    predictions = {"logits": logits.numpy().astype(np.float32), "labels": test_labels.astype(np.int64)}
    cache.atomic_write(out_dir / "predictions.npz", lambda f: np.savez(f, **predictions))
    metrics = {
        "model": opts.model,
        "seed": seed,
        "options": dataclasses.asdict(given),
        "precision": precision,
        "inputs": inputs,
        "warnings": warnings,
        "classes": classes,
        "parameters": models.count_parameters(model),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "train_images": len(train_data),
        "test_images": len(test_data),
        "history": history,
        "step_losses": step_losses,
        "test_loss": test_loss,
        "test_acc": test_acc,
        "train_seconds": sum(r["train_seconds"] for r in history),
        "images_per_s": float(np.mean([r["images_per_s"] for r in history])) if history else 0.0,
        "resumed_after_epoch": start_epoch,
        "gpu": gpu.summary(history),
    }
    text = json.dumps(metrics, indent=2).encode()
    cache.atomic_write(out_dir / "metrics.json", lambda f: f.write(text))
    if not opts.keep_checkpoint:  # the outputs are complete: resuming has nothing left to do
        checkpoint_path.unlink(missing_ok=True)
    return metrics
