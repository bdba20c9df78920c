"""Hostile and odd inputs, as a careless or a malicious user would give them: nothing reaches a
reader's browser as markup, nothing blocks the workflow, nothing is silently wrong.

One section per class of fault: markup in config and dataset text; file names that are not
UTF-8; high-bit-depth images; damaged and stray files; degenerate configs; the home directory in
what is shared, and recovery claims.
"""

import errno
import io
import json
import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import REPO, copy_workflow, snakemake
from jsonschema import Draft202012Validator
from labbook import arrays, atomic, imagefolder, metrics, plots, prepare, report, runner
from labbook.plan import checks, datasets, sources
from labbook.plan.record import JobRecord
from PIL import Image

SCHEMA = Draft202012Validator(yaml.safe_load((REPO / "schemas" / "config.schema.yaml").read_text()))
TINY = yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())


# ---------------------------------------------------------------- 1. markup in config and data
# Each would be live (an element, a handler, a script, a link, math, a broken table) if it
# reached the page as markup. id="planted..." marks the elements a test looks for.
MARKUP = [
    "<script>window.pwned = 'script'</script>",
    '<img src=x id=planted-img onerror="window.pwned = 1">',
    "<b id=planted-b>bold",
    '<svg id=planted-svg onload="window.pwned = 2"></svg>',
    "<iframe id=planted-iframe srcdoc='<script>parent.pwned = 3</script>'></iframe>",
    "[click](javascript:window.pwned=4)",
    "<javascript:alert(5)>",
    "**strong** _em_ `code` ~~gone~~",
    "a | b | c",
    "$\\frac{1}{2}$ and $$x$$",
    "```\n<b id=planted-fence>x</b>\n```",
    "# heading\n- item\n1. item",
    "&lt;b id=planted-entity&gt; &amp;",
    "<!-- comment --> <![CDATA[x]]>",
]


class Elements(HTMLParser):
    """The elements, attributes and text of an HTML page."""

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


def rendered(markdown: str) -> str:
    """Markdown as the report's HTML export renders it."""
    from nbconvert.filters.markdown import markdown2html

    return markdown2html(markdown)


@pytest.mark.parametrize("text", MARKUP)
@pytest.mark.parametrize(
    "context",
    ["{}", "# {}", "**Goal.** {}", "- **run**: _{}_ → verdict", "| a | b |\n|---|---|\n| {} | x |"],
    ids=["paragraph", "heading", "bold-label", "emphasis", "table-cell"],
)
def test_escaped_text_renders_as_its_characters_and_nothing_else(text, context):
    page = Elements(rendered(context.format(report.md(text))))
    assert page.live() == []
    assert " ".join(text.split()) in " ".join("".join(page.text).split())  # shown, not dropped
    plain = Elements(rendered(context.format("plain words")))
    assert [tag for tag, _ in page.tags] == [tag for tag, _ in plain.tags]  # no element of its own


def test_code_font_links_and_preformatted_blocks_escape_too():
    for text in MARKUP:
        for html in (
            rendered(report.md_code(text)),
            rendered(report.md_link(text)),
            report.preformatted(text),
            report.image_row([]),
        ):
            assert Elements(html).live() == []
    link = Elements(rendered(report.md_link("../logs/a b(1).ipynb")))
    assert [a["href"] for t, a in link.tags if t == "a"] == ["../logs/a%20b%281%29.ipynb"]


def test_report_tables_and_verdicts_escape_run_and_class_names():
    name = MARKUP[1]
    evaluation = {"accuracy": 0.9, "macro_f1": 0.9, "top_k": 1, "top1_accuracy": 0.9, "ece": 0.1,
                  "per_class": {MARKUP[2]: {"f1": 0.9}, MARKUP[5]: {"f1": 0.8}}}  # fmt: skip
    run_metrics = {"model": "cifarnet", "parameters": {"total": 1, "trainable": 1}, "history": [{}],
                   "train_seconds": 1.0, "images_per_s": 1.0, "device_name": MARKUP[3]}  # fmt: skip
    records = [{"name": name, "seed": 0, "evaluation": evaluation, "metrics": run_metrics,
                "target_accuracy": 0.5, "hypothesis": MARKUP[0], "provenance": {}}]  # fmt: skip
    for markdown in (
        report.results_table(records),
        report.per_class_f1_table(records),
        report.headline(records),
        report.runs_provenance_table(records),
        *report.verdicts(records),
    ):
        assert Elements(rendered(markdown)).live() == [], markdown


def test_figure_text_is_shown_as_it_is(tmp_path):
    """A class named like math or with a lone $ or backslash: the figure is drawn, not parsed."""
    names = ["$\\frac{", "a$b", "\\", "$x_1$"]
    figure = plots.confusion(np.eye(4, dtype=int), names, title="$\\oops")
    plots.save(figure, tmp_path / "c.png")
    figure = plots.confusion(np.eye(4, dtype=int), names)
    labels = [label.get_text() for label in figure.axes[0].get_xticklabels()]
    assert labels == names


# ---------------------------------------------------------------- 2. file names that are not UTF-8
def write_png(path, colour=(200, 30, 30), size=(20, 20)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, format="PNG")
    return path


def odd_name(text: str) -> str:
    """A file name with bytes that are not UTF-8 (Latin-1 é, a stray 0xff), as Python sees it."""
    return os.fsdecode(text.encode() + b"-\xe9t\xe9\xff")


def test_names_that_are_not_utf8_are_read_and_shown_printably(tmp_path):
    root = tmp_path / "photos"
    for cls, colour in (("ants", (200, 30, 30)), (odd_name("bees"), (30, 30, 200))):
        for i in range(3):
            write_png(root / "train" / cls / f"{i}.png", colour)
            write_png(root / "val" / cls / f"{i}.png", colour)
    write_png(root / "train" / "ants" / odd_name("photo") / f"{odd_name('x')}.png")
    (root / "train" / "ants" / f"{odd_name('broken')}.png").write_bytes(b"not a png")

    fingerprint = datasets.fingerprint({"name": "p", "kind": "imagefolder", "root": str(root)})
    manifest = prepare.prepare(
        {"name": "p", "kind": "imagefolder", "root": str(root), "image_size": 8}, tmp_path / "out"
    )
    assert manifest["source_hash"] == fingerprint
    assert manifest["classes"] == ["ants", "bees-\\xe9t\\xe9\\xff"]
    assert manifest["counts"]["train"] == {"ants": 4, "bees-\\xe9t\\xe9\\xff": 3}  # the odd folder's too
    assert [s["path"] for s in manifest["skipped"]] == [str(root / "train/ants/broken-\\xe9t\\xe9\\xff.png")]
    (tmp_path / "out" / "manifest.json").read_bytes().decode("utf-8")  # strict UTF-8, any reader
    renamed = root / "train" / "ants" / f"{odd_name('y')}.png"
    os.rename(root / "train" / "ants" / "0.png", renamed)
    assert datasets.fingerprint({"name": "p", "kind": "imagefolder", "root": str(root)}) != fingerprint


def test_a_missing_test_class_folder_with_an_odd_name_is_named_printably(tmp_path):
    root = tmp_path / "photos"
    for cls in ("ants", odd_name("bees")):
        write_png(root / "train" / cls / "0.png")
        write_png(root / "train" / cls / "1.png")
    write_png(root / "val" / "ants" / "0.png")
    with pytest.raises(imagefolder.LayoutError, match=r"'bees-\\\\xe9t\\\\xe9\\\\xff'"):
        imagefolder.plan_splits(root, 0.5, 0)


# ---------------------------------------------------------------- 4. high bit depths, every mode
def mid_grey(mode: str) -> Image.Image:
    """A 4×4 image of the mode whose pixels mean 50% grey (or 50% of each channel)."""
    value = {"1": 1, "F": 0.5, "I": 32768, "I;16": 32768, "I;16B": 32768, "I;16L": 32768, "I;16N": 32768,
             "HSV": (0, 0, 128), "LAB": (137, 128, 128), "YCbCr": (128, 128, 128), "CMYK": (0, 0, 0, 127),
             "LA": (128, 255), "La": (128, 255), "PA": (0, 255), "RGBa": (128, 128, 128, 255),
             "RGBA": (128, 128, 128, 255), "RGBX": (128, 128, 128, 0)}  # fmt: skip
    bands = Image.getmodebands(mode)
    value = value.get(mode, 128 if bands == 1 else (128,) * bands)
    image = Image.new(mode, (4, 4), value)
    if mode in ("P", "PA"):
        image.putpalette([128, 128, 128] * 256)
    return image


@pytest.mark.parametrize("mode", Image.MODES)
def test_every_mode_pillow_has_comes_out_at_its_brightness(mode):
    rgb = np.asarray(imagefolder.to_rgb(mid_grey(mode)))
    assert rgb.shape == (4, 4, 3)
    expected = 255 if mode == "1" else 128
    assert np.all(np.abs(rgb.astype(int) - expected) <= 3), f"{mode}: {rgb[0, 0]}"


@pytest.mark.parametrize(
    "array, fmt",
    [
        (np.linspace(0, 65535, 64).astype(np.uint16).reshape(8, 8), "PNG"),  # 16-bit grey PNG
        (np.linspace(0, 65535, 64).astype(np.uint16).reshape(8, 8), "TIFF"),
        (np.linspace(0, 1, 64).astype(np.float32).reshape(8, 8), "TIFF"),  # float 0–1
        (np.linspace(0, 65535, 64).astype(np.int32).reshape(8, 8), "TIFF"),  # 32-bit int
    ],
    ids=["png-16", "tiff-16", "tiff-float", "tiff-int32"],
)
def test_high_bit_depth_files_keep_their_tones(array, fmt):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    decoded = imagefolder.decode_bytes(buffer.getvalue(), 8, "fixed")[..., 0].astype(int)
    expected = np.linspace(0, 255, 64).reshape(8, 8)
    assert np.abs(decoded - expected).max() <= 2, "a gradient from black to white, not clipped to white"


def png_16bit(samples: np.ndarray, colour_type: int) -> bytes:
    """A PNG with 16 bits per sample, written by hand (Pillow writes none with colour):
    colour type 2 is RGB, 4 grey + alpha, 6 RGBA."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    height, width = samples.shape[:2]
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in samples.reshape(height, -1))
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    "colour_type, pixel, expected",
    [
        (2, (65535, 32768, 0), (255, 128, 0)),
        (6, (0, 32768, 65535, 65535), (0, 128, 255)),
        (4, (32768, 65535), (128,) * 3),
    ],
    ids=["rgb-48", "rgba-64", "grey-alpha-32"],
)
def test_sixteen_bit_colour_pngs_keep_their_colour(colour_type, pixel, expected):
    data = png_16bit(np.full((8, 8, len(pixel)), pixel, np.uint16), colour_type)
    decoded = imagefolder.decode_bytes(data, 8, "fixed")
    assert np.all(np.abs(decoded.astype(int) - expected) <= 1), decoded[0, 0]


# ---------------------------------------------------------------- 6. damaged and stray files
def test_a_failed_write_leaves_no_temporary_file_and_the_old_file_intact(tmp_path):
    target = tmp_path / "manifest.json"
    atomic.atomic_write(target, lambda f: f.write(b"old"))

    def fail(f):
        f.write(b"half")
        raise RuntimeError("killed by a bug")

    with pytest.raises(RuntimeError, match="killed by a bug"):
        atomic.atomic_write(target, fail)
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]
    assert target.read_bytes() == b"old"


def test_temporary_files_of_dead_processes_are_removed_on_the_next_write(tmp_path):
    target = tmp_path / "train.npz"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    stale = atomic._temporary_name(target, int(dead.stdout))
    stale.write_bytes(b"half of a killed write")
    alive = atomic._temporary_name(target, os.getppid())  # a running process's write in progress
    alive.write_bytes(b"in progress")
    other_host = tmp_path / f".train.npz.tmp-another-host-{int(dead.stdout)}"
    other_host.write_bytes(b"another machine's")
    atomic.atomic_write(target, lambda f: f.write(b"new"))
    assert not stale.exists()
    assert alive.exists() and other_host.exists()
    assert target.read_bytes() == b"new"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("writer", ["bytes", "numpy", "torch"])
def test_a_full_disk_says_so_and_names_the_folder(tmp_path, monkeypatch, writer):
    """/dev/full answers every write with ENOSPC, as a full disk does."""
    import builtins

    real_open = builtins.open
    monkeypatch.setattr(atomic, "open", lambda path, mode: real_open("/dev/full", mode), raising=False)
    if writer == "torch":
        import torch

        write = lambda f: torch.save({"weights": torch.zeros(300_000)}, f)  # noqa: E731
    elif writer == "numpy":
        write = lambda f: np.savez(f, images=np.zeros((50, 32, 32, 3), np.uint8))  # noqa: E731
    else:
        write = lambda f: f.write(b"x" * 1_000_000)  # noqa: E731
    with pytest.raises(
        atomic.DiskFullError, match=f"no space left on {tmp_path} while writing model.pt"
    ) as error:
        atomic.atomic_write(tmp_path / "model.pt", write)
    assert error.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "not-a-dict"])
def test_a_damaged_checkpoint_is_treated_as_absent_and_said_so(tmp_path, damage):
    import torch
    from labbook import train

    path = tmp_path / "checkpoint.pt"
    train.save_checkpoint(path, {"fingerprint": "f", "epoch": 3, "model": {"w": torch.zeros(1000)}})
    assert train.load_checkpoint(path, "f", log=lambda *_: None)["epoch"] == 3
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "garbage":
        path.write_bytes(os.urandom(4096))
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        torch.save([1, 2, 3], path)
    said = []
    assert train.load_checkpoint(path, "f", log=said.append) is None
    assert len(said) == 1 and str(path) in said[0] and "starts afresh" in said[0]


def test_training_over_a_damaged_checkpoint_runs_and_drops_it_unless_asked(demo_data, tmp_path):
    from labbook import train

    options = {"model": "cifarnet", "epochs": 1, "batch_size": 128, "device": "cpu", "train_subset": 256}
    (tmp_path / "checkpoint.pt").write_bytes(b"PK\x03\x04 half a zip")
    said = []
    result = train.train(
        train.TrainOptions.from_dict(options), demo_data, tmp_path, threads=2, log=said.append
    )
    assert result["resumed_after_epoch"] == 0 and any("damaged" in line for line in said)
    assert not (tmp_path / "checkpoint.pt").exists(), "a finished run's checkpoint has no use"
    kept = train.TrainOptions.from_dict({**options, "keep_checkpoint": True})
    train.train(kept, demo_data, tmp_path / "kept", threads=2, log=said.append)
    assert (tmp_path / "kept" / "checkpoint.pt").exists()
    assert kept.fingerprint(0, "d") == train.TrainOptions.from_dict(options).fingerprint(0, "d")


@pytest.mark.parametrize(
    "name, keys", [("predictions.npz", ("logits", "labels")), ("train.npz", ("images", "labels"))]
)
def test_a_truncated_npz_is_an_error_naming_it(tmp_path, name, keys):
    path = tmp_path / name
    np.savez(path, **{key: np.arange(5000) for key in keys})
    path.write_bytes(path.read_bytes()[:3000])
    with pytest.raises(ValueError, match=f"{path} is damaged or truncated"):
        arrays.load_arrays(path, keys)
    with pytest.raises(FileNotFoundError):
        arrays.load_arrays(tmp_path / "absent.npz", keys)


def test_a_truncated_step_output_read_by_the_report_is_named(tmp_path):
    job = JobRecord("a", 0, str(tmp_path), str(tmp_path / "analysis"))
    job.train_files()["metrics"].write_text('{"model": "cifar')
    with pytest.raises(ValueError, match=f"{job.train_files()['metrics']} is damaged or truncated"):
        report.load_runs([job.to_dict()])


# ---------------------------------------------------------------- 7. degenerate configs
def schema_errors(config: dict) -> list[str]:
    return [f"{list(error.absolute_path)}: {error.message}" for error in SCHEMA.iter_errors(config)]


def tiny(**changes) -> dict:
    config = yaml.safe_load(yaml.safe_dump(TINY))
    for path, value in changes.items():
        *keys, last = path.split("__")
        target = config
        for key in keys:
            target = target[key]
        target[last] = value
    return config


@pytest.mark.parametrize(
    "changes, key",
    [
        ({"dataset__name": "."}, "['dataset', 'name']"),
        ({"dataset__name": ".."}, "['dataset', 'name']"),
        ({"dataset__image_size": 100_000}, "['dataset', 'image_size']"),
        ({"dataset__seed": 2**63}, "['dataset', 'seed']"),
        ({"runs__cifarnet__seeds": [0, 2**64]}, "['runs', 'cifarnet', 'seeds', 1]"),
    ],
)
def test_the_schema_stops_degenerate_values_naming_the_key(changes, key):
    errors = schema_errors(tiny(**changes))
    assert errors and all(error.startswith(key) for error in errors), errors


def test_the_largest_seed_the_schema_takes_works():
    import torch

    seed = 2**63 - 1
    assert schema_errors(tiny(runs__cifarnet__seeds=[seed], dataset__seed=seed)) == []
    torch.Generator().manual_seed(seed)
    np.random.default_rng(seed)


def imagefolder_config(root, **analysis) -> dict:
    config = tiny()
    config["dataset"] = {"name": "photos", "kind": "imagefolder", "root": str(root), "image_size": 32}
    config["analysis"] = {"top_k": 3, **analysis}
    return config


def test_one_class_and_top_k_beyond_the_classes_are_stopped_naming_the_key(tmp_path):
    root = tmp_path / "photos"
    write_png(root / "train" / "ants" / "0.png")
    with pytest.raises(ValueError, match=r"^dataset\.root: .* 1 class folder"):
        checks.check_config(imagefolder_config(root, top_k=1))
    with pytest.raises(imagefolder.LayoutError, match="one class folder"):
        imagefolder.plan_splits(root, 0.5, 0)  # the data step says the same
    write_png(root / "train" / "bees" / "0.png")
    with pytest.raises(ValueError, match=r"^analysis\.top_k: 3 is more than the dataset's 2 classes"):
        checks.check_config(imagefolder_config(root))
    checks.check_config(imagefolder_config(root, top_k=2))
    with pytest.raises(ValueError, match=r"^analysis\.top_k: 11 .* 10 classes"):
        checks.check_config({**tiny(), "analysis": {"top_k": 11}})  # the demo's ten classes
    with pytest.raises(ValueError, match="top_k 3 is more than the 2 classes"):
        metrics.evaluate(np.zeros((4, 2)), np.array([0, 1, 0, 1]), ["a", "b"], top_k=3)


def test_an_image_size_that_would_not_fit_in_memory_is_stopped(tmp_path):
    config = tiny(dataset__image_size=1024, dataset__train_size=20_000)
    with pytest.raises(ValueError, match=r"^dataset\.image_size: 1024 makes 20100 images take 58\.9 GiB"):
        checks.check_config(config, memory=16 * 2**30)
    checks.check_config(tiny(), memory=16 * 2**30)


def test_the_workflow_stops_before_any_job_naming_the_key(tmp_path):
    workdir = copy_workflow(tmp_path / "workflow")
    root = tmp_path / "photos"
    write_png(root / "train" / "ants" / "0.png")
    cases = {
        "one-class.yaml": (imagefolder_config(root, top_k=1), "dataset.root:"),
        "dot.yaml": (tiny(dataset__name=".."), "dataset"),
    }
    for name, (config, key) in cases.items():
        (workdir / name).write_text(yaml.safe_dump(config))
        result = snakemake(workdir, "-n", "--configfile", name, check=False)
        output = result.stdout + result.stderr
        assert result.returncode != 0 and key in output, output
        assert "prepare_data" not in result.stdout
    assert not (workdir / "results").exists()
    (workdir / "fine.yaml").write_text(yaml.safe_dump(tiny()))
    assert "prepare_data" in snakemake(workdir, "-n", "--configfile", "fine.yaml").stdout
    write_png(root / "train" / odd_name("bees") / f"{odd_name('photo')}.png")  # names not UTF-8
    (workdir / "odd.yaml").write_text(yaml.safe_dump(imagefolder_config(root, top_k=1)))
    assert "prepare_data" in snakemake(workdir, "-n", "--configfile", "odd.yaml").stdout


# ---------------------------------------------------------------- 9. home directory, recovery
def test_a_malformed_config_is_named_with_its_line_in_verbose_mode(tmp_path):
    """What the README tells a user to do when Snakemake says a config is not valid YAML."""
    workdir = copy_workflow(tmp_path / "workflow")
    (workdir / "broken.yaml").write_text("title: x\nobjective:\n  goal: a\n   hypothesis: b\n")
    plain = snakemake(workdir, "-n", "--configfile", "broken.yaml", check=False)
    assert plain.returncode != 0 and "not valid JSON or YAML" in plain.stdout + plain.stderr
    verbose = snakemake(workdir, "-n", "--verbose", "--configfile", "broken.yaml", check=False)
    assert 'in "broken.yaml", line 4, column' in verbose.stdout + verbose.stderr


def test_scrub_replaces_the_home_folder_not_a_longer_name(monkeypatch):
    from labbook import provenance

    home = "/home/al"
    assert provenance.scrub(f"{home}/data and {home}", home) == "~/data and ~"
    assert provenance.scrub("/home/alice/data", home) == "/home/alice/data"
    assert provenance.scrub({"a": [f"'{home}'"]}, home) == {"a": ["'~'"]}


def test_executed_notebooks_write_home_as_tilde(tmp_path, monkeypatch):
    from nbformat.v4 import new_code_cell
    from test_runner import make_notebook

    home = tmp_path / "home" / "someone"
    home.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    source = make_notebook(tmp_path / "n.ipynb", new_code_cell("print(path)\npath"), parameters="path = ''")
    executed = tmp_path / "executed.ipynb"
    runner.execute(source, executed, {"path": f"{home}/data/photos"})
    text = executed.read_text()
    assert str(home) not in text and "~/data/photos" in text


def test_the_manifest_writes_home_as_tilde(tmp_path, monkeypatch):
    home = tmp_path / "home" / "someone"
    monkeypatch.setenv("HOME", str(home))
    root = home / "photos"
    for cls in ("ants", "bees"):
        for i in range(2):
            write_png(root / "train" / cls / f"{i}.png")
            write_png(root / "val" / cls / f"{i}.png")
    (root / "train" / "ants" / "bad.png").write_bytes(b"")
    prepare.prepare(
        {"name": "p", "kind": "imagefolder", "root": str(root), "image_size": 8}, tmp_path / "out"
    )
    text = (tmp_path / "out" / "manifest.json").read_text()
    assert str(home) not in text and "~/photos/train/ants/bad.png" in text


def test_readme_says_how_to_recover_after_snakemake_itself_is_killed():
    readme = (REPO / "README.md").read_text()
    assert "snakemake --unlock" in readme and "cannot be locked" in readme


def test_a_file_name_that_is_not_utf8_is_printable():
    assert sources.printable(os.fsdecode(b"a\xff")) == "a\\xff"


# ---------------------------------------------------------------- 1 and 9 through the notebooks
# Markup planted in every field a config or a dataset fills, data under a home folder: the
# report and the executed step notebooks, as a reader opens them.
HOSTILE = {
    "title": "<script>window.pwned = 'title'</script><b id=planted-title>Title</b> $x$",
    "goal": '<img src=x id=planted-goal onerror="window.pwned = 1"> [click](javascript:window.pwned=2)',
    "hypothesis": "<iframe id=planted-hypothesis srcdoc='<script>parent.pwned = 3</script>'></iframe>",
    "run_hypothesis": '<svg id=planted-run onload="window.pwned = 4"></svg> **loud**',
    "description": "```\n<b id=planted-description>d</b>\n```",
}
# Folder and file names: anything but "/" and NUL.
CLASS_NAMES = [
    "<img src=x id=planted-class onerror=window.pwned=5>",
    "<b id=planted-class-b>b",
    "$\\frac{x$ [a](javascript:window.pwned=6) | cell",
]
BAD_FILE = "<img src=x id=planted-file onerror=window.pwned=7>.png"
PROBE = """JSON.stringify({
  planted: Array.from(document.querySelectorAll('[id^=planted]')).map(e => e.id),
  handlers: Array.from(document.querySelectorAll('*')).filter(e => Array.from(e.attributes)
    .some(a => a.name.startsWith('on'))).map(e => e.outerHTML.slice(0, 80)),
  scriptLinks: document.querySelectorAll('a[href^="javascript"]').length,
  pwned: window.pwned === undefined ? null : String(window.pwned),
  text: document.body.innerText
})"""


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """{report, notebooks (as HTML), files that must not name the home}, built by the real
    notebooks from an ImageFolder under a home folder, runs fabricated as in report_demo."""
    import report_demo
    from labbook import provenance

    tmp = tmp_path_factory.mktemp("hostile")
    home = tmp / "home" / "someone"
    patch = pytest.MonkeyPatch()
    patch.setenv("HOME", str(home))  # the kernels inherit it
    patch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(REPO / "scripts"), os.environ.get("PYTHONPATH")]))
    )
    root = home / "photos"
    for i, name in enumerate(CLASS_NAMES):
        colour = tuple(int(c) for c in np.roll([220, 30, 30], i))
        for n in range(4):
            write_png(root / "train" / name / f"{n}.png", colour)
        for n in range(2):
            write_png(root / "val" / name / f"{n}.png", colour)
    (root / "train" / CLASS_NAMES[0] / BAD_FILE).write_bytes(b"<html>")
    write_png(root / "train" / CLASS_NAMES[1] / f"{odd_name('x')}.png", (30, 220, 30))
    dataset = {"name": "hostile", "kind": "imagefolder", "root": str(root), "image_size": 16}
    data_dir = tmp / "results" / "data" / "hostile"
    logs = tmp / "logs"
    runner.execute(
        REPO / "notebooks" / "prepare_data.ipynb",
        logs / "prepare_data.ipynb",
        {"dataset": dataset, "out_dir": str(data_dir)},
    )

    classes = arrays.read_manifest(data_dir)["classes"]
    _, test_labels = arrays.load_split(data_dir, "test")
    train_dir = tmp / "results" / "runs" / "base" / "seed0"
    train_dir.mkdir(parents=True)
    logits = 3.0 * np.eye(len(classes))[test_labels] + np.random.default_rng(0).normal(
        0, 1, (len(test_labels), len(classes))
    )
    np.savez(train_dir / "predictions.npz", logits=logits, labels=test_labels)
    run_metrics = report_demo.fake_metrics("base", 0, metrics.accuracy(logits, test_labels), classes)
    run_metrics["model"] = run_metrics["options"]["model"] = "vgg16"
    run_metrics["options"]["weights"] = f"{home}/weights/<b id=planted-weights>w</b>.pt"
    (train_dir / "metrics.json").write_text(json.dumps(run_metrics))
    provenance.write(
        train_dir / "provenance.json", provenance.collect("train", ["numpy"], run="base", seed=0)
    )
    analysis = {"data_dir": str(data_dir), "run_dir": str(train_dir), "out_dir": str(train_dir / "analysis"),
                "run": "base", "seed": 0, "options": {"top_k": 1, "calibration_bins": 5, "mistakes": 4}}  # fmt: skip
    runner.execute(REPO / "notebooks" / "analyze.ipynb", logs / "analyze" / "base" / "seed0.ipynb", analysis)

    analysis_dir = train_dir / "analysis"
    runs = [JobRecord("base", 0, str(train_dir), str(analysis_dir), 0.5, HOSTILE["run_hypothesis"],
                      {"run": "base", "values": {"weights": "<b id=planted-sweep>s</b>"}}).to_dict()]  # fmt: skip
    config = {"experiment": "hostile", "title": HOSTILE["title"],
              "objective": {"goal": HOSTILE["goal"], "hypothesis": HOSTILE["hypothesis"]},
              "dataset": dataset, "runs": {"base": {"seeds": [0], "hypothesis": HOSTILE["run_hypothesis"],
                                                    "description": HOSTILE["description"]}}}  # fmt: skip
    out = tmp / "results" / "hostile"
    params = {"experiment": "hostile", "title": config["title"], "objective": config["objective"],
              "data_dir": str(data_dir), "runs": runs, "config": config,
              "logs": ["logs/prepare_data.ipynb", "logs/analyze/base/seed0.ipynb"],
              "tensorboard_dir": "results/hostile/runs", "provenance_path": str(out / "report.provenance.json"),
              "book_entry_path": str(out / "book.json")}  # fmt: skip
    executed, html = out / "report.ipynb", out / "report.html"
    runner.execute(REPO / "notebooks" / "report.ipynb", executed, params)
    runner.to_html(executed, html)
    index = tmp / "results" / "index.html"
    runner.execute(
        REPO / "notebooks" / "index.ipynb",
        logs / "index.ipynb",
        {"entries": [str(out / "book.json")], "out": str(index)},
    )
    pages = {"report": html, "index": index}
    for name, notebook in (
        ("prepare_data", logs / "prepare_data.ipynb"),
        ("analyze", logs / "analyze/base/seed0.ipynb"),
        ("index notebook", logs / "index.ipynb"),
    ):
        pages[name] = tmp / f"{name}.html"
        runner.to_html(notebook, pages[name])  # what Jupyter shows of the executed notebook
    patch.undo()
    shared = [
        html,
        executed,
        index,
        out / "book.json",
        data_dir / "manifest.json",
        data_dir / "provenance.json",
        *logs.rglob("*.ipynb"),
    ]
    return {"pages": pages, "shared": shared, "home": home}


def test_planted_markup_is_nowhere_live_in_the_report_and_notebooks(hostile):
    for name, path in hostile["pages"].items():
        page = Elements(path.read_text())
        assert page.live() == [], name
    text = " ".join("".join(Elements(hostile["pages"]["report"].read_text()).text).split())
    for shown in ("<b id=planted-title>Title</b> $x$", HOSTILE["goal"], HOSTILE["hypothesis"],
                  "<svg id=planted-run", *CLASS_NAMES, "<b id=planted-weights>w</b>.pt", "<b id=planted-description>"):  # fmt: skip
        assert " ".join(shown.split()) in text, f"{shown!r} is shown as text"
    assert "<b id=planted-sweep>s</b>" in text
    prepare_text = "".join(Elements(hostile["pages"]["prepare_data"].read_text()).text)
    assert BAD_FILE in prepare_text  # listed as skipped, by its name
    index_text = "".join(Elements(hostile["pages"]["index"].read_text()).text)
    assert "<b id=planted-title>Title</b>" in index_text


def test_the_home_folder_is_written_as_tilde_in_everything_shared(hostile):
    for path in hostile["shared"]:
        assert str(hostile["home"]) not in path.read_text(errors="replace"), path
    assert "~/photos" in hostile["pages"]["report"].read_text()


@pytest.mark.slow
def test_a_browser_finds_nothing_live(hostile, tmp_path):
    import browser

    if not browser.available():
        pytest.skip(f"no Chromium at {browser.CHROMIUM}")
    for name, path in hostile["pages"].items():
        seen = browser.inspect(path, tmp_path / f"{name}.png", probe=PROBE)
        found = seen["probe"]
        assert found["planted"] == [] and found["handlers"] == [] and found["scriptLinks"] == 0, name
        assert found["pwned"] is None, f"{name}: planted script ran"
        assert seen["console_errors"] == [] and seen["external"] == [], name
        if name == "report":
            assert "<b id=planted-title>Title</b>" in found["text"]
            assert all(class_name in found["text"] for class_name in CLASS_NAMES[:2])
