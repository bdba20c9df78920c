"""What each step asks a cluster for: wall time (`runtime`, minutes) and memory (`mem_mb`, MB).

The rules declare these as resources, so the Slurm executor submits with `--time` and `--mem`
instead of the partition's defaults, which may kill a long training. Estimated from the config
alone, when Snakemake builds the job graph (standard library only: this runs in Snakemake's
own Python), deliberately on the generous side:

- images: the dataset's sizes, from its kind (plan/datasets.py), `train_subset` applied;
- training time: FLOPs per image from the model table below (forward ×3 for a training step,
  ×1 for evaluation; area scaling with `input_size`) over an assumed sustained rate, 4 TFLOP/s
  on a GPU (a T4 manages about that in fp32; newer GPUs are faster) or 10 GFLOP/s on a CPU
  (`device: cpu`), and no faster than 10,000 (GPU) or 100 (CPU) images/s, whatever the FLOPs
  (small models are bound by per-batch overheads: CIFARNet trained 66 images/s on 2 busy
  cores); that time doubled, plus 10 minutes for start-up, data loading and saving; rounded up
  to 5 minutes;
- memory: a base for Python, torch and the CUDA context, three copies of the image arrays
  (file, decoded array, tensor; a data step writing chunk by chunk needs a fixed amount instead); for training, per process, the base and four copies of the
  weights (weights, gradients, two optimizer moments, also what a checkpoint write holds on the
  host), and the images only where they stay in host memory (resident on a CPU).

A run overrides either with `runtime:` (minutes) and `mem_mb:` in its config entry; a rule's
values for all its jobs with the profile's `set-resources:`. The rules multiply both by the
attempt number, so a job killed at its limit asks for twice as much when Snakemake retries it
(training then resumes from its last checkpoint).
"""

import math

from . import datasets
from .images import image_paths
from .kinds.imagefolder import DECODE_IMAGES_PER_S

# Per model: forward GFLOPs of one 32×32 image in the layers whose cost grows with the image's
# area (convolutions), in those that do not (classifier after adaptive pooling), and millions of
# parameters (10 classes). Counted from models.py; tests/unit/test_plan_limits.py recounts them.
MODELS = {
    "simplecnn": {"area_gflops": 0.0032, "fixed_gflops": 0.0, "parameters_m": 0.0054},
    "cifarnet": {"area_gflops": 0.0246, "fixed_gflops": 0.0001, "parameters_m": 0.146},
    "vgg16": {"area_gflops": 0.627, "fixed_gflops": 0.239, "parameters_m": 134.3},
}
# Any other model (torchvision's others, a user's file) is estimated as VGG16, the heaviest
# common one; a run whose model is heavier sets `runtime:` and `mem_mb:` itself.
OTHER_MODEL = MODELS["vgg16"]
RATE_GFLOPS = {"gpu": 4000.0, "cpu": 10.0}
MAX_IMAGES_PER_S = {"gpu": 10000.0, "cpu": 100.0}
SAFETY = 2.0  # the estimate's margin: slower GPUs, shared nodes, slow filesystems
START_MINUTES = 10  # kernel start, imports, data loading, the final evaluation and saves
BASE_MB = {"train": 4000, "prepare_data": 2000, "analyze": 2000, "report": 2000}
# A data step writing chunk by chunk (a kind that `streams`): bench/data_rss.py measured a 157 MB
# peak (317 MB with its two decoding processes) for a 2.17 GB split; this leaves room for more.
STREAMED_DATA_MB = 1000


def _round_up(value: float, step: int) -> int:
    return int(math.ceil(value / step) * step)


def _images_mb(count: int, side: int) -> float:
    return count * side * side * 3 / 1e6  # uint8 RGB


def epoch_seconds(options: dict, size: tuple) -> float:
    """The assumed time of one epoch (training and test evaluation), before the safety margin."""
    train_images, test_images, side = size
    if options.get("train_subset"):
        train_images = min(train_images, options["train_subset"])
    model = MODELS.get(options["model"], OTHER_MODEL)
    input_side = options.get("input_size") or side
    forward = model["area_gflops"] * (input_side / 32) ** 2 + model["fixed_gflops"]
    kind = "cpu" if options.get("device") == "cpu" else "gpu"
    return max(
        (3 * forward * train_images + forward * test_images) / RATE_GFLOPS[kind],
        (train_images + test_images) / MAX_IMAGES_PER_S[kind],
    )


def train(options: dict, spec: dict, overrides: dict, size=None) -> dict:
    """{"runtime": minutes, "mem_mb": MB} of one training job. options: the run's training
    options; overrides: its config entry, whose `runtime`/`mem_mb` replace the estimate."""
    size = size or datasets.size(spec)
    train_images, test_images, side = size
    minutes = START_MINUTES + SAFETY * options["epochs"] * epoch_seconds(options, size) / 60
    processes = options.get("gpus", 1)  # each with its own Python, torch, CUDA context and weights
    parameters_m = MODELS.get(options["model"], OTHER_MODEL)["parameters_m"]
    memory = processes * (BASE_MB["train"] + 4 * parameters_m * 4)  # weights, gradients, two moments
    # Host memory holds the splits only when they are resident on a CPU (one copy per process;
    # `auto` keeps them resident only within a quarter of what the job may use): on a GPU they
    # are loaded in 64 MiB chunks, streamed splits a few batches at a time.
    if options.get("device") == "cpu" and options.get("data_placement", "auto") == "resident":
        memory += processes * _images_mb(train_images + test_images, side)
    return {
        "runtime": overrides.get("runtime") or _round_up(minutes, 5),
        "mem_mb": overrides.get("mem_mb") or _round_up(memory, 1000),
    }


def prepare_data(spec: dict, threads: int, size=None) -> dict:
    """The data step: what its kind costs (a download, decoding every image), then arrays."""
    size = size or datasets.size(spec)
    train_images, test_images, side = size
    kind = datasets.kind_of(spec)
    minutes = START_MINUTES + SAFETY * kind.prepare_minutes(datasets.options(spec), size, threads)
    if kind.streams:  # chunks of 16 MB, two per decoding process in flight, and their labels
        memory = BASE_MB["prepare_data"] + STREAMED_DATA_MB + 8 * (train_images + test_images) / 1e6
    else:  # the loader's arrays, their file and a copy
        memory = BASE_MB["prepare_data"] + 3 * _images_mb(train_images + test_images, side)
    return {"runtime": _round_up(minutes, 5), "mem_mb": _round_up(memory, 1000)}


def analyze(spec: dict, size=None) -> dict:
    """One analysis: the test split's images and predictions, metrics and four figures."""
    _, test_images, side = size or datasets.size(spec)
    memory = BASE_MB["analyze"] + 3 * _images_mb(test_images, side)
    return {"runtime": START_MINUTES + 10, "mem_mb": _round_up(memory, 1000)}


def report(spec: dict, size=None) -> dict:
    """The report: reads the training split (for its sample grid) and every run's records."""
    train_images, _, side = size or datasets.size(spec)
    memory = BASE_MB["report"] + 3 * _images_mb(train_images, side)
    return {"runtime": START_MINUTES + 20, "mem_mb": _round_up(memory, 1000)}


def predict(images, side: int, threads: int) -> dict:
    """Classifying new images (config `predict: images:`): decoding them as the data step does,
    one forward pass each. The model is chosen only after training: the largest one's cost."""
    try:
        count = len(image_paths(images))
    except (ValueError, OSError):  # none there yet: the step reports it
        count = 0
    forward = max(m["area_gflops"] * (side / 32) ** 2 + m["fixed_gflops"] for m in MODELS.values())
    seconds = count / (DECODE_IMAGES_PER_S * max(threads, 1)) + count * forward / RATE_GFLOPS["gpu"]
    memory = BASE_MB["train"] + 3 * _images_mb(count, side)
    memory += 4 * max(m["parameters_m"] for m in MODELS.values())  # float32 weights
    return {
        "runtime": _round_up(START_MINUTES + SAFETY * seconds / 60, 5),
        "mem_mb": _round_up(memory, 1000),
    }


def job(step: str, spec: dict, size: tuple, threads: int = 1, options=None, run=None, images=None) -> dict:
    """The limits of one job of a rule: train (options: its training options, run: its config
    entry), prepare_data, analyze, report, index (the lab book page: small and quick), or predict
    (images: the config's `predict: images:`)."""
    if step == "train":
        return train(options, spec, run, size)
    if step == "predict":
        return predict(images, size[2], threads)
    if step == "prepare_data":
        return prepare_data(spec, threads, size)
    if step == "analyze":
        return analyze(spec, size)
    if step == "report":
        return report(spec, size)
    if step == "index":
        return {"runtime": START_MINUTES, "mem_mb": BASE_MB["report"]}
    raise ValueError(f"no limits for step {step!r}")
