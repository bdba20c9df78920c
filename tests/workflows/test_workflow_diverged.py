"""A learning-rate sweep with one value that diverges, through the whole workflow in a throwaway
copy: the workflow finishes, the diverged run trains, is analyzed and reported as *diverged*,
and the other run is reported as usual. (The pieces: hostile/test_diverged.py.)"""

import json
import re

import pytest
import yaml
from builders import Elements, copy_workflow, snakemake, tiny_config

HEALTHY, DIVERGED = "sgd-lr0.003", "sgd-lr1000000.0"


@pytest.mark.slow
def test_a_sweep_with_a_diverging_learning_rate_gets_its_report_and_lab_book_row(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    config = tiny_config(experiment="diverging")
    config["dataset"].update(train_size=200, test_size=100)
    config["train"].update(epochs=2)
    config["runs"] = {
        "sgd": {
            "optimizer": "sgd",
            "seeds": [0],
            "target_accuracy": 0.1,
            "hypothesis": "Some rate learns.",
            "sweep": {"lr": [0.003, 1e6]},
        }  # fmt: skip
    }
    (workdir / "diverging.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    result = snakemake(workdir, "--configfile", "diverging.yaml", check=False)
    assert result.returncode == 0, result.stdout + result.stderr

    results = workdir / "results" / "diverging"
    assert (results / "report.html").is_file() and (workdir / "results" / "index.html").is_file()
    lost = json.loads((results / "runs" / DIVERGED / "seed0" / "metrics.json").read_text())
    assert lost["diverged"]["epoch"] == 1 and len(lost["history"]) == 1
    assert json.loads((results / "runs" / HEALTHY / "seed0" / "metrics.json").read_text())["diverged"] is None
    log = (results / "logs" / "train" / DIVERGED / "seed0.log").read_text()
    assert re.search(r"WARNING: training diverged in epoch 1, step \d+", log)
    evaluation = json.loads(
        (results / "runs" / DIVERGED / "seed0" / "analysis" / "evaluation.json").read_text()
    )
    assert evaluation["diverged"] is True and evaluation["accuracy"] is None

    text = " ".join("".join(Elements((results / "report.html").read_text()).text).split())
    assert not re.search(r"\bnan\b", text, flags=re.IGNORECASE)
    assert f"Best run: {HEALTHY}" in text and f"{HEALTHY} ★ best" in text
    assert f"{DIVERGED} diverged" in text and "not supported (diverged)" in text
    assert f"{HEALTHY}, seed 0¶accuracy " in text, "the healthy run's analysis as usual"
    entry = json.loads((results / "book.json").read_text())
    assert entry["best_run"] == HEALTHY and entry["diverged_runs"] == [DIVERGED]
    assert "2 runs, 2 jobs, 1 diverged" in (workdir / "results" / "index.html").read_text()
