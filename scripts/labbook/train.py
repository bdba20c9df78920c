"""Training: data on the device, augmentation there, one plain loop, a checkpoint every epoch.

`train` reads top to bottom like a recipe: setup (device, precision) → data → network →
optimizer/schedule → resume → epochs → final evaluation and outputs. Everything random draws
from one seeded generator whose state the checkpoint (TrainState) keeps, so an interrupted run
resumes to the same numbers as an uninterrupted one.

Three splits, three roles: the network learns on train; every choice (the best epoch with
`keep: best`, early stopping with `patience`) is made on val, evaluated after each epoch; test is
evaluated once, at the end, on the weights the run keeps.
"""

import dataclasses
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import arrays, atomic, distributed, export, gpustats, models
from .batches import SplitData, load_splits
from .plan import files
from .plan.options import TrainOptions  # defined without torch: the workflow checks configs with it


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


def build_network(opts: TrainOptions, num_classes: int, device: torch.device) -> nn.Module:
    """The run's one network: training, evaluation and the portable export all use it."""
    model = models.build(opts.model, num_classes, opts.weights, opts.trainable, opts.model_args)
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if opts.channels_last else model


def compiled(model: nn.Module, opts: TrainOptions) -> nn.Module:
    """What a training step calls: the model itself, or with `compile` torch.compile's wrapper of
    it (the same parameters; compiled at its first call, again for a last, smaller batch: static
    shapes). The model itself stays what is saved, evaluated and exported: the wrapper's
    state_dict keys would carry an `_orig_mod.` prefix."""
    return torch.compile(model, dynamic=False) if opts.compile else model


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
    atomic.atomic_write(path, lambda f: torch.save(state, f))


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


@dataclasses.dataclass
class TrainState:
    """Everything a checkpoint holds: what an interrupted run needs to go on as if it had not
    been interrupted. save and load are each other's inverse."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    generator: torch.Generator  # data order, subset and augmentation draw from it
    device: torch.device  # not saved: where the model is, whose CUDA random state is kept
    net: nn.Module | None = None  # not saved: what training steps call (compiled); None: the model
    history: list = dataclasses.field(default_factory=list)  # one record per epoch
    step_losses: list = dataclasses.field(default_factory=list)  # [step, loss] every log_every steps
    epoch: int = 0  # epochs completed (a diverged run's last one only in part)
    diverged: dict | None = None  # {"epoch", "step", "loss"} where the train loss became non-finite
    # The choice on val (track_best): the finite epoch of the highest val accuracy so far (ties: the
    # earlier), its weights (keep: best only; a CPU copy), the epochs since, and patience's stop.
    best_epoch: int = 0  # 0: none yet
    best_val_acc: float | None = None
    best_weights: dict | None = None
    since_best: int = 0
    stopped_early: int | None = None  # the epoch after which patience stopped the run

    @classmethod
    def start(cls, model, opts: TrainOptions, steps_per_epoch: int, gen, device) -> "TrainState":
        """A run's state before its first step: the optimizer, schedule and scaler the options name."""
        optimizer = make_optimizer(opts, model.parameters())
        total_steps = steps_per_epoch * opts.epochs
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: lr_factor(opts, step, total_steps, steps_per_epoch)
        )
        scaler = torch.amp.GradScaler(device.type, enabled=opts.precision == "fp16")
        net = compiled(distributed.replicate(model, device), opts)
        return cls(model, optimizer, scheduler, scaler, gen, device, net=net)

    def save(self, path: Path, fingerprint: str) -> None:
        save_checkpoint(
            path,
            {
                "fingerprint": fingerprint,
                "epoch": self.epoch,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(),
                "rng": _rng_state(self.generator, self.device),
                "history": self.history,
                "step_losses": self.step_losses,
                "diverged": self.diverged,
                "best_epoch": self.best_epoch,
                "best_val_acc": self.best_val_acc,
                "best_weights": self.best_weights,
                "since_best": self.since_best,
                "stopped_early": self.stopped_early,
            },
        )

    def load(self, path: Path, fingerprint: str, log=print) -> bool:
        """Resume from the checkpoint at path if it is of this fingerprint; whether it was. A
        missing, damaged or foreign one leaves the state as it is (see load_checkpoint)."""
        checkpoint = load_checkpoint(path, fingerprint, log)
        if checkpoint is None:
            return False
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        self.scaler.load_state_dict(checkpoint["scaler"])
        _set_rng_state(checkpoint["rng"], self.generator, self.device)
        self.history, self.step_losses = checkpoint["history"], checkpoint["step_losses"]
        self.epoch, self.diverged = checkpoint["epoch"], checkpoint.get("diverged")
        self.best_epoch, self.best_val_acc = checkpoint["best_epoch"], checkpoint["best_val_acc"]
        self.best_weights, self.since_best = checkpoint["best_weights"], checkpoint["since_best"]
        self.stopped_early = checkpoint["stopped_early"]
        log(f"resuming from {path} after epoch {self.epoch}")
        return True

    def track_best(self, val_acc: float, opts: TrainOptions, log=print) -> bool:
        """After epoch self.epoch's evaluation on val: is it a new best (finite, and a higher val
        accuracy than every earlier epoch's; a tie keeps the earlier)? A new best's weights are
        copied with keep: best; any other epoch is one more since the best, and `patience` of those
        in a row stop the run (stopped_early; not at its last epoch, where it ends anyway). A
        diverged epoch is never a best."""
        if self.diverged:
            return False
        if self.best_val_acc is None or val_acc > self.best_val_acc:
            self.best_epoch, self.best_val_acc, self.since_best = self.epoch, val_acc, 0
            if opts.keep == "best":
                weights = self.model.state_dict()
                self.best_weights = {k: v.detach().to("cpu", copy=True) for k, v in weights.items()}
            return True
        self.since_best += 1
        if opts.patience and self.since_best >= opts.patience and self.epoch < opts.epochs:
            self.stopped_early = self.epoch
            epochs = f"{self.since_best} epoch{'s' * (self.since_best > 1)}"
            log(
                f"stopping early after epoch {self.epoch}: {epochs} without a new best val accuracy "
                f"(best {self.best_val_acc:.4f}, epoch {self.best_epoch}; patience {opts.patience})"
            )
        return False

    def keep_weights(self, opts: TrainOptions) -> int:
        """Load the weights the run keeps into the model; their epoch. keep: last keeps the
        network as training left it (a diverged run's: as its last step left it); keep: best the
        best epoch's, also when a later epoch diverged (when none was finite: the last)."""
        if opts.keep == "best" and self.best_weights is not None:
            self.model.load_state_dict(self.best_weights)
            return self.best_epoch
        return self.epoch


# ---------------------------------------------------------------- evaluation
EVAL_BATCH_BYTES = 64 << 20  # of float images at the stored size: bounds evaluation's memory


@torch.no_grad()
def evaluate(model, data: SplitData, opts: TrainOptions):
    """Mean loss, accuracy and all logits (float32, on the CPU) over a split, in batches of up to
    500 images, fewer where their floats would exceed EVAL_BATCH_BYTES (at 224 px: 111), but never
    fewer than a training batch. An image whose logits are not all finite (a diverged network's)
    has no prediction: it counts as wrong."""
    model.eval()
    logits = []
    batch_size = min(500, max(opts.batch_size, EVAL_BATCH_BYTES // (4 * 3 * data.height * data.width)))
    for x, _ in data.in_order(batch_size):
        with _autocast(opts, x.device):
            logits.append(model(_layout(x, opts)).float())
    logits = torch.cat(logits)
    loss = F.cross_entropy(logits, data.labels).item()
    correct = (logits.argmax(1) == data.labels) & torch.isfinite(logits).all(1)
    accuracy = correct.float().mean().item()
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


def settle_precision(opts: TrainOptions, device: torch.device, log=print) -> tuple:
    """(the options with the precision the run uses, [warnings]); fp16 off CUDA is an error."""
    if opts.precision == "fp16" and device.type != "cuda":
        raise ValueError("precision fp16 needs a CUDA device; use bf16 or fp32 here")
    precision, warning = resolve_precision(opts.precision, device)
    if warning:
        log(f"WARNING: {warning}")
    return dataclasses.replace(opts, precision=precision), [warning] if warning else []


def _autocast(opts: TrainOptions, device: torch.device):
    precision = resolve_precision(opts.precision, device)[0]  # callers may pass `auto` as is
    if precision == "fp32":
        return torch.autocast(device.type, enabled=False)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def _layout(x: torch.Tensor, opts: TrainOptions) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if opts.channels_last else x


# ---------------------------------------------------------------- the loop
def train_step(model, x, y, opts: TrainOptions, loss_fn, optimizer, scheduler, scaler, share=1.0):
    """One optimizer step on a ready batch; returns the loss and the logits. With several
    workers, x is this one's shard, and share (its images × workers / the batch's) weights its
    loss so that the gradient DistributedDataParallel averages is the whole batch's."""
    with _autocast(opts, x.device):
        out = model(_layout(x, opts))
        loss = loss_fn(out.float(), y)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss if share == 1.0 else loss * share).backward()
    if opts.grad_clip:
        scaler.unscale_(optimizer)  # clip the true gradients, not fp16's scaled ones
        nn.utils.clip_grad_norm_(model.parameters(), opts.grad_clip)
    scaler.step(optimizer)
    scaler.update()
    scheduler.step()
    return loss, out


def train_epoch(state: TrainState, data: SplitData, opts: TrainOptions, loss_fn, writer, grid=False):
    """One pass over the training split, logging the loss and rate every log_every steps (to
    state.step_losses and TensorBoard) and, with grid, the first augmented batch's images.
    Returns the epoch's mean train loss and accuracy, its seconds and images per second, and the
    seconds of its first step (with `compile`: mostly compiling).

    A step whose loss is not finite (NaN or inf) ends the pass there, with state.diverged saying
    where: every later step would only carry NaN weights on. Checking costs one transfer of the
    loss a step, where each batch's augmentation draws already cross to the device. With several
    workers, every number is the whole batch's (summed over them), so all stop at the same step."""
    from tqdm import tqdm

    model, optimizer = state.net or state.model, state.optimizer
    rank, world = distributed.rank_and_world()
    model.train()
    started = time.perf_counter()
    device = data.labels.device
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0  # images trained on: all of the split, unless the run diverged
    steps = math.ceil(len(data) / opts.batch_size)
    batches = tqdm(
        data.epoch(opts.batch_size, opts, state.generator, rank, world),
        total=steps,
        desc=f"epoch {state.epoch + 1}/{opts.epochs}",
        file=sys.__stderr__,  # the step's log, not the notebook
        mininterval=10,
        disable=rank != 0,  # progress belongs in the log even though it is not a terminal
    )
    for i, (x, y) in enumerate(batches):
        step = state.epoch * steps + i  # optimizer steps before this one
        batch_images = min(opts.batch_size, len(data) - i * opts.batch_size)  # of every worker
        if grid and i == 0:
            images = (x[:32] * data.std + data.mean).clamp(0, 1)
            writer.add_images("augmented_train_images", images.float(), step)
        share = len(y) * world / batch_images
        loss, out = train_step(model, x, y, opts, loss_fn, optimizer, state.scheduler, state.scaler, share)
        loss_sum += loss.detach() * len(y)
        correct += (out.argmax(1) == y).sum()
        seen += batch_images
        if world > 1:  # the whole batch's loss: what one process would have seen
            loss = distributed.total(loss.detach() * len(y)) / batch_images
        finite = torch.isfinite(loss).item()  # waits for the step
        if i == 0:
            first_step_seconds = time.perf_counter() - started
        if not finite:
            state.diverged = {"epoch": state.epoch + 1, "step": step + 1, "loss": str(loss.item())}
            break
        if (step + 1) % opts.log_every == 0:
            value = loss.item()
            state.step_losses.append([step + 1, value])
            writer.add_scalar("train/loss", value, step + 1)
            writer.add_scalar("train/lr", optimizer.param_groups[0]["lr"], step + 1)
    distributed.total(loss_sum), distributed.total(correct)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    return {
        "train_loss": loss_sum.item() / seen,
        "train_acc": correct.item() / seen,
        "train_seconds": seconds,
        "images_per_s": seen / seconds,
        "first_step_seconds": first_step_seconds,
    }


def record_epoch(state: TrainState, trained: dict, val_data, opts, writer, gpu, log=print) -> dict:
    """Evaluate on val after epoch state.epoch (trained: train_epoch's numbers); its record into
    state.history, TensorBoard and the log, with a warning in both when the epoch diverged."""
    val_loss, val_acc, _ = evaluate(state.model, val_data, opts)
    record = {
        "epoch": state.epoch,
        "train_loss": trained["train_loss"],
        "train_acc": trained["train_acc"],
        "val_loss": val_loss,
        "val_acc": val_acc,
        "lr": state.optimizer.param_groups[0]["lr"],
        "train_seconds": trained["train_seconds"],
        "images_per_s": trained["images_per_s"],
        "gpu": gpu.finish(writer, state.epoch),
    }
    state.history.append(record)
    for key in ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "images_per_s"):
        writer.add_scalar(f"epoch/{key}", record[key], state.epoch)
    writer.flush()
    log(
        f"epoch {state.epoch:3d}/{opts.epochs}  train loss {record['train_loss']:.4f}  "
        f"acc {record['train_acc']:.4f}  val loss {val_loss:.4f}  acc {val_acc:.4f}  "
        f"{record['images_per_s']:.0f} img/s"
    )
    if state.diverged:
        where = f"epoch {state.diverged['epoch']}, step {state.diverged['step']}"
        kept = (
            f"epoch {state.best_epoch}'s network, the best on val (keep: best)"
            if opts.keep == "best" and state.best_weights is not None
            else "the network as that step left it"
        )
        warning = (
            f"training diverged in {where}: the train loss is {state.diverged['loss']}; training stopped "
            f"there, and the outputs hold {kept}"
        )
        writer.add_text("diverged", warning, state.diverged["step"])
        writer.add_scalar("train/diverged_at_step", state.diverged["step"], state.diverged["step"])
        writer.flush()
        log(f"WARNING: {warning}")
    return record


# ---------------------------------------------------------------- outputs
def write_model(out_dir: Path, model, logits, test_data, opts, manifest, seed, inputs) -> None:
    """model.pt (the state_dict), the portable model.pt2 + model.json, predictions.npz."""
    atomic.atomic_write(out_dir / files.RUN["model"], lambda f: torch.save(model.state_dict(), f))
    export.write_portable(model, opts, manifest, seed, inputs, out_dir)
    labels = test_data.labels.cpu().numpy().astype(np.int64)
    predictions = {"logits": logits.numpy().astype(np.float32), "labels": labels}
    atomic.atomic_write(out_dir / files.RUN["predictions"], lambda f: np.savez(f, **predictions))


def write_json(path: Path, content: dict) -> None:
    text = json.dumps(content, indent=2).encode()
    atomic.atomic_write(path, lambda f: f.write(text))


def run_description(given: TrainOptions, opts: TrainOptions, seed: int, inputs, warnings, classes) -> dict:
    """metrics.json's head: what was asked for (given), and what the run made of it (opts)."""
    return {
        "model": opts.model,
        "seed": seed,
        "options": dataclasses.asdict(given),
        "precision": opts.precision,
        "inputs": inputs,
        "warnings": warnings,
        "classes": classes,
    }


def run_summary(state: TrainState, device, splits: dict, final: dict) -> dict:
    """metrics.json's middle: the network, the device, the data (splits: name → DeviceData), the
    history and the final numbers (final: the kept weights' val and test loss and accuracy)."""
    history = state.history
    return {
        "parameters": models.count_parameters(state.model),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        **{f"{name}_images": len(data) for name, data in splits.items()},
        "history": history,
        "step_losses": state.step_losses,
        **final,
        "train_seconds": sum(r["train_seconds"] for r in history),
        "images_per_s": float(np.mean([r["images_per_s"] for r in history])) if history else 0.0,
        "diverged": state.diverged,  # None, or where the train loss became non-finite
    }


def write_hparams(writer, given: TrainOptions, seed: int, final: dict, step: int) -> None:
    """The run's options (and seed) with its final val and test accuracy as TensorBoard HParams,
    in the run's own event file beside its epoch scalars (SummaryWriter.add_hparams would write a
    sub-run folder of its own). Values that are not scalars (model_args, lists, None) as JSON text."""
    from torch.utils.tensorboard.summary import hparams

    values = {"seed": seed, **given.to_dict()}
    values = {k: v if isinstance(v, (bool, int, float, str)) else json.dumps(v) for k, v in values.items()}
    numbers = {"hparam/val_accuracy": final["val_acc"], "hparam/test_accuracy": final["test_acc"]}
    for summary in hparams(values, numbers):
        writer.file_writer.add_summary(summary)
    for tag, value in numbers.items():
        writer.add_scalar(tag, value, step)
    writer.flush()


def worker_device(name: str, rank: int, world: int) -> torch.device:
    """The device of this worker: choose_device's, and of several workers on GPUs each its own
    (cuda:LOCAL_RANK, set by worker.main)."""
    device = choose_device(name)
    if world > 1 and device.type == "mps":
        raise ValueError("gpus above 1 needs CUDA GPUs or the CPU; an Apple GPU (mps) is one device")
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", torch.cuda.current_device())
    if world > 1:
        print(f"worker {rank}/{world} on {device}", flush=True)
    return device


def check_shards(images: int, batch_size: int, world: int) -> None:
    """Every worker needs an image of every step: batch_size and the epoch's last batch ≥ gpus."""
    last = images % batch_size or batch_size
    if world > 1 and min(batch_size, last) < world:
        raise ValueError(
            f"gpus: {world} splits each step's batch over {world} processes, but a step has "
            f"{min(batch_size, last)} images ({images} training images in batches of {batch_size}); "
            "choose a batch_size (and train_subset) that leave every step at least that many"
        )


def event_writer(out_dir: Path, purge_step: int, rank: int):
    """TensorBoard's writer of the run (rank 0's; the others' writes go nowhere). A fresh
    training (purge_step 0) starts with no event files of an earlier one under this name."""
    from torch.utils.tensorboard import SummaryWriter

    if rank != 0:
        return NO_EVENTS
    if not purge_step:
        shutil.rmtree(out_dir / files.TENSORBOARD, ignore_errors=True)
    return SummaryWriter(out_dir / files.TENSORBOARD, purge_step=purge_step)


class _NoEvents:
    """A writer that writes nothing: the TensorBoard of a worker other than rank 0."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


NO_EVENTS = _NoEvents()


def train(
    opts: TrainOptions, data_dir, out_dir, seed: int = 0, threads: int = 0, checkpoint_path=None, log=print
) -> dict:
    """Train one model; write model.pt, model.pt2 + model.json, predictions.npz, metrics.json and
    tensorboard/ to out_dir (plan/files.py). Each epoch is evaluated on val; the weights kept
    (`keep`: the last epoch's or the best on val) are evaluated once on test, and those are the
    outputs. Resumes from checkpoint_path (default: out_dir's checkpoint.pt) when it holds a
    checkpoint of the same options, seed, data and code. A run whose train loss becomes non-finite
    stops in that step and still writes every output, metrics.json saying where it diverged
    (train_epoch). With `gpus` above 1, torchrun runs this in that many workers (distributed.py):
    rank 0 writes the outputs and returns the metrics, the others None."""
    if opts.gpus > 1 and not distributed.active():
        return distributed.launch(opts, data_dir, out_dir, seed, threads, checkpoint_path, log)

    # Setup: the output folder, threads, determinism, the device and the precision on it.
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_path = Path(checkpoint_path or out_dir / files.CHECKPOINT)
    rank, world = distributed.rank_and_world()
    if threads:
        torch.set_num_threads(max(1, threads // world))
    set_deterministic(opts.deterministic)
    device = worker_device(opts.device, rank, world)
    given, (opts, warnings) = opts, settle_precision(opts, device, log)

    # Data: each split resident on the device or streamed to it. Pretrained weights bring their
    # own normalization and input size.
    manifest = arrays.read_manifest(data_dir)
    inputs = export.preprocessing(opts, manifest)
    gen = torch.Generator().manual_seed(seed)
    (train_data, val_data, test_data), placement = load_splits(data_dir, opts, inputs, device, gen, world)
    log(f"data: {', '.join(f'{split} {where}' for split, where in placement.items())}")
    check_shards(len(train_data), opts.batch_size, world)

    # The network, built once.
    torch.manual_seed(seed)
    model = build_network(opts, len(manifest["classes"]), device)

    # Optimizer and schedule; then the checkpoint's state over them when it is this run's.
    steps_per_epoch = math.ceil(len(train_data) / opts.batch_size)
    state = TrainState.start(model, opts, steps_per_epoch, gen, device)
    fingerprint = given.fingerprint(seed, manifest["source_hash"])
    resumed_after = state.epoch if state.load(checkpoint_path, fingerprint, log) else 0

    # The epochs: train, evaluate on val and log, the best so far, checkpoint.
    loss_fn = nn.CrossEntropyLoss(label_smoothing=opts.label_smoothing)
    writer = event_writer(out_dir, resumed_after * steps_per_epoch, rank)
    gpu = gpustats.EpochStats(device)  # peak memory and utilization per epoch, where a GPU is
    compile_seconds = None  # with `compile`: this process's first step, which compiles the network
    # A diverged run stops where it did, a patient one where patience ran out.
    while state.epoch < opts.epochs and not state.diverged and not state.stopped_early:
        gpu.start()
        trained = train_epoch(state, train_data, opts, loss_fn, writer, grid=state.epoch == resumed_after)
        if opts.compile and compile_seconds is None:
            compile_seconds = trained["first_step_seconds"]
            log(f"compiled the network: the first step took {compile_seconds:.1f} s")
        state.epoch += 1
        record = record_epoch(state, trained, val_data, opts, writer, gpu, log)
        state.track_best(record["val_acc"], opts, log)
        if rank == 0:
            state.save(checkpoint_path, fingerprint)
    if rank != 0:  # rank 0 has the same weights and writes the outputs
        return None

    # The kept weights, their val numbers (measured after their epoch), and test: evaluated once.
    kept_epoch = state.keep_weights(opts)
    model = distributed.plain_batch_norm(model)
    kept = next(r for r in state.history if r["epoch"] == kept_epoch)
    test_loss, test_acc, logits = evaluate(model, test_data, opts)
    final = {
        "val_loss": kept["val_loss"],
        "val_acc": kept["val_acc"],
        "test_loss": test_loss,
        "test_acc": test_acc,
    }
    log(
        f"kept epoch {kept_epoch} ({opts.keep}): val acc {final['val_acc']:.4f}, "
        f"test loss {test_loss:.4f}, test acc {test_acc:.4f}"
    )
    write_hparams(writer, given, seed, final, state.epoch)
    writer.close()

    # Outputs: model.pt, model.pt2 + model.json, predictions.npz, metrics.json.
    write_model(out_dir, model, logits, test_data, opts, manifest, seed, inputs)
    splits = {"train": train_data, "val": val_data, "test": test_data}
    metrics = {
        **run_description(given, opts, seed, inputs, warnings, manifest["classes"]),
        **run_summary(state, device, splits, final),
        "chosen_on": "val",  # the best epoch and early stopping; test was evaluated once, on the kept weights
        "kept": opts.keep,
        "best_epoch": kept_epoch,  # the epoch whose weights are the outputs
        "stopped_early": state.stopped_early,  # the epoch patience stopped at, or None
        "resumed_after_epoch": resumed_after,
        "compiled": opts.compile,  # trained through torch.compile
        "compile_seconds": compile_seconds,  # its first step in this process (None: not compiled)
        "processes": world,  # training processes (gpus), each on a device of its own
        "data_placement": placement,  # split → resident or streamed
        "gpu": gpu.summary(state.history),
    }
    write_json(out_dir / files.RUN["metrics"], metrics)
    if not opts.keep_checkpoint:  # the outputs are complete: resuming has nothing left to do
        checkpoint_path.unlink(missing_ok=True)
    return metrics
