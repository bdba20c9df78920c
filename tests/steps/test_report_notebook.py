"""The analyze and report notebooks on fabricated runs (report_demo.py; the conftest fixture
demo_report, built once: its tests are all here). The report follows the lab notebook's structure
and leaks no secrets; it says what the files say: every number, hash and version in report.html
equals the one in the file it comes from; every run, seed and figure is there; every link leads
somewhere; and a real browser renders it offline."""

import base64
import json
import re
import subprocess
from collections import Counter
from html.parser import HTMLParser
from importlib import metadata
from pathlib import Path

import browser
import nbformat
import numpy as np
import pytest
import report_demo
from builders import REPO
from labbook import provenance, report
from labbook.plan import files
from report_demo import SECTIONS, assert_no_secrets


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
        assert rows[name][3] == report.mean_sd([r["metrics"]["val_acc"] for r in group], percent=True)
        assert rows[name][4] == report.accuracy_cell(group), "test accuracy with its 95% intervals"
        assert rows[name][6] == report.mean_sd([r["evaluation"]["macro_f1"] for r in group])
    assert "★ best" in results_table[1][0] and "★" not in results_table[2][0], "baseline beats noisy"
    assert "[" in rows["baseline"][4] and "; seeds " in rows["baseline"][4], "two seeds: both intervals"
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


def test_conclusions_state_each_verdict_and_the_runs_compared(built):
    page, _, records, _ = built
    grouped = report.by_run(records)
    for name, group in grouped.items():
        summary = report.accuracy_intervals(group)
        target = report_demo.RUNS[name]["target_accuracy"]
        # baseline: about 80% against a 10% target; noisy: about 40% against 99%
        word = "supported" if name == "baseline" else "not supported"
        line = (
            f"{name}: {report_demo.RUNS[name]['hypothesis']} → {word}: test accuracy {summary['mean']:.1%} "
            f"(95% CI {report.interval_text(summary['images'])} over test images"
        )
        assert line in page.text and f"against target {target:.0%}" in page.text
    difference = report.paired(grouped["noisy"], grouped["baseline"])
    assert f"not supported: beats baseline: {report.difference_text(difference)}" in page.text
    compared = page.table("run − baseline", "Δ test accuracy (points)")
    assert compared[1][0] == "noisy" and compared[1][1] == f"{difference['difference'] * 100:+.1f}"


# ---------------------------------------------------------------- structure, analysis, secrets
def test_report_follows_the_lab_notebook_structure(demo_report):
    html = demo_report.read_text()
    headings = re.findall(r"<h2[^>]*>(.*?)<", html)
    assert [h.strip() for h in headings] == SECTIONS
    assert "import labbook" not in html  # code hidden
    assert re.search(r"<script[^>]+src=", html) is None  # nothing loads from a CDN
    assert all(
        src.startswith("data:image/png;base64,") for src in re.findall(r'<img[^>]+src="([^"]+)"', html)
    )
    assert (
        "★ best" in html and report.SUPPORTED in html and report.NOT_SUPPORTED in html
    )  # best run, verdicts
    assert "tensorboard --logdir results/fabricated/runs" in html
    assert 'href="logs/analyze/baseline/seed0.ipynb"' in html
    assert (demo_report.parent / "logs/analyze/baseline/seed0.ipynb").is_file(), (
        "the link leads to the notebook"
    )
    for fact in ("git commit", "Python", "scikit-learn", "CUDA", "cuDNN", "config_sha256"[:6]):
        assert fact in html


def test_analysis_writes_every_number_and_figure(demo_report):
    analysis = demo_report.parent / "runs" / "baseline" / "seed0" / "analysis"
    evaluation = json.loads((analysis / "evaluation.json").read_text())
    for key in ("accuracy", "top3_accuracy", "macro_f1", "per_class", "confusion_matrix",
                "confusion_matrix_normalized", "roc", "calibration", "ece", "confident_mistakes"):  # fmt: skip
        assert key in evaluation
    for figure in ("confusion_matrix", "roc", "reliability", "mistakes"):
        assert (analysis / "figures" / f"{figure}.png").stat().st_size > 5000
    recorded = json.loads((analysis / "provenance.json").read_text())
    assert recorded["manifest_sha256"] and recorded["config"]["options"]["calibration_bins"] == 10


def test_report_and_provenance_hold_no_secrets(demo_report):
    assert_no_secrets(demo_report.read_text(), "report.html")
    for path in demo_report.parents[2].rglob("provenance*.json"):
        assert_no_secrets(path.read_text(), str(path))
        assert "environ" not in json.loads(path.read_text())


# ---------------------------------------------------------------- in a real browser
# Headless Chromium opens the report from disk with networking off.
@pytest.mark.slow
@pytest.mark.skipif(not browser.available(), reason=f"no Chromium at {browser.CHROMIUM}")
def test_report_renders_offline_in_chromium(demo_report, tmp_path):
    screenshot = tmp_path / "report.png"
    seen = browser.inspect(demo_report, screenshot)
    print(f"\nscreenshot of the report's first screen: {screenshot}")
    assert seen["console_errors"] == []
    assert seen["images"] and all(image["complete"] and image["width"] > 0 for image in seen["images"])
    # samples, counts, curves, accuracy, then four figures per analyzed job (3 jobs)
    assert len(seen["images"]) == 4 + 4 * 3
    assert seen["headings"][0] == "Fabricated runs" and seen["headings"][1:] == SECTIONS
    assert seen["external"] == []  # nothing points at the network
    assert all(url.startswith("file://") for url in seen["requests"])
    assert screenshot.stat().st_size > 10_000
