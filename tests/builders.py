"""What the tests build and share, defined once: the repository's paths, the tiny config, the
schema's complaints, ImageFolder trees of image files, notebooks, HTML as a reader's browser would
take it, and throwaway copies of the workflow to run.

Test files in any folder under tests/ import these as `from builders import ...` (pyproject.toml
puts tests/ on pytest's pythonpath). Heavy packages are imported where they are used, so that
importing this module costs nothing.
"""

import copy
import functools
import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from html.parser import HTMLParser
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
LIBRARY = REPO / "scripts" / "labbook"
TINY_CONFIG = REPO / "tests" / "configs" / "tiny.yaml"
SCHEMA_FILE = REPO / "schemas" / "config.schema.yaml"


# ---------------------------------------------------------------- configs and the schema
@functools.cache
def _tiny() -> dict:
    return yaml.safe_load(TINY_CONFIG.read_text())


def tiny_config(**changes) -> dict:
    """A fresh copy of tests/configs/tiny.yaml. Each keyword sets one value, its path in the
    config spelt with `__`: tiny_config(dataset__image_size=64, runs={"a": {}})."""
    config = copy.deepcopy(_tiny())
    for path, value in changes.items():
        *keys, last = path.split("__")
        target = config
        for key in keys:
            target = target[key]
        target[last] = value
    return config


@functools.cache
def _schema():
    from jsonschema import Draft202012Validator

    return Draft202012Validator(yaml.safe_load(SCHEMA_FILE.read_text()))


def schema_errors(config: dict) -> list[str]:
    """'[path in the config]: message' for each way config breaks schemas/config.schema.yaml."""
    return [f"{list(error.absolute_path)}: {error.message}" for error in _schema().iter_errors(config)]


# ---------------------------------------------------------------- image files and ImageFolder trees
def write_image(path: Path, colour=(200, 30, 30), size=(8, 8), mode="RGB", fmt=None) -> Path:
    """One image file of one colour, in any Pillow mode ("P": an adaptive palette); the format is
    the suffix's unless fmt names one. Its folders are made."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, colour)
    if mode == "P":
        image = image.convert("P", palette=Image.Palette.ADAPTIVE)
    elif mode != "RGB":
        image = image.convert(mode)
    image.save(path, format=fmt)
    return path


@dataclass(frozen=True)
class Slot:
    """Where image_folder puts one image: its split, its class (name and label, the class's
    place in the tree), its index in that class folder (i), and its index over the class's images
    of all splits so far (n: names that go on counting from train into test)."""

    split: str
    name: str
    label: int
    i: int
    n: int


def image_folder(
    root: Path,
    classes=("ants", "bees"),
    per_class=4,
    splits=("train", "val"),
    *,
    name="{i}.png",
    colour=(200, 30, 30),
    size=(8, 8),
    mode="RGB",
    picture=None,
    extras=None,
) -> Path:
    """An ImageFolder tree, root/<split>/<class>/<file>, of per_class images in each class folder
    of each split; per_class={split: {class: count}} makes an uneven tree (its keys are then the
    splits and classes).

    name, colour and size are each a value or a function of the image's Slot; name is a format
    string of the Slot's fields ("{i:02d}.png"; a "/" in it makes nested folders; its suffix
    chooses the format), colour may also be a {class: colour} mapping. picture(slot) -> a PIL
    image replaces colour, size and mode. extras, {file name: bytes}, are written into every class
    folder as they are (hidden files, notes, broken images)."""
    layout = (
        per_class if isinstance(per_class, dict) else {s: dict.fromkeys(classes, per_class) for s in splits}
    )
    labels, seen = {}, {}
    for split, counts in layout.items():
        for cls, count in counts.items():
            label = labels.setdefault(cls, len(labels))
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                slot = Slot(split, cls, label, i, seen.get(cls, 0))
                seen[cls] = slot.n + 1
                file = folder / (name(slot) if callable(name) else name.format(**asdict(slot)))
                if picture is not None:
                    file.parent.mkdir(parents=True, exist_ok=True)
                    picture(slot).save(file)
                    continue
                shade = colour(slot) if callable(colour) else colour
                shade = shade[cls] if isinstance(shade, dict) else shade
                write_image(file, shade, size(slot) if callable(size) else size, mode)
            for extra, content in (extras or {}).items():
                (folder / extra).write_bytes(content)
    return root


def odd_name(text: str) -> str:
    """A file name with bytes that are not UTF-8 (Latin-1 é, a stray 0xff), as Python sees it."""
    return os.fsdecode(text.encode() + b"-\xe9t\xe9\xff")


# ---------------------------------------------------------------- notebooks, training runs, HTML
def make_notebook(path, *cells, parameters='size = 3\nname = "x"\nscale = 1.0\nextra = None'):
    """A notebook of a tagged parameters cell and the given cells, for a python3 kernel."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    params = new_code_cell(parameters)
    params.metadata["tags"] = ["parameters"]
    book = new_notebook(cells=[params, *cells])
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(book, path)
    return path


# A user's model file: a network class whose arguments a config's model_args set.
USER_MODEL = """
from torch import nn


class TinyNet(nn.Sequential):
    def __init__(self, num_classes, width=8):
        super().__init__(nn.Conv2d(3, width, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(width, num_classes))
"""


def scripts_on_pythonpath() -> str:
    """PYTHONPATH with the checkout's scripts/ first: how the rules make a kernel find labbook."""
    return os.pathsep.join(filter(None, [str(REPO / "scripts"), os.environ.get("PYTHONPATH")]))


TIMING_KEYS = ("train_seconds", "images_per_s")


def without_timings(metrics: dict) -> dict:
    """metrics.json minus wall-clock numbers, which differ between any two runs."""
    kept = {k: v for k, v in metrics.items() if k not in TIMING_KEYS + ("resumed_after_epoch",)}
    kept["history"] = [{k: v for k, v in h.items() if k not in TIMING_KEYS} for h in metrics["history"]]
    return kept


def weights_hash(path) -> str:
    """sha256 over a saved state_dict's names and values."""
    import torch

    state = torch.load(path, weights_only=True)
    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(state[name].cpu().numpy().tobytes())
    return digest.hexdigest()


class Elements(HTMLParser):
    """The elements, attributes and text of an HTML page, and what of it planted markup made live."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags, self.text, self.scripts = [], [], []
        self._in_script = False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        (self.scripts if self._in_script else self.text).append(data)

    def live(self) -> list:
        """What planted markup made live: planted elements, event handlers, script links,
        scripts that set the flag."""
        found = [(t, a) for t, a in self.tags if str(a.get("id", "")).startswith("planted")]
        found += [(t, a) for t, a in self.tags if any(k.startswith("on") for k in a)]
        found += [(t, a) for t, a in self.tags if str(a.get("href", "")).lower().startswith("javascript")]
        found += [("script", s[:80]) for s in self.scripts if "pwned" in s]
        return found


# ---------------------------------------------------------------- copies of the workflow, run
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
# What a copy of the workflow needs; results/, logs/ and .snakemake/ stay behind.
WORKFLOW_FILES = ("Snakefile", "config.yaml", "rules", "envs", "notebooks", "schemas", "scripts", "profiles")


def data_dir(workdir: Path, dataset: dict) -> Path:
    """Where the workflow keeps the prepared data of a dataset spec."""
    from labbook.plan import datasets

    return workdir / "results" / "data" / datasets.key(dataset)


def copy_workflow(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, dest / name)
    return dest


def venv_environment() -> dict:
    """The environment with this interpreter's bin/ first: rules call `python` from PATH."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def snakemake(workdir: Path, *args, check=True, timeout=900) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [*SNAKEMAKE, "--cores", "2", *args],
        cwd=workdir,
        env=venv_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


class Killed(Exception):
    """What a SIGKILL right after an epoch's checkpoint is to a training test."""


def train_killed_after(monkeypatch, epoch: int, train_call):
    """Run train_call() with training killed (Killed) right after epoch `epoch`'s checkpoint is
    written, as a SIGKILL would leave it: the checkpoint on disk, no outputs yet."""
    from labbook import train

    save = train.TrainState.save

    def save_then_die(state, path, fingerprint):
        save(state, path, fingerprint)
        if state.epoch == epoch:
            raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(train.TrainState, "save", save_then_die)
        try:
            train_call()
        except Killed:
            return
    raise AssertionError(f"training was not killed after epoch {epoch}")
