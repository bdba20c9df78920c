"""The lab report: its tables and verdicts, its structure, and that it leaks no secrets."""

import json
import os
import re
import sys
import zipfile
from pathlib import Path

import pytest
import report_demo
from conftest import copy_workflow, snakemake
from labbook import provenance, report

SECTIONS = [
    "Objective",
    "Environment",
    "Data",
    "Model",
    "Training",
    "Results",
    "Analysis",
    "Conclusions",
    "Appendix",
]


def record(name, seed, accuracy, target=None, hypothesis=""):
    history = [{"epoch": 1, "train_loss": 1, "test_loss": 1, "train_acc": accuracy, "test_acc": accuracy}]
    return {
        "name": name, "seed": seed, "target_accuracy": target, "hypothesis": hypothesis,
        "metrics": {"model": "m", "parameters": {"total": 1000, "trainable": 10}, "history": history,
                    "train_seconds": 2.0, "images_per_s": 100.0, "device_name": "cpu"},
        "evaluation": {"accuracy": accuracy, "macro_f1": accuracy, "top_k": 3, "top3_accuracy": 1.0, "ece": 0.1,
                       "per_class": {"a": {"f1": accuracy}, "b": {"f1": 0.5}}},
    }  # fmt: skip


RECORDS = [
    record("a", 0, 0.80, 0.75, "A learns."),
    record("a", 1, 0.90, 0.75, "A learns."),
    record("b", 0, 0.5, 0.9),
]


def test_seeds_are_aggregated_as_mean_and_sd():
    assert report.mean_sd([0.8, 0.9]) == "0.8500 ± 0.0707"
    assert report.mean_sd([0.8, 0.9], percent=True) == "85.0 ± 7.1%"
    assert report.mean_sd([0.8]) == "0.8000"


def test_results_table_marks_the_best_run_once():
    table = report.results_table(RECORDS)
    rows = table.splitlines()[2:]
    assert len(rows) == 2 and "★ best" in rows[0] and "★" not in rows[1]
    assert "85.0 ± 7.1%" in rows[0]  # two seeds
    for column in ("test accuracy", "macro F1", "parameters", "epochs", "train s", "images/s", "device"):
        assert column in table.splitlines()[0]


def test_verdicts_check_each_hypothesis_against_its_target():
    lines = report.verdicts(RECORDS)
    assert lines[0].startswith(
        f"- **a**: _A learns._ → {report.SUPPORTED}: mean test accuracy 85.0% ≥ target 75%"
    )
    assert "2 seeds" in lines[0]
    assert f"{report.NOT_SUPPORTED}: mean test accuracy 50.0% < target 90%" in lines[1]
    assert report.headline(RECORDS).startswith("**Best run: a**")
    assert "1 of 2 run hypotheses supported" in report.headline(RECORDS)


def test_provenance_replaces_the_home_directory(tmp_path):
    home = os.path.expanduser("~")
    record_ = provenance.collect("test", ["numpy"], config={"weights": f"{home}/models/vgg.pt"})
    path = tmp_path / "provenance.json"
    provenance.write(path, record_)
    text = path.read_text()
    assert home not in text and "~/models/vgg.pt" in text
    saved = json.loads(text)
    assert saved["config_sha256"] == provenance.config_hash({"weights": f"{home}/models/vgg.pt"})
    assert saved["packages"]["numpy"] and saved["labbook"]


def assert_no_secrets(text: str, where: str):
    home = os.path.expanduser("~")
    assert report_demo.SECRET_VALUE not in text, f"{where} holds an environment variable's value"
    assert not re.search(re.escape(home) + r"(/|\b)", text) or home == "/", (
        f"{where} holds the home directory"
    )
    for name, value in os.environ.items():
        # values of variables that look like credentials must never show up
        if re.search(r"TOKEN|SECRET|PASSWORD|API_KEY|ACCESS_KEY", name) and len(value) >= 8:
            assert value not in text, f"{where} holds the value of ${name}"


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


@pytest.mark.slow
def test_tiny_workflow_report_and_snakemake_report(tmp_path, monkeypatch):
    """The whole tiny workflow, then Snakemake's own report of the registered figures."""
    workdir = copy_workflow(tmp_path / "wf")
    (workdir / "tiny.yaml").write_text((Path(__file__).parent / "configs" / "tiny.yaml").read_text())
    monkeypatch.setenv(report_demo.SECRET_NAME, report_demo.SECRET_VALUE)
    # the rules call `python`: this venv's, also when the venv is not activated
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    snakemake(workdir, "--configfile", "tiny.yaml")
    html = workdir / "results" / "tiny" / "report.html"
    assert_no_secrets(html.read_text(), "report.html")
    for path in (workdir / "results").rglob("provenance*.json"):
        assert_no_secrets(path.read_text(), str(path))
    snakemake(workdir, "--configfile", "tiny.yaml", "--report", "results/snakemake-report.zip")
    with zipfile.ZipFile(workdir / "results" / "snakemake-report.zip") as archive:
        names = archive.namelist()
    for figure in ("confusion_matrix.png", "roc.png", "reliability.png", "mistakes.png", "report.html"):
        assert any(name.endswith(figure) for name in names), figure
