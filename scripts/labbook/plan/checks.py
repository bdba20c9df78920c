"""What the schema cannot see, checked before any job runs: a ValueError naming the key."""

import math
import os
import re

from . import datasets
from .options import looks_like_path

# A run is a folder (runs/<run>/) and a log file name: path-safe and well below the 255 bytes a
# file name may have. A config's run names are held to 64 characters, like experiment names; a
# sweep's expanded names (<run>-<option><value>…) to 128.
RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
CONFIG_RUN_NAME_LENGTH = 64
RUN_NAME_LENGTH = 128
# Snakemake takes a wildcard value ending in one substring repeated 20 times for a cyclic
# dependency (PeriodicWildcardError): refuse such a name before it says so, or worse.
PERIODIC = re.compile(r"(.+)\1{19,}$")

# Share of this machine's memory the decoded images may take: data prep holds them twice
# (decoded chunks, then one array) and training once more.
MEMORY_SHARE = 0.5


def memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_config(config: dict, memory: int | None = None, image_count: int | None = None) -> None:
    """One class (100% accuracy of nothing), a top_k beyond the classes, an image_size whose
    arrays would not fit in memory. image_count: the dataset's images (train and test), when the
    caller has counted them already (datasets.size, which this uses otherwise)."""
    spec = config["dataset"]
    datasets.kind_of(spec).check(datasets.options(spec))
    classes = datasets.known_classes(spec)
    if classes is not None and classes < 2:
        raise ValueError(
            f"dataset.root: {spec['root']}/train has {classes} class folder(s); "
            "a classifier needs at least two classes (one would score 100% accuracy)"
        )
    top_k = config.get("analysis", {}).get("top_k")  # the plan fills in the default
    if classes is not None and top_k is not None and top_k > classes:
        raise ValueError(
            f"analysis.top_k: {top_k} is more than the dataset's {classes} classes "
            f"(top-{top_k} accuracy would be 100% by definition); set it to {classes} or less"
        )
    size, val_size = spec.get("image_size"), datasets.options(spec).get("val_size")
    if (size and image_count is None) or isinstance(val_size, int):
        train, test, _ = datasets.size(spec)
        image_count = train + test if image_count is None else image_count
        if isinstance(val_size, int) and 0 < train <= val_size:
            raise ValueError(
                f"dataset.val_size: {val_size} validation images cannot come from {train} training "
                "images; give fewer (or a fraction such as 0.1)"
            )
    count = image_count if size else None
    memory = memory or memory_bytes()
    if count and memory and count * size * size * 3 > MEMORY_SHARE * memory:
        raise ValueError(
            f"dataset.image_size: {size} makes {count} images take {count * size * size * 3 / 2**30:.1f} GiB "
            f"as uint8 arrays, more than {MEMORY_SHARE:.0%} of this machine's {memory / 2**30:.0f} GiB; "
            "choose a smaller image_size"
        )


def check_finite(values, key: str = "") -> None:
    """NaN or infinity anywhere a config takes a number (YAML's .nan, .inf) is an error naming
    the key: no learning rate, target or size means anything as either."""
    if isinstance(values, dict):
        for name, value in values.items():
            check_finite(value, f"{key}.{name}" if key else str(name))
    elif isinstance(values, list):
        for index, value in enumerate(values):
            check_finite(value, f"{key}[{index}]")
    elif isinstance(values, float) and not math.isfinite(values):
        raise ValueError(f"{key}: {values} is not a finite number")


def check_run_names(names, longest: int = RUN_NAME_LENGTH) -> None:
    for name in names:
        if not RUN_NAME.match(name) or len(name) > longest:
            raise ValueError(
                f"runs.{name[:80]}: a run name is a folder name: letters, digits, '_', '.', '-', "
                f"at most {longest} characters (this one has {len(name)})"
            )
        if PERIODIC.search(name):
            raise ValueError(
                f"runs.{name}: ends in one part repeated 20 times or more, which Snakemake takes for "
                "a cyclic dependency (PeriodicWildcardError); rename the run"
            )


def check_run_options(run: str, options) -> None:
    """What a run's training options cannot do here, known before any job: fp16 needs CUDA, a
    weights file must be there. options: its TrainOptions."""
    if options.precision == "fp16" and options.device in ("cpu", "mps"):
        raise ValueError(
            f"runs.{run}.precision: fp16 needs a CUDA device, and device is {options.device}; "
            "use bf16 or fp32"
        )
    if looks_like_path(options.weights) and not os.path.isfile(options.weights):
        raise ValueError(f"runs.{run}.weights: {options.weights} is not a file")


def claim_of(beats) -> dict | None:
    """A run's `beats:` as {"run", "margin"}: a run name alone claims any margin above 0."""
    if beats is None:
        return None
    return {"run": beats, "margin": 0.0} if isinstance(beats, str) else {"margin": 0.0, **beats}


def check_comparisons(config: dict, expanded: dict) -> None:
    """`baseline:` and every run's `beats:` name a run of this config (a sweep's combinations by
    their expanded names), and no run claims to beat itself."""
    names = ", ".join(expanded)
    baseline = config.get("baseline")
    if baseline is not None and baseline not in expanded:
        raise ValueError(f"baseline: {baseline!r} is not a run of this config (runs: {names})")
    for run, spec in expanded.items():
        claim = claim_of(spec.get("beats"))
        if claim is None:
            continue
        if claim["run"] not in expanded:
            raise ValueError(
                f"runs.{run}.beats: {claim['run']!r} is not a run of this config (runs: {names})"
            )
        if claim["run"] == run:
            raise ValueError(f"runs.{run}.beats: a run cannot claim to beat itself")
