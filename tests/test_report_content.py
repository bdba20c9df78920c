"""The report says what the files say: every number, hash and version in report.html equals the
one in the file it comes from; every run, seed and figure is there; every link leads somewhere."""

import base64
import json
import subprocess
from collections import Counter
from html.parser import HTMLParser
from importlib import metadata
from pathlib import Path

import nbformat
import numpy as np
import pytest
import report_demo
from labbook import provenance, report
from labbook.plan import files

REPO = Path(__file__).resolve().parents[1]


class Page(HTMLParser):
    """What a reader sees: tables as rows of cell texts, images, links, and the whole text."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tables, self.images, self.links, self.text = [], [], [], []
        self._cell = None
        self.feed(html)
        # nbconvert's heading anchors (¶) are no text a reader reads
        self.text = " ".join("".join(self.text).replace("¶", "").split())

    BLOCKS = {"p", "div", "li", "td", "th", "tr", "br", "h1", "h2", "h3", "h4", "pre", "blockquote"}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in self.BLOCKS:
            self.text.append(" ")  # blocks are apart on the screen
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append(attrs)
        elif tag == "a" and "href" in attrs:
            self.links.append(attrs["href"])

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        self.text.append(data)

    def table(self, *headers: str) -> list:
        """The one table whose header row starts with these cells: its rows of cell texts."""
        found = [t for t in self.tables if t and t[0][: len(headers)] == list(headers)]
        assert len(found) == 1, f"one table headed {headers}"
        return found[0]


def report_parameters(executed) -> dict:
    """The values papermill handed the report notebook (its injected-parameters cell)."""
    book = nbformat.read(executed, 4)
    cell = next(c for c in book.cells if "injected-parameters" in c.metadata.get("tags", []))
    values = {}
    exec(cell.source, {}, values)  # papermill writes plain Python literals
    return values


@pytest.fixture(scope="module")
def built(demo_report):
    """(page, the report step's parameters, the run records read from the files it was given, data folder)."""
    given = report_parameters(demo_report.with_suffix(".ipynb"))
    return Page(demo_report.read_text()), given, report.load_runs(given["runs"]), Path(given["data_dir"])


def test_hashes_equal_those_of_the_config_and_manifest(built):
    page, given, records, data_dir = built
    step = json.loads(Path(given["provenance_path"]).read_text())
    config = {
        "title": "Fabricated runs",
        "runs": {n: {"seeds": s["seeds"]} for n, s in report_demo.RUNS.items()},
    }
    assert step["config"] == config and step["config_sha256"] == provenance.config_hash(config)
    config_line = f"Config sha256 {step['config_sha256'][:16]}"
    assert page.text.count(config_line) == 1 and f"Config (sha256 {step['config_sha256'][:16]})" in page.text
    manifest_sha = provenance.file_hash(data_dir / "manifest.json")
    assert step["manifest_sha256"] == manifest_sha
    assert f"data manifest sha256 {manifest_sha[:16]}" in page.text
    # each analysis saw that same manifest, and the runs table says so
    seen = [row[-1] for row in page.table("run", "seed", "device")[1:]]
    assert seen == [manifest_sha[:12]] * len(records)


def test_environment_shows_the_git_commit_and_package_versions(built):
    page, _, _, _ = built
    env = {row[0]: row[1:] for row in page.table("")}
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    status = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
    )
    header = page.table("")[0]
    steps = [header.index(step) - 1 for step in ("train", "analyze", "report")]
    if commit.returncode == 0:
        state = "+ uncommitted changes" if status.stdout.strip() else "(clean)"
        assert {env["git commit"][i] for i in steps} == {f"{commit.stdout.strip()[:12]} {state}"}
    else:
        assert {env["git commit"][i] for i in steps} == {"not a git checkout"}
    header = page.table("")[0]
    report_column = header.index("report") - 1
    for package in ("numpy", "matplotlib", "nbconvert", "papermill"):
        assert env[package][report_column] == metadata.version(package), package
    train_column = header.index("train") - 1
    import torch

    assert env["torch build"][train_column] == torch.__version__
    assert env["Python"][report_column] == ".".join(map(str, __import__("sys").version_info[:3]))


def test_per_class_f1_is_the_mean_over_seeds_of_each_evaluation(built):
    page, _, records, _ = built
    table = page.table("class F1")
    assert table[0] == ["class F1", *report_demo.RUNS]
    grouped = report.by_run(records)
    classes = list(records[0]["evaluation"]["per_class"])
    assert [row[0] for row in table[1:]] == classes
    for row in table[1:]:
        for name, cell in zip(grouped, row[1:], strict=True):
            f1 = np.mean([r["evaluation"]["per_class"][row[0]]["f1"] for r in grouped[name]])
            assert cell == f"{f1:.3f}", (row[0], name)


def test_every_run_and_seed_is_in_the_tables_with_its_numbers(built):
    page, _, records, _ = built
    runs = page.table("run", "seed", "device")
    assert [(row[0], row[1]) for row in runs[1:]] == [(r["name"], str(r["seed"])) for r in records]
    results_table = page.table("run", "model", "seeds")
    rows = {row[0].split(" ★")[0]: row for row in results_table[1:]}
    assert set(rows) == set(report_demo.RUNS)
    for name, group in report.by_run(records).items():
        assert rows[name][2] == str(len(report_demo.RUNS[name]["seeds"]))
        accuracy = [r["evaluation"]["accuracy"] for r in group]
        assert rows[name][3] == report.mean_sd(accuracy, percent=True)
        assert rows[name][5] == report.mean_sd([r["evaluation"]["macro_f1"] for r in group])
    assert "★ best" in results_table[1][0] and "★" not in results_table[2][0], "baseline beats noisy"
    seeds = ", ".join(f"{n}: {s['seeds']}" for n, s in report_demo.RUNS.items())
    assert f"seeds {seeds}" in page.text
    for record in records:
        e = record["evaluation"]
        heading = f"{record['name']}, seed {record['seed']} accuracy {e['accuracy']:.1%}, "
        assert heading + f"macro F1 {e['macro_f1']:.3f}, macro AUC {e['macro_auc']:.3f}" in page.text


def test_every_figure_is_there_with_its_alt_text(built):
    page, _, records, _ = built
    by_source = Counter(image["src"] for image in page.images)
    assert all(image.get("alt", "").strip() for image in page.images), "every image says what it shows"
    # the analysis figures: the analyze step's files, each inlined once, byte for byte
    for record in records:
        assert set(record["figures"]) == set(files.FIGURES)
        for stem, path in record["figures"].items():
            source = f"data:image/png;base64,{base64.b64encode(Path(path).read_bytes()).decode()}"
            assert by_source[source] == 1, (record["name"], record["seed"], stem)
            alt = next(image["alt"] for image in page.images if image["src"] == source)
            assert alt in (stem, files.FIGURES[stem])
    # and the report's own: samples, class counts, training curves, accuracy by run
    assert len(page.images) == 4 + len(records) * len(files.FIGURES)


def test_appendix_links_lead_to_files_that_exist(built, demo_report):
    page, _, _, _ = built
    local = [href for href in page.links if not href.startswith(("http:", "https:", "#", "data:"))]
    assert local, "the appendix links the executed notebooks"
    for href in local:
        assert (demo_report.parent / href).resolve().is_file(), href


def test_conclusions_state_each_verdict(built):
    page, _, records, _ = built
    for name, group in report.by_run(records).items():
        accuracy = report.mean_accuracy(group)
        target = report_demo.RUNS[name]["target_accuracy"]
        word = "supported" if accuracy >= target else "not supported"
        sign = "≥" if accuracy >= target else "<"
        line = f"{name}: {report_demo.RUNS[name]['hypothesis']} → {word}: mean test accuracy {accuracy:.1%} {sign} target {target:.0%}"
        assert line in page.text


# ---------------------------------------------------------------- the tables, one by one
def record(name, seed, accuracy, target=None, f1=None):
    f1 = {"a": accuracy, "b": 1 - accuracy} if f1 is None else f1
    return {"name": name, "seed": seed, "target_accuracy": target, "hypothesis": "",
            "metrics": {"model": "m", "device_name": f"dev{seed}", "parameters": {"total": 1, "trainable": 1},
                        "history": [{}], "train_seconds": 1.0, "images_per_s": 1.0},
            "evaluation": {"accuracy": accuracy, "macro_f1": accuracy,
                           "per_class": {c: {"f1": v} for c, v in f1.items()}},
            "provenance": {"options": {"lr": seed}}, "analysis_provenance": {"manifest_sha256": f"{seed}" * 20}}  # fmt: skip


@pytest.mark.parametrize(
    "accuracies, target, supported",
    [([0.75], 0.75, True), ([0.5, 1.0], 0.75, True), ([0.7499], 0.75, False), ([0.7501], 0.75, True),
     ([0.0], 0.0, True), ([1.0], 1.0, True)],
)  # fmt: skip
def test_a_verdict_is_supported_exactly_from_the_target_on(accuracies, target, supported):
    group = [record("r", seed, a, target) for seed, a in enumerate(accuracies)]
    line = report.verdict(group)
    assert (report.SUPPORTED in line) is supported and (report.NOT_SUPPORTED in line) is not supported
    assert report.headline(group).endswith(
        f" {int(supported)} of 1 run hypotheses supported by their target accuracy."
    )


def test_no_target_gives_no_verdict_and_no_count():
    group = [record("r", 0, 0.4)]
    assert report.verdict(group) == "- **r**: no target set; mean test accuracy 40.0% (1 seed)"
    assert "hypotheses" not in report.headline(group)


def test_per_class_f1_table_by_hand():
    records = [record("x", 0, 0.5, f1={"cat": 0.2, "dog": 0.6}), record("x", 1, 0.5, f1={"cat": 0.4, "dog": 0.8}),
               record("y", 0, 0.5, f1={"cat": 1.0, "dog": 0.0})]  # fmt: skip
    assert report.per_class_f1_table(records).splitlines() == [
        "| class F1 | x | y |",
        "|---|---|---|",
        "| cat | 0.300 | 1.000 |",
        "| dog | 0.700 | 0.000 |",
    ]
    assert report.per_class_f1_table([]) == ""


def test_runs_provenance_table_by_hand():
    records = [record("x", 0, 0.5), record("x", 1, 0.5), record("y", 3, 0.5)]
    records[2]["provenance"] = {}
    lines = report.runs_provenance_table(records).splitlines()
    assert lines[0] == "| run | seed | device | training options sha256 | data manifest sha256 seen |"
    assert lines[2] == f"| x | 0 | dev0 | `{provenance.config_hash({'lr': 0})[:12]}` | `{'0' * 12}` |"
    assert lines[3] == f"| x | 1 | dev1 | `{provenance.config_hash({'lr': 1})[:12]}` | `{'1' * 12}` |"
    assert lines[4] == f"| y | 3 | dev3 | — | `{'3' * 12}` |"


def test_environment_table_by_hand():
    train = {"git": {"commit": "a" * 40, "dirty": True}, "python": "3.11.7", "packages": {"numpy": "2.0"},
             "torch": {"torch": "2.1", "cuda": None, "cuda_available": False, "gpus": []}}  # fmt: skip
    analyze = {"git": {"commit": "b" * 40, "dirty": False}, "python": "3.11.7", "packages": {"scipy": "1.1"}}
    elsewhere = {"git": {"commit": None, "dirty": None}}
    steps = {"train": train, "analyze": analyze, "copy": elsewhere, "none": {}}
    lines = report.environment_table(steps).splitlines()
    assert lines[0] == "|  | train | analyze | copy | none |"
    clean, dirty = f"`{'b' * 12}` (clean)", f"`{'a' * 12}` + uncommitted changes"
    assert lines[2] == f"| git commit | {dirty} | {clean} | not a git checkout | — |"
    assert "| Python | 3.11.7 | 3.11.7 | — | — |" in lines
    assert "| numpy | 2.0 | — | — | — |" in lines and "| scipy | — | 1.1 | — | — |" in lines
    assert "| torch build | 2.1 | — | — | — |" in lines and "| GPU | none (CPU) | — | — | — |" in lines
    assert "| CUDA available | False | — | — | — |" in lines
    assert not any(line.startswith("| CUDA (torch build)") for line in lines), "no step has it: no row"


def test_image_row_inlines_each_png_with_its_name_as_alt(tmp_path):
    paths = []
    for name, content in (("roc", b"\x89PNG one"), ("loss curve", b"\x89PNG two")):
        paths.append(tmp_path / f"{name}.png")
        paths[-1].write_bytes(content)
    page = Page(report.image_row(paths, width=300))
    assert [image["alt"] for image in page.images] == ["roc", "loss curve"]
    assert [base64.b64decode(image["src"].split(",", 1)[1]) for image in page.images] == [
        b"\x89PNG one",
        b"\x89PNG two",
    ]
    assert all(image["style"] == "max-width:300px" for image in page.images)
    assert "style" not in Page(report.image_row(paths)).images[0]
