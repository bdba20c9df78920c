"""The report of a whole workflow run, in a throwaway copy of the tiny workflow: it and every
provenance record hold no secret, and Snakemake's own report holds the registered figures. (The
report notebook on fabricated runs: steps/test_report_notebook.py.)"""

import shutil
import zipfile

import pytest
from builders import TINY_CONFIG, copy_workflow, snakemake
from report_demo import SECRET_NAME, SECRET_VALUE, assert_no_secrets


@pytest.mark.slow
def test_tiny_workflow_report_and_snakemake_report(tmp_path, monkeypatch):
    """The whole tiny workflow, then Snakemake's own report of the registered figures."""
    workdir = copy_workflow(tmp_path / "wf")
    shutil.copy(TINY_CONFIG, workdir / "tiny.yaml")
    monkeypatch.setenv(SECRET_NAME, SECRET_VALUE)  # the steps inherit it: nothing may record it
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
