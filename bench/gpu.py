"""One command for the GPU: every GPU figure labbook has not measured yet, side by side, as JSON.

    bench/gpu.sh                                       # on the lent GPU machine: wheels, then this
    python bench/gpu.py --out $OUT/gpu.json            # the same, wheels already installed
    python bench/gpu.py --small --out /tmp/gpu.json    # anywhere; automatic without CUDA

A GPU session is short and rare, so one run measures everything, in order of importance, and
writes the JSON after each section (a run killed at its time limit keeps what it measured):

  train_step            labbook's train step (data and augmentation on the device) against a bare
                        PyTorch loop doing the same math and the seed-style ImageFolder +
                        DataLoader loop (bench/train_bench.py's loops, taken in turns)
  fast_compile          the fast setting (batch 512, bf16 autocast, channels_last) with and
                        without torch.compile, and through train.train() itself (with its
                        `compile` option where TrainOptions has one); compile seconds
  vgg16                 VGG16 in bf16 at 224 px (upsampled on the device) against a bare loop
  workflow              the whole CIFAR-10 workflow through `snakemake` in a temporary copy, then
                        a rerun that must have nothing to do
  streamed_vs_resident  the fast setting's epochs with the split resident on the device against
                        streamed from its .npy file (background reads, pinned memory, async copies)
  memory                GPU memory peaks of each of the above (null on a CPU, with a note)

Data: the CIFAR-10 JPEG copy (--cifar10-jpeg, its extracted root or the tarball, which is
extracted to a temporary folder; by default ../shared/data/cifar10-jpeg.tar.gz or
.whl/data/cifar10-jpeg.tar.gz where present), else generated demo images. `--budget-s` (default
480) bounds the run: a section starts only when its estimated seconds still fit, and a skipped
section is recorded with the reason. Each ratio names the two numbers it divides.
"""

import argparse
import dataclasses
import gc
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# bench/ is no package: train_bench is imported from its folder. scripts/ first, so that the
# checkout's labbook is what runs, also on a machine where it was never pip-installed.
for folder in (REPO / "scripts", REPO / "bench", REPO / "tests"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import train_bench  # noqa: E402
from labbook import arrays, imagefolder, train  # noqa: E402

SECTIONS = (
    "train_step",
    "fast_compile",
    "vgg16",
    "streamed_vs_resident",
    "workflow",
)  # timed, in order of importance
DEFAULT_TARBALLS = (REPO.parent / "shared/data/cifar10-jpeg.tar.gz", REPO / ".whl/data/cifar10-jpeg.tar.gz")
MIB = 1024 * 1024

# Every ratio the run reports: what it stands for, and its target from shared/docs/machine.md
# (an H200/H100 at full size on the CIFAR-10 JPEG copy; None: no target). "a/b" divides a's
# number by b's.
RATIOS = {
    "pipeline/bare": (
        "labbook's train step against the same math written as a bare PyTorch loop: what the "
        "library's structure costs",
        0.95,
    ),
    "pipeline/seed_style": (
        "data and augmentation on the device against the seed's ImageFolder + DataLoader of PIL transforms",
        2.0,
    ),
    "pipeline_fast_compiled/pipeline_fast": ("torch.compile's gain on labbook's step, fast setting", None),
    "pipeline_fast/bare_fast": ("labbook's train step against the same math bare, fast setting", None),
    "train_fast/pipeline_fast": (
        "train.train()'s own epochs (loss sums, a finite check a step, progress) against the bare "
        "train-step loop, same options",
        None,
    ),
    "train_fast_compiled/train_fast": ("train.train() with its `compile` option against without", None),
    "pipeline_vgg16/bare_vgg16": (
        "labbook's train step against a bare loop on a big network, where the step is compute",
        0.9,
    ),
    "streamed/resident": (
        "a split streamed from its file batch by batch against the same split resident on the device",
        0.9,
    ),
    "noop_rerun/first": ("what a rerun with nothing to do costs, as a share of the whole workflow", None),
}
# Targets on a number rather than a ratio (same source).
TARGETS = {"pipeline_fast images_per_s": 150_000, "workflow first run s": 60, "workflow no-op rerun s": 3}


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How big each section is: the GPU's sizes, or --small's for a CPU (seconds to minutes)."""

    images: int  # train_step: training images per epoch (capped by what the data has)
    batch: int
    rounds: int  # timed epochs per loop, after one untimed warm-up epoch
    workers: int  # DataLoader workers of the seed-style loop (train_bench's default)
    fast_images: int
    fast_batch: int
    fast_rounds: int
    train_epochs: int  # train.train()'s own path: epochs (the first one warms up / compiles)
    vgg_model: str
    vgg_images: int
    vgg_batch: int
    vgg_input: int
    vgg_rounds: int
    workflow: str  # "cifar10" (configs/cifar10.yaml's CIFARNet run) or "tiny" (tests' tiny config)
    estimates: dict  # section → seconds it is expected to take: what the budget checks


FULL = Sizes(
    images=50_000,
    batch=64,
    rounds=3,
    workers=2,
    fast_images=50_000,
    fast_batch=512,
    fast_rounds=5,
    train_epochs=4,
    vgg_model="vgg16",
    vgg_images=4096,
    vgg_batch=128,
    vgg_input=224,
    vgg_rounds=3,
    workflow="cifar10",
    estimates={
        "train_step": 90,
        "fast_compile": 150,
        "vgg16": 45,
        "streamed_vs_resident": 40,
        "workflow": 120,
    },
)
# On a CPU: the same code paths at toy sizes. VGG16 (138M parameters, 224 px) would take many
# minutes on two cores, so its section runs a stand-in model, and says so.
SMALL = Sizes(
    images=256,
    batch=32,
    rounds=2,
    workers=2,
    fast_images=256,
    fast_batch=128,
    fast_rounds=2,
    train_epochs=2,
    vgg_model="simplecnn",
    vgg_images=64,
    vgg_batch=32,
    vgg_input=48,
    vgg_rounds=1,
    workflow="tiny",
    estimates={"train_step": 15, "fast_compile": 100, "vgg16": 5, "streamed_vs_resident": 10, "workflow": 90},
)
DEMO_IMAGES = 10_000  # generated images when there is no CIFAR-10 copy (PNG writing is slow)


# ---------------------------------------------------------------- the budget
def run_sections(sections, budget_s: float, skip=(), clock=time.monotonic, on_done=None, spent_s=0.0):
    """Run (name, estimated seconds, fn(seconds left)) in order. A section starts only when its
    estimate fits in what is left of the budget, else it is recorded as skipped with the reason
    (a later, cheaper one may still fit); one that raises is recorded with its error, and the
    next goes on: one failure must not cost a GPU session its other figures. on_done(results)
    after each, so that the JSON on disk is always up to date. spent_s: of the budget, what went
    before (imports, setup)."""
    started = clock() - spent_s
    results = {}
    for name, estimate, fn in sections:
        left = budget_s - (clock() - started)
        if name in skip:
            results[name] = {"status": "skipped", "reason": "skipped with --skip"}
        elif estimate > left:
            results[name] = {
                "status": "skipped",
                "reason": f"budget: {max(left, 0):.0f} s of {budget_s:.0f} s left, "
                f"this section takes about {estimate:.0f} s",
            }
        else:
            section_start = clock()
            try:
                results[name] = {"status": "done", **fn(left)}
            except Exception as error:
                results[name] = {
                    "status": "error",
                    "error": f"{type(error).__name__}: {error}",
                    "traceback": traceback.format_exc()[-3000:],
                }
            results[name]["seconds"] = clock() - section_start
        results[name]["estimate_s"] = estimate
        if on_done:
            on_done(results)
    return results


def ratio(table: dict, name: str, quantity: str) -> dict:
    """The ratio "a/b": table[a][quantity] over table[b][quantity] (table: the section's `loops`
    or `runs`), with the two names it divides, what it stands for and its target (RATIOS)."""
    numerator, denominator = name.split("/")
    stands_for, target = RATIOS[name]
    return {
        "value": table[numerator][quantity] / table[denominator][quantity],
        "numerator": numerator,
        "denominator": denominator,
        "quantity": quantity,
        "stands_for": stands_for,
        "target": target,
    }


def ratios(table: dict, quantity: str, *names) -> dict:
    """The named ratios of those whose two numbers the table has."""
    return {name: ratio(table, name, quantity) for name in names if set(name.split("/")) <= set(table)}


# ---------------------------------------------------------------- data
class Data:
    """The images every section shares, loaded once: the CIFAR-10 JPEG copy's train/ folder
    (extracted from its tarball on first use) or generated demo images, decoded to uint8 arrays
    in the files' order (as train_bench does, with labbook's parallel decoder)."""

    def __init__(self, source, tmp: Path, demo_images: int):
        self.tmp, self.demo_images = tmp, demo_images
        self.tarball = None
        self.root = None  # the ImageFolder root holding train/ (and test/)
        if source is not None and Path(source).is_dir():
            self.root = Path(source)
        elif source is not None:
            self.tarball = Path(source)
        self.kind = "cifar10-jpeg" if source is not None else "demo"
        self._arrays = None
        self.extract_s = None

    def train_dir(self) -> Path:
        if self.tarball is not None and self.root is None:
            start = time.perf_counter()
            with tarfile.open(self.tarball) as tar:
                tar.extractall(self.tmp / "cifar10-jpeg", filter="data")
            self.extract_s = time.perf_counter() - start
            found = [p.parent for p in (self.tmp / "cifar10-jpeg").rglob("train") if p.is_dir()]
            self.root = min(found, key=lambda p: len(p.parts))  # the tarball's own train/
        if self.root is None:  # demo images, written as an ImageFolder for the seed-style loop
            self.root = self.tmp / "demo"
            train_bench.demo_imagefolder(self.root / "train", self.demo_images)
        return self.root / "train"

    def arrays(self, n: int) -> dict:
        """n training images (balanced over the classes, train_bench.pick_files), decoded."""
        if self._arrays is None or self._arrays["n_asked"] < n:
            classes, files = train_bench.pick_files(self.train_dir(), n)
            start = time.perf_counter()
            images, results = imagefolder.decode_all([p for p, _ in files], 32, "fixed", os.cpu_count())
            if any(reason for _, reason in results):
                raise ValueError(f"unreadable training images under {self.root}")
            labels = np.array([label for _, label in files], dtype=np.int64)
            mean, std = arrays.channel_stats(images)
            self._arrays = {
                "n_asked": n,
                "classes": classes,
                "files": files,
                "images": images,
                "labels": labels,
                "mean": mean,
                "std": std,
                "decode_s": time.perf_counter() - start,
            }
        a = self._arrays
        k = min(n, len(a["labels"]))
        return {**a, "files": a["files"][:k], "images": a["images"][:k], "labels": a["labels"][:k]}

    def describe(self, a: dict) -> dict:
        return {
            "source": self.kind,
            "root": str(self.root),
            "images": int(len(a["labels"])),
            "image_shape": list(a["images"].shape[1:]),
            "classes": len(a["classes"]),
            "extract_s": self.extract_s,
            "decode_s": a["decode_s"],
        }


# ---------------------------------------------------------------- timing and memory
def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _fresh_memory(device):
    """Start a section with the caching allocator emptied, so that its reserved peak is its own."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def timed_rates(loops: dict, rounds: int, device) -> dict:
    """train_bench.best_rates' method (one untimed warm-up epoch per loop, then `rounds` rounds
    that time one epoch of every loop in turn, each loop's best kept; turns spread drifts in the
    machine's load over all loops alike), keeping also what best_rates drops: the warm-up's
    seconds (with torch.compile: mostly compiling), every timed epoch and, on CUDA, the loop's
    memory peaks (allocated: its own tensors; reserved: the allocator's cache, which also holds
    what earlier loops of the section freed)."""
    cuda = device.type == "cuda"
    out = {}

    def timed(name, n, run_epoch):
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        _sync(device)
        start = time.perf_counter()
        run_epoch()
        _sync(device)
        seconds = time.perf_counter() - start
        if cuda:
            for key, peak in (
                ("peak_allocated_mib", torch.cuda.max_memory_allocated),
                ("peak_reserved_mib", torch.cuda.max_memory_reserved),
            ):
                out[name][key] = max(out[name][key] or 0, peak(device) / MIB)
        return seconds

    for name, (n, run_epoch) in loops.items():
        out[name] = {"images": n, "epoch_s": [], "peak_allocated_mib": None, "peak_reserved_mib": None}
        out[name]["warmup_s"] = timed(name, n, run_epoch)
    for _ in range(rounds):
        for name, (n, run_epoch) in loops.items():
            out[name]["epoch_s"].append(timed(name, n, run_epoch))
    for record in out.values():
        record["s_per_epoch"] = min(record["epoch_s"])
        record["images_per_s"] = record["images"] / record["s_per_epoch"]
    return out


def fresh_compile_caches(folder: Path) -> None:
    """Make the next torch.compile a cold one, as on a fresh machine: dynamo forgets what it
    compiled (it would reuse a graph for a second instance of the same network) and inductor and
    Triton get empty cache folders (their on-disk caches would turn a compile into a look-up)."""
    torch._dynamo.reset()
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder / "inductor")
    os.environ["TRITON_CACHE_DIR"] = str(folder / "triton")
    try:
        from torch._inductor.utils import clear_caches

        clear_caches()  # inductor's in-memory caches of the folder's contents
    except ImportError:
        pass


def section_memory(loops: dict, device) -> dict | None:
    if device.type != "cuda":
        return None
    return {
        name: {k: loop.get(k) for k in ("peak_allocated_mib", "peak_reserved_mib")}
        for name, loop in loops.items()
    }


# ---------------------------------------------------------------- sections
class Bench:
    def __init__(self, args, sizes: Sizes, device, tmp: Path):
        self.args, self.sizes, self.device, self.tmp = args, sizes, device, tmp
        self.skip = set(filter(None, args.skip.split(",")))
        self.small = sizes is SMALL
        self.images_cap = None if args.cifar10_jpeg else DEMO_IMAGES
        # demo images are generated once, as many as the biggest section takes
        self.data = Data(
            args.cifar10_jpeg, tmp, self.n(max(sizes.images, sizes.fast_images, sizes.vgg_images))
        )

    def n(self, wanted: int) -> int:
        return min(wanted, self.images_cap) if self.images_cap else wanted

    def where(self) -> dict:
        if self.device.type == "cuda":
            return {"device": f"cuda: {torch.cuda.get_device_name(self.device)}"}
        return {"device": f"{self.device.type} ({torch.get_num_threads()} threads)"}

    def options(self, **changes):
        """train_bench's options (CIFARNet, Adam 1e-3, fp32, translate 4 and flip) with changes."""
        base = {"model": "cifarnet", "optimizer": "adam", "lr": 1e-3, "batch_size": 64, "precision": "fp32"}
        return train.TrainOptions(**{**base, **changes})

    # ------------------------------------------------ 1. the train step, three ways
    def train_step(self, left_s):
        s = self.sizes
        a = self.data.arrays(self.n(s.images))
        opts = self.options(batch_size=s.batch)
        _fresh_memory(self.device)
        args = (a["images"], a["labels"], a["mean"], a["std"], opts, self.device, a["classes"])
        loops = {
            "pipeline": train_bench.pipeline(*args),
            "bare": train_bench.bare(*args),
            "seed_style": train_bench.seed_style(
                a["files"], a["classes"], a["mean"], a["std"], opts, self.device, s.workers
            ),
        }
        loops = timed_rates(loops, s.rounds, self.device)
        return {
            **self.where(),
            "what": "train_bench.py's three loops on the same images: labbook.train (uint8 on the device, "
            "augmentation there, train_step) / the same math as a bare loop / torchvision ImageFolder + "
            "DataLoader + PIL transforms",
            "data": self.data.describe(a),
            "sizes": {"images": len(a["labels"]), "batch_size": s.batch, "workers": s.workers},
            "options": {
                k: getattr(opts, k) for k in ("model", "optimizer", "precision", "crop_padding", "flip")
            },
            "repeats": {
                "warmup_epochs": 1,
                "timed_epochs": s.rounds,
                "kept": "best epoch per loop, in turns",
            },
            "loops": loops,
            "ratios": ratios(loops, "images_per_s", "pipeline/bare", "pipeline/seed_style"),
            "memory": section_memory(loops, self.device),
        }

    # ------------------------------------------------ 2. the fast setting, eager and compiled
    def fast_compile(self, left_s):
        started = time.perf_counter()
        s = self.sizes
        a = self.data.arrays(self.n(s.fast_images))
        fast = self.options(batch_size=s.fast_batch, precision="bf16", channels_last=True)
        _fresh_memory(self.device)
        fresh_compile_caches(self.tmp / "compile-direct")
        args = (a["images"], a["labels"], a["mean"], a["std"], fast, self.device, a["classes"])
        loops = {
            "pipeline_fast": train_bench.pipeline(*args),
            "pipeline_fast_compiled": train_bench.pipeline(*args, compile_model=True),
            "bare_fast": train_bench.bare(*args),
        }
        loops = timed_rates(loops, s.fast_rounds, self.device)
        eager, compiled = loops["pipeline_fast"], loops["pipeline_fast_compiled"]
        compile_s = {
            "direct": compiled["warmup_s"] - compiled["s_per_epoch"],
            "direct_less_eager_warmup": (compiled["warmup_s"] - compiled["s_per_epoch"])
            - (eager["warmup_s"] - eager["s_per_epoch"]),
            "how": "the compiled loop's warm-up epoch less its best epoch (first shapes compile there: "
            "the full batch and, where the batch does not divide the images, the last one); the second "
            "figure also takes off the eager loop's own warm-up excess (cuDNN autotuning, allocations)",
        }
        # what this section may still spend: later sections keep their estimates (a second cold
        # compile, train()'s own, is the least important figure here)
        later = SECTIONS[SECTIONS.index("fast_compile") + 1 :]
        spare_s = (
            left_s
            - (time.perf_counter() - started)
            - sum(s.estimates[k] for k in later if k not in self.skip)
        )
        own = self.train_own_path(a, fast, loops, spare_s)
        n = len(a["labels"])
        return {
            **self.where(),
            "what": "the fast setting: batch 512, bf16 autocast, channels_last (a smaller batch at --small)",
            "data": self.data.describe(a),
            "sizes": {"images": n, "batch_size": s.fast_batch},
            "options": {k: getattr(fast, k) for k in ("model", "optimizer", "precision", "channels_last")},
            "repeats": {"warmup_epochs": 1, "timed_epochs": s.fast_rounds, "train_epochs": s.train_epochs},
            "compile": {
                "call": "torch.compile(model, dynamic=False)",
                "mode": "default",
                "caches": "cold: each compile (this loop's, train()'s) starts after torch._dynamo.reset() "
                "with empty inductor and Triton cache folders",
                "seconds": compile_s,
            },
            "train_own_path": own,
            "loops": loops,
            "ratios": ratios(
                loops,
                "images_per_s",
                "pipeline_fast_compiled/pipeline_fast",
                "pipeline_fast/bare_fast",
                "train_fast/pipeline_fast",
                "train_fast_compiled/train_fast",
            ),
            "targets": {
                "pipeline_fast images_per_s": {
                    "value": eager["images_per_s"],
                    "target": TARGETS["pipeline_fast images_per_s"],
                    "applies": not self.small,
                }
            },
            "memory": section_memory(loops, self.device),
        }

    def train_own_path(self, a, fast, loops, spare_s) -> dict:
        """train.train() itself on the same images in the fast setting, eager and, where
        TrainOptions has a `compile` field, compiled: its per-epoch img/s (train_epoch's own
        timing) after the first epoch, which warms up (and compiles). Adds loops in place."""
        fields = {f.name: f for f in dataclasses.fields(train.TrainOptions)}
        n = len(a["labels"])
        held = max(1, min(2000, n // 4))
        data_dir = self.tmp / "train-own-data"
        if not (data_dir / "manifest.json").exists():
            # val and test are the first training images: only the training rate is measured here
            splits = {
                "train": (a["images"], a["labels"]),
                "val": (a["images"][:held], a["labels"][:held]),
                "test": (a["images"][:held], a["labels"][:held]),
            }
            manifest = arrays.build_manifest("gpu-bench", a["classes"], splits, "gpu-bench")
            arrays.write_dataset(data_dir, manifest, splits)
        own = {
            "how": f"train.train() on a data folder of these {n} training images ({held} of them "
            "also as val and test: their accuracies mean nothing), epochs timed by train_epoch; "
            "the first epoch warms up (compiles), the best later one is the rate",
            "epochs": self.sizes.train_epochs,
            "compile_option": "compile" in fields,
        }
        runs = [("train_fast", {}), ("train_fast_compiled", {"compile": True})]
        if "compile" not in fields:
            runs.pop()
            own["compiled"] = "not run: TrainOptions has no `compile` field in this checkout"
        started = time.perf_counter()
        for name, changes in runs:
            # a cold compile takes about as long as the direct loop's did, the eager run's epochs on top
            eager_s = loops["train_fast"]["train_call_s"] if "train_fast" in loops else 0
            needed = loops["pipeline_fast_compiled"]["warmup_s"] + eager_s
            if changes and spare_s - (time.perf_counter() - started) < needed:
                own["compiled"] = (
                    f"skipped: about {needed:.0f} s needed, {spare_s - (time.perf_counter() - started):.0f} s "
                    "to spare before the later sections' estimates"
                )
                continue
            opts = dataclasses.replace(fast, epochs=self.sizes.train_epochs, log_every=10**6, **changes)
            _fresh_memory(self.device)
            fresh_compile_caches(self.tmp / f"compile-{name}")
            lines = []
            start = time.perf_counter()
            metrics = train.train(opts, data_dir, self.tmp / name, seed=0, log=lines.append)
            history = metrics["history"]
            later = history[1:] or history
            best = min(later, key=lambda r: r["train_seconds"])
            loops[name] = {
                "images": n,
                "warmup_s": history[0]["train_seconds"],
                "epoch_s": [r["train_seconds"] for r in later],
                "s_per_epoch": best["train_seconds"],
                "images_per_s": n / best["train_seconds"],
                "peak_allocated_mib": (metrics.get("gpu") or {}).get("peak_allocated_mib"),
                "peak_reserved_mib": (metrics.get("gpu") or {}).get("peak_reserved_mib"),
                "train_call_s": time.perf_counter() - start,
                "compile_seconds": metrics.get("compile_seconds"),  # train.py's own figure, if it has one
                "precision": metrics.get("precision"),
                "log_tail": lines[-3:],
            }
        return own

    # ------------------------------------------------ 3. VGG16 at 224 px in bf16
    def vgg16(self, left_s):
        s = self.sizes
        a = self.data.arrays(self.n(s.vgg_images))
        opts = self.options(
            model=s.vgg_model,
            lr=1e-4,
            batch_size=s.vgg_batch,
            precision="bf16",
            channels_last=True,
            input_size=s.vgg_input,
        )
        _fresh_memory(self.device)
        args = (a["images"], a["labels"], a["mean"], a["std"], opts, self.device, a["classes"])
        loops = {"pipeline_vgg16": train_bench.pipeline(*args), "bare_vgg16": train_bench.bare(*args)}
        loops = timed_rates(loops, s.vgg_rounds, self.device)
        out = {
            **self.where(),
            "what": f"{s.vgg_model} from scratch, bf16 autocast, channels_last, the stored 32 px images "
            f"upsampled to {s.vgg_input} px on the device (input_size), labbook's step against a bare loop",
            "data": self.data.describe(a),
            "sizes": {"images": len(a["labels"]), "batch_size": s.vgg_batch, "input_size": s.vgg_input},
            "model": s.vgg_model,
            "repeats": {"warmup_epochs": 1, "timed_epochs": s.vgg_rounds},
            "loops": loops,
            "ratios": ratios(loops, "images_per_s", "pipeline_vgg16/bare_vgg16"),
            "memory": section_memory(loops, self.device),
        }
        if self.small:
            out["stand_in"] = (
                f"--small: {s.vgg_model} at {s.vgg_input} px stands in for VGG16 at 224 px (138M "
                "parameters: minutes a step on a CPU); the same code runs VGG16 at full size"
            )
        return out

    # ------------------------------------------------ 4. streamed against resident
    def streamed_vs_resident(self, left_s):
        s = self.sizes
        a = self.data.arrays(self.n(s.fast_images))
        fast = self.options(batch_size=s.fast_batch, precision="bf16", channels_last=True)
        _fresh_memory(self.device)
        args = (a["images"], a["labels"], a["mean"], a["std"], fast, self.device, a["classes"])
        loops = timed_rates(train_bench.placements(*args, self.tmp), s.fast_rounds, self.device)
        return {
            **self.where(),
            "what": "train.train's epochs (SplitData.epoch + train_step), fast setting, on the same images: "
            "the split resident on the device against streamed from its .npy file (page cache warm after "
            "the untimed epoch)",
            "data": self.data.describe(a),
            "sizes": {"images": len(a["labels"]), "batch_size": s.fast_batch},
            "repeats": {"warmup_epochs": 1, "timed_epochs": s.fast_rounds},
            "loops": loops,
            "ratios": ratios(loops, "images_per_s", "streamed/resident"),
            "memory": section_memory(loops, self.device),
        }

    # ------------------------------------------------ 5. the whole workflow, then a no-op rerun
    def workflow_config(self) -> dict:
        import yaml
        from builders import tiny_config

        if self.sizes.workflow == "tiny" or self.data.kind != "cifar10-jpeg":
            config = tiny_config()
            config["experiment"] = "gpu-bench-tiny"
            config["runs"] = {"cifarnet": config["runs"]["cifarnet"]}  # VGG16 would take minutes on a CPU
            config["train"]["device"] = "auto"
            if self.sizes.workflow != "tiny":  # a GPU without the JPEG copy: demo data of CIFAR-10's size
                config["dataset"] = {
                    "name": "shapes-bench",
                    "kind": "demo",
                    "train_size": 50_000,
                    "test_size": 10_000,
                    "seed": 0,
                    "image_size": 32,
                }
                config["train"].update(deterministic=False, precision="auto", epochs=30, batch_size=512)
            return config
        config = yaml.safe_load((REPO / "configs" / "cifar10.yaml").read_text())
        self.data.train_dir()  # extracts the tarball if nothing did yet
        config["experiment"] = "gpu-bench-cifar10"
        config["title"] = "GPU bench: configs/cifar10.yaml's CIFARNet run on the CIFAR-10 JPEG copy"
        config["objective"] = {
            "goal": "Time the whole workflow: data step, one CIFARNet training, analysis, report.",
            "hypothesis": "It takes under a minute on one GPU, and a rerun does nothing.",
        }
        config["dataset"] = {
            "name": "cifar10-jpeg",
            "kind": "imagefolder",
            "root": str(self.data.root),
            "image_size": 32,
        }
        # VGG16's ImageNet weights need a download, which the GPU machine cannot make.
        run = {k: v for k, v in config["runs"]["cifarnet"].items() if k != "beats"}
        config["runs"] = {"cifarnet": {**run, "seeds": [0]}}
        config.pop("baseline", None)
        return config

    def workflow(self, left_s):
        import yaml
        from builders import copy_workflow

        _fresh_memory(self.device)  # the training job gets the GPU's memory, not this process's cache

        config = self.workflow_config()
        work = copy_workflow(self.tmp / "workflow")
        (work / "gpu-bench.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        # The rules run `python` from PATH: this interpreter, whatever it is called here.
        shim = self.tmp / "bin"
        shim.mkdir(exist_ok=True)
        (shim / "python").write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
        (shim / "python").chmod(0o755)
        env = {
            **os.environ,
            "PATH": os.pathsep.join([str(shim), str(Path(sys.executable).parent), os.environ["PATH"]]),
        }
        for name in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR"):  # this run's throwaway caches
            env.pop(name, None)
        cores = os.cpu_count() or 1
        command = [sys.executable, "-m", "snakemake", "--cores", str(cores), "--configfile", "gpu-bench.yaml"]
        runs = {}
        # The first run gets what is left of the budget (at least a minute); the rerun a minute.
        for name, timeout in (("first", max(60.0, left_s)), ("noop_rerun", 60.0)):
            start = time.perf_counter()
            try:
                done = subprocess.run(
                    command, cwd=work, env=env, capture_output=True, text=True, timeout=timeout
                )
                output, returncode = done.stdout + done.stderr, done.returncode
            except subprocess.TimeoutExpired as error:
                output, returncode = f"{error.stdout or ''}{error.stderr or ''}", None
            seconds = time.perf_counter() - start
            finished = re.findall(r"Finished jobid: \d+ \(Rule: (\w+)\)", output)
            runs[name] = {
                "seconds": seconds,
                "returncode": returncode,
                "timed_out": returncode is None,
                "jobs_finished": len(finished),
                "rules": finished,
                "nothing_to_be_done": "Nothing to be done" in output,
                "output_tail": output[-1500:] if returncode != 0 or name == "noop_rerun" else output[-300:],
            }
            if returncode != 0:
                break
        out = {
            **self.where(),
            "what": "snakemake in a fresh copy of the workflow (tests/builders.py's copy_workflow), the first "
            "run timed from the command's start to its end (DAG, data step, training, analysis, report, "
            "lab book), then the same command again, which must have nothing to do",
            "command": "python " + " ".join(command[1:]),
            "cores": cores,
            "config": {k: config[k] for k in ("experiment", "dataset", "train", "runs")},
            "sizes": {"dataset": config["dataset"], "runs": list(config["runs"])},
            "repeats": {"first": 1, "noop_rerun": 1},
            "runs": runs,
        }
        out["ratios"] = ratios(runs, "seconds", "noop_rerun/first")
        out["targets"] = {
            "first run s": {"value": runs["first"]["seconds"], "target_max": TARGETS["workflow first run s"]},
            "no-op rerun s": {
                "value": runs.get("noop_rerun", {}).get("seconds"),
                "target_max": TARGETS["workflow no-op rerun s"],
            },
            "applies": not self.small,
        }
        results = work / "results" / config["experiment"]
        out["steps_s"] = {}  # each job's seconds, from Snakemake's benchmark: files (the data step's too)
        for tsv in sorted((work / "results").rglob("*.tsv")):
            lines = tsv.read_text().splitlines()
            if len(lines) > 1 and lines[0].startswith("s\t"):  # header, then s, h:m:s, max_rss, ...
                out["steps_s"][str(tsv.relative_to(work / "results"))] = float(lines[1].split("\t")[0])
        metrics_file = results / "runs" / "cifarnet" / "seed0" / "metrics.json"
        if metrics_file.exists():
            m = json.loads(metrics_file.read_text())
            out["training"] = {
                k: m.get(k)
                for k in (
                    "device",
                    "device_name",
                    "precision",
                    "train_images",
                    "images_per_s",
                    "train_seconds",
                    "test_acc",
                    "gpu",
                )
            }
            out["training"]["epochs"] = len(m.get("history", []))
        out["memory"] = (
            {
                "train job": {
                    k: (m.get("gpu") or {}).get(k) for k in ("peak_allocated_mib", "peak_reserved_mib")
                }
            }
            if self.device.type == "cuda" and metrics_file.exists()
            else None
        )
        rerun = runs.get("noop_rerun")
        if returncode != 0:  # what was measured stays in the JSON, marked as an error
            out["status"] = "error"
            out["error"] = f"snakemake ({name}) ended with {returncode}; see runs.{name}.output_tail"
        elif rerun["jobs_finished"] or not rerun["nothing_to_be_done"]:
            out["status"] = "error"
            out["error"] = (
                f"the rerun was not a no-op: it ran {rerun['rules']}; see runs.noop_rerun.output_tail"
            )
        return out


def memory_section(results: dict, device) -> dict:
    """6. The memory peaks the sections recorded, gathered; on a CPU null, with a note."""
    if device.type != "cuda":
        return {
            "status": "done",
            "value": None,
            "note": f"no CUDA device ({device.type}): PyTorch keeps no memory peaks",
        }
    peaks = {name: r.get("memory") for name, r in results.items() if r.get("status") == "done"}
    return {
        "status": "done",
        "how": "torch.cuda.max_memory_allocated / max_memory_reserved in MiB, reset before each timed "
        "epoch (a loop's peak is its highest epoch); the workflow's from its training job's metrics.json",
        "total_mib": torch.cuda.get_device_properties(device).total_memory / MIB,
        "value": peaks,
    }


# ---------------------------------------------------------------- the summary
def summary(report: dict) -> list[str]:
    sections = report["sections"]
    lines = [
        f"{report['meta']['device']}, {'small' if report['meta']['small'] else 'full'} sizes, "
        f"{report['meta']['total_s']:.0f} s of a {report['meta']['budget_s']:.0f} s budget"
    ]

    def rates(r, names):
        return ", ".join(f"{n} {r['loops'][n]['images_per_s']:.0f}" for n in names if n in r["loops"])

    def said(r):
        out = []
        for name, q in r.get("ratios", {}).items():
            target = f" (target ≥ {q['target']})" if q.get("target") else ""
            out.append(f"{name} {q['value']:.2f}×{target}")
        return "; ".join(out)

    for name in SECTIONS:
        r = sections[name]
        if r["status"] != "done":
            lines.append(f"{name}: {r['status']}: {r.get('reason') or r.get('error')}")
            continue
        if name == "workflow":
            first, rerun = r["runs"]["first"], r["runs"].get("noop_rerun", {})
            lines.append(
                f"workflow: first run {first['seconds']:.1f} s ({first['jobs_finished']} jobs), no-op rerun "
                f"{rerun.get('seconds', float('nan')):.1f} s ({rerun.get('jobs_finished')} jobs, nothing to be "
                f"done: {rerun.get('nothing_to_be_done')}); {said(r)}"
            )
            continue
        lines.append(f"{name} (img/s): {rates(r, r['loops'])}")
        lines.append(f"  {said(r)}")
        if name == "fast_compile":
            lines.append(
                f"  compile: {r['compile']['seconds']['direct']:.1f} s (torch.compile, warm-up less best epoch)"
            )
    memory = sections["memory"]
    lines.append(f"memory: {memory.get('note') or 'peaks per section in the JSON'}")
    return lines


# ---------------------------------------------------------------- main
def find_tarball():
    return next((str(p) for p in DEFAULT_TARBALLS if p.exists()), None)


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the JSON file to write")
    parser.add_argument("--small", action="store_true", help="CPU sizes (automatic without CUDA)")
    parser.add_argument("--budget-s", type=float, default=480, help="seconds for the whole run (default 480)")
    parser.add_argument(
        "--cifar10-jpeg",
        default="auto",
        help="the CIFAR-10 JPEG copy: its extracted root (holding train/) or its .tar.gz; "
        "'auto': the shared tarball where present; 'none': generated demo images",
    )
    parser.add_argument(
        "--skip", default="", help=f"comma-separated sections not to run: {','.join(SECTIONS)}"
    )
    parser.add_argument("--tmp", type=Path, default=None, help="where the temporary folder goes")
    parser.add_argument(
        "--keep-tmp", action="store_true", help="keep the temporary folder (data, workflow copy)"
    )
    args = parser.parse_args(argv)
    if args.cifar10_jpeg == "auto":
        args.cifar10_jpeg = find_tarball()
    elif args.cifar10_jpeg == "none":
        args.cifar10_jpeg = None
    unknown = set(filter(None, args.skip.split(","))) - set(SECTIONS)
    if unknown:
        parser.error(f"--skip: unknown sections {sorted(unknown)}; known: {', '.join(SECTIONS)}")
    return args


def write_json(path: Path, report: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(path.suffix + ".partial")
    partial.write_text(json.dumps(report, indent=2, default=str))
    partial.replace(path)


def main(argv=None) -> dict:
    started = time.monotonic()
    args = parse(argv)
    device = train.choose_device("auto")
    sizes = SMALL if args.small or device.type != "cuda" else FULL
    train.set_deterministic(False)  # cudnn.benchmark on, as train.train() sets it for every loop
    tmp = Path(tempfile.mkdtemp(prefix="labbook-gpu-bench-", dir=args.tmp))
    bench = Bench(args, sizes, device, tmp)
    fields = {f.name for f in dataclasses.fields(train.TrainOptions)}
    report = {
        "meta": {
            "argv": sys.argv[1:] if argv is None else list(argv),
            **bench.where(),
            "small": sizes is SMALL,
            "sizes": dataclasses.asdict(sizes),
            "budget_s": args.budget_s,
            "data": bench.data.kind,
            "data_given": args.cifar10_jpeg,
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "cpu_count": os.cpu_count(),
            "train_options_have_compile": "compile" in fields,
            "commit": _git("rev-parse", "HEAD"),
            "dirty_files": _git("status", "--short").splitlines(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "total_s": None,
            "targets_from": "shared/docs/machine.md (an H200/H100 at full size, CIFAR-10 JPEG copy)",
        },
        "sections": {},
        "skipped": {},
    }

    def on_done(results):
        report["sections"].update(results)
        report["meta"]["total_s"] = time.monotonic() - started
        write_json(args.out, report)

    sections = [(name, sizes.estimates[name], getattr(bench, name)) for name in SECTIONS]
    skip = set(filter(None, args.skip.split(",")))
    try:  # the budget counts from the start of the run: setup and imports come out of it too
        results = run_sections(
            sections, args.budget_s, skip, on_done=on_done, spent_s=time.monotonic() - started
        )
    finally:
        if not args.keep_tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    report["sections"] = {**results, "memory": memory_section(results, device)}
    report["skipped"] = {k: v["reason"] for k, v in results.items() if v["status"] == "skipped"}
    report["meta"]["total_s"] = time.monotonic() - started
    report["summary"] = summary(report)
    write_json(args.out, report)
    print("\n".join(report["summary"]))
    print(f"JSON: {args.out}" + (f"   temporary files kept in {tmp}" if args.keep_tmp else ""))
    return report


def _git(*args) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


if __name__ == "__main__":
    main()
