"""Training options: the one place each option, its default, its allowed values and its help live.

Configs state only what they change; `TrainOptions.from_dict` checks a config's values (the
workflow calls it on every run before any job starts), and `options_table()` is the README's
table of options (a test keeps the two equal). Only the standard library here: the workflow
imports this module in Snakemake's own Python, which need not have torch.
"""

import dataclasses
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

# `model: nets/mine.py:Net` names a class or function in a file of the user's.
DEVICE = r"^(auto|cpu|mps|cuda(:[0-9]+)?)$"
USER_MODEL = re.compile(r"^(?P<path>.+\.py):(?P<name>[A-Za-z_][A-Za-z0-9_]*)$")


def option(default, help, **checks):
    """A field with its help text and checks: choices, pattern, minimum, maximum, above (> x)."""
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata={"help": help, **checks})
    return field(default=default, metadata={"help": help, **checks})


class Options:
    """Options of one kind of step: `from_dict` checks a config's values over the defaults."""

    WHAT = "option"  # how an error names them

    @classmethod
    def from_dict(cls, values: dict, where: str = ""):
        """Validated options over the defaults; an unknown key, a wrong type, a value out of range
        is an error naming the key (prefixed by `where`, e.g. `runs.vgg16.`)."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ValueError(f"unknown {cls.WHAT} '{where}{unknown[0]}'; known: {sorted(fields)}")
        for key, value in values.items():
            check_value(f"{cls.WHAT} {where}{key}", value, fields[key].type, fields[key].metadata)
        return cls(**{k: float(v) if fields[k].type is float else v for k, v in values.items()})

    @classmethod
    def defaults(cls) -> dict:
        return dataclasses.asdict(cls())

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class TrainOptions(Options):
    """Every knob of one training job. Field names are the config keys."""

    WHAT = "training option"

    model: str = option(
        "cifarnet",
        "`simplecnn`, `cifarnet`, any torchvision classification model (`resnet18`, …) "
        "or `path/to/file.py:Name` (relative to the config's folder)",
    )
    model_args: dict = option({}, "keyword arguments for the model's builder (e.g. `dropout: 0.2`)")
    weights: str = option(
        "none",
        "`none`, `DEFAULT` (alias `imagenet`), a torchvision weights name such as "
        "`IMAGENET1K_V1`, or the path of a state_dict file (relative to the config's folder)",
    )
    trainable: str = option(
        "all",
        "what learns: `all`, `head` (the block holding the new classification layer) or `last-N` "
        "(also the last N stages)",
        pattern=r"^(all|head|last-[1-9][0-9]*)$",
    )
    input_size: int = option(
        0,
        "side the images are resized to on the device; 0: the weights' crop size with pretrained "
        "weights, else the stored size",
        minimum=0,
    )
    optimizer: str = option("sgd", "`sgd`, `adam` or `adamw`", choices=("sgd", "adam", "adamw"))
    lr: float = option(0.01, "peak learning rate", above=0)
    momentum: float = option(0.9, "SGD momentum", minimum=0, maximum=1)
    nesterov: bool = option(False, "Nesterov momentum (SGD)")
    weight_decay: float = option(0.0, "L2 penalty (decoupled with `adamw`)", minimum=0)
    schedule: str = option(
        "constant", "`constant`, `cosine` or `onecycle`", choices=("constant", "cosine", "onecycle")
    )
    warmup_epochs: float = option(0.0, "linear learning-rate warm-up, in epochs", minimum=0)
    epochs: int = option(5, "passes over the training split (at most: see `patience`)", minimum=1)
    keep: str = option(
        "last",
        "which epoch's weights the run keeps (model, predictions, final numbers): `last`, or `best`: "
        "the highest validation accuracy (ties: the earlier epoch)",
        choices=("last", "best"),
    )
    patience: int = option(
        0,
        "stop after this many epochs in a row without a new best validation accuracy (0: never)",
        minimum=0,
    )
    batch_size: int = option(64, "images per step", minimum=1)
    train_subset: int = option(
        0, "0 trains on every image; else a fixed seeded subset of this size", minimum=0
    )
    label_smoothing: float = option(0.0, "cross-entropy label smoothing", minimum=0, maximum=1)
    grad_clip: float = option(0.0, "maximum gradient norm, clipped before each step (0: off)", minimum=0)
    precision: str = option(
        "auto",
        "`auto` (bf16 on a GPU that has it, else fp32), `fp32`, `bf16` autocast, or `fp16` with "
        "a gradient scaler (CUDA only)",
        choices=("auto", "fp32", "bf16", "fp16"),
    )
    channels_last: bool = option(False, "NHWC memory layout (faster convolutions on recent GPUs)")
    crop_padding: int = option(4, "random translate by up to this many pixels (0: off)", minimum=0)
    flip: bool = option(True, "random horizontal flip")
    cutout: int = option(0, "side of a random square set to zero (0: off)", minimum=0)
    crop_scale: float = option(
        0.0,
        "random resized crop (torchvision's `RandomResizedCrop`, scale (this, 1)): per image a random "
        "box of this fraction up to all of the image's area, resized to the input size; translate, "
        "flip and cutout follow (0: off; torchvision's default: 0.08)",
        minimum=0,
        maximum=1,
    )
    crop_ratio: float = option(
        4 / 3,
        "the random resized crop's aspect ratio (width/height), log-uniform in [1/this, this]",
        minimum=1,
    )
    device: str = option(
        "auto",
        "`auto` (CUDA, else MPS, else CPU), `cpu`, `mps`, `cuda` or `cuda:N`",
        pattern=DEVICE,
    )
    deterministic: bool = option(False, "deterministic algorithms and cuDNN flags")
    log_every: int = option(50, "train-loss logging interval, in steps", minimum=1)
    keep_checkpoint: bool = option(False, "keep checkpoint.pt after the run's outputs are written")
    compile: bool = option(
        False,
        "train through `torch.compile` (evaluation, model.pt and the export use the plain module); "
        "the first step compiles (seconds to minutes; on a CPU it needs a C++ compiler)",
    )

    data_placement: str = option(
        "auto",
        "where the splits live while training: `resident` (whole on the device), `streamed` (read "
        "from the data step's files batch by batch, in a background thread), or `auto`: resident "
        "while the splits, smallest first, fit a quarter of the device's free memory, the rest "
        "streamed (the same batches and numbers either way)",
        choices=("auto", "resident", "streamed"),
    )
    gpus: int = option(
        1,
        "training processes, each on a GPU of its own (`torchrun` + DistributedDataParallel; the "
        "global batch stays `batch_size`); on a machine without GPUs, CPU processes (gloo)",
        minimum=1,
    )

    def fingerprint(self, seed: int, data_hash: str) -> str:
        """Identifies what a checkpoint was trained with (options, seed, data, the training code
        and a user's model file); a checkpoint is resumed only into the same."""
        code = hashlib.sha256()
        library = Path(__file__).parents[1]
        for module in ("train.py", "batches.py", "distributed.py", "models.py", "plan/options.py"):
            code.update((library / module).read_bytes())
        code.update(model_file_hash(self.model).encode())
        options = dataclasses.asdict(self)
        # What happens after training, and where the data live, do not change a checkpoint.
        del options["keep_checkpoint"], options["data_placement"]
        text = json.dumps([options, seed, data_hash, code.hexdigest()], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()


def check_value(key: str, value, expected: type, checks) -> None:
    """Raise TypeError/ValueError naming `key` when value is not of its type or out of range."""
    if expected is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
    if not ok:
        what, _, name = key.rpartition(" ")
        raise TypeError(f"{what} {name!r} must be {expected.__name__}, got {value!r}")
    if "choices" in checks and value not in checks["choices"]:
        raise ValueError(f"{key}={value!r}: choose one of {checks['choices']}")
    if "pattern" in checks and not re.fullmatch(checks["pattern"], value):
        raise ValueError(f"{key}={value!r}: {checks['help']}")
    if "minimum" in checks and value < checks["minimum"]:
        raise ValueError(f"{key}={value!r}: must be ≥ {checks['minimum']}")
    if "maximum" in checks and value > checks["maximum"]:
        raise ValueError(f"{key}={value!r}: must be ≤ {checks['maximum']}")
    if "above" in checks and value <= checks["above"]:
        raise ValueError(f"{key}={value!r}: must be > {checks['above']}")


@dataclass(frozen=True)
class AnalysisOptions(Options):
    """The analysis step's options (config `analysis:`), the same for every run."""

    WHAT = "analysis option"

    top_k: int = option(3, "top-k accuracy's k", minimum=1)
    calibration_bins: int = option(
        15, "equal-width confidence bins of the reliability diagram and the ECE", minimum=2
    )
    mistakes: int = option(16, "how many of the most confident mistakes to show (0 for none)", minimum=0)


@dataclass(frozen=True)
class PredictOptions(Options):
    """`snakemake predict`'s options (config `predict:`); images has no default."""

    WHAT = "predict option"

    images: object = option(
        None, "a folder of images (searched at any depth), or a list of files and folders"
    )
    run: str = option(
        "best",
        "a run name, a sweep's name, or `best`: the best run of them all on validation accuracy (then its best seed)",
    )
    top_k: int = option(5, "classes listed per image", minimum=1)
    batch_size: int = option(256, "images per forward pass", minimum=1)
    device: str = option(
        "auto", "`auto` (CUDA, else MPS, else CPU), `cpu`, `mps`, `cuda` or `cuda:N`", pattern=DEVICE
    )


def defaults() -> dict:
    return TrainOptions.defaults()


def options_table(kind=None) -> str:
    """The README's table of one kind of options (TrainOptions by default): key, default,
    meaning."""
    rows = ["| option | default | meaning |", "|---|---|---|"]
    for f in dataclasses.fields(kind or TrainOptions):
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        shown = "—" if default is None else f"`{json.dumps(default)}`"
        rows.append(f"| `{f.name}` | {shown} | {f.metadata['help']} |")
    return "\n".join(rows)


# ---------------------------------------------------------------- a user's own model file
def user_model_path(model: str) -> Path | None:
    """The file of a `file.py:Name` model spec, None for a named model."""
    match = USER_MODEL.match(model)
    return Path(match["path"]) if match else None


def model_file_hash(model: str) -> str:
    """sha256 of a user's model file ('' for named models): the train rule records it, so editing
    the file reruns that run's training and what follows."""
    path = user_model_path(model)
    if path is None:
        return ""
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} (model: {model}) not found")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def relative_to_workdir(values: dict, config_dir) -> dict:
    """The options with a user model file and a weights file, which a config names relative to
    its own folder, made relative to the working directory where the jobs run (relative, so that
    moving the project changes nothing Snakemake records)."""
    values = dict(values)
    path = user_model_path(values.get("model", ""))
    if path is not None and not path.is_absolute():
        name = values["model"].rsplit(":", 1)[1]
        values["model"] = f"{os.path.relpath(Path(config_dir) / path)}:{name}"
    weights = values.get("weights", "none")
    if looks_like_path(weights) and not Path(weights).is_absolute():
        values["weights"] = os.path.relpath(Path(config_dir) / weights)
    return values


def looks_like_path(weights: str) -> bool:
    """A weights value naming a file rather than torchvision weights."""
    return "/" in weights or os.sep in weights or weights.endswith((".pt", ".pth", ".bin", ".ckpt"))


# ---------------------------------------------------------------- checks before any job

MODEL_KEYS = ("model", "model_args", "weights", "trainable", "input_size")


def check_models(runs: dict, stored_size: int, cache_file, check) -> None:
    """check(options, stored_size, where) for each run (name → TrainOptions): the step's
    models.check_options, which builds the model on torch's meta device (its model, weights,
    `trainable` and input size). What passed is remembered in cache_file by everything it
    depends on, so that a rerun does not import torch; without torch here (Snakemake's own
    Python may lack it) the checks are left to the training step."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        versions = [version("torch"), version("torchvision")]
    except PackageNotFoundError:
        return
    cache_file = Path(cache_file)
    passed = json.loads(cache_file.read_text()) if cache_file.exists() else []
    keys = {}
    for run, opts in runs.items():
        what = {k: getattr(opts, k) for k in MODEL_KEYS}
        try:
            file_hash = model_file_hash(opts.model)
        except FileNotFoundError as error:
            raise ValueError(f"runs.{run}.model: {error}") from error
        text = json.dumps([what, stored_size, file_hash, versions], sort_keys=True)
        keys[run] = hashlib.sha256(text.encode()).hexdigest()
    todo = [run for run in runs if keys[run] not in passed]
    if not todo:
        return
    for run in todo:
        check(runs[run], stored_size, f"runs.{run}.")
        passed.append(keys[run])
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    cache_file.write_text(json.dumps(passed[-200:]))


if __name__ == "__main__":
    for kind in (TrainOptions, AnalysisOptions, PredictOptions):
        print(f"{kind.__name__}:\n{options_table(kind)}\n")
