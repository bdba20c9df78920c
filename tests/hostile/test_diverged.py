"""A run that diverges (its training loss becomes NaN or infinite, as one learning rate of a sweep
easily does) stops where it diverged and still writes every output; its analysis records it
and writes every figure file; the report marks it *diverged* everywhere it lists it and
leaves it out of the comparison. (The whole workflow over such a sweep:
workflows/test_workflow_diverged.py.)"""

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from builders import REPO, Elements, scripts_on_pythonpath
from labbook import arrays, book, export, metrics, plots, provenance, report, runner, train
from labbook.plan import files
from labbook.plan.record import JobRecord
from report_demo import fake_metrics
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

# SGD at a learning rate of a million: CIFARNet's loss is NaN within the first few steps.
DIVERGING = {"model": "cifarnet", "optimizer": "sgd", "lr": 1e6, "epochs": 2, "batch_size": 32,
             "train_subset": 256, "device": "cpu", "deterministic": True, "log_every": 1}  # fmt: skip
STEPS_PER_EPOCH = 256 // 32
ANALYSIS_OPTIONS = {"top_k": 3, "calibration_bins": 10, "mistakes": 8}


def text_of(html: str) -> str:
    """The page's text as a reader sees it (no tags, no inlined image data)."""
    return " ".join("".join(Elements(html).text).split())


# ---------------------------------------------------------------- training
def test_a_diverging_run_stops_in_that_epoch_says_so_and_writes_every_output(demo_data, tmp_path):
    logs = []
    opts = train.TrainOptions.from_dict(DIVERGING)
    result = train.train(opts, demo_data, tmp_path, threads=1, log=logs.append)

    diverged = result["diverged"]
    assert diverged is not None and diverged["epoch"] == 1 and diverged["loss"] in ("nan", "inf", "-inf")
    assert 1 <= diverged["step"] < STEPS_PER_EPOCH, "stopped in the step it diverged, not at the epoch's end"
    assert len(result["history"]) == 1, "no epoch after the one it diverged in"
    assert all(step < diverged["step"] for step, _ in result["step_losses"]), "no step after it"
    written = json.loads((tmp_path / files.RUN["metrics"]).read_text())
    assert written["diverged"] == diverged
    assert {"history", "test_acc", "test_loss", "step_losses", "options", "gpu"} <= set(written)
    assert written["test_acc"] == 0.0, "a non-finite prediction is not a correct one"

    # the log: one WARNING line naming the epoch and the step
    warnings = [line for line in logs if line.startswith("WARNING:")]
    assert len(warnings) == 1 and "diverged" in warnings[0]
    assert f"epoch 1, step {diverged['step']}" in warnings[0]

    # TensorBoard: a text entry and a scalar at the step it diverged
    events = EventAccumulator(str(tmp_path / files.TENSORBOARD), size_guidance={"tensors": 0, "scalars": 0})
    events.Reload()
    assert "diverged/text_summary" in events.Tags()["tensors"]
    [marker] = events.Scalars("train/diverged_at_step")
    assert marker.step == diverged["step"] == marker.value

    # every output the train rule declares, except the notebook's provenance record
    for name, path in files.paths("train", tmp_path).items():
        assert name == "provenance" or path.is_file(), f"{path.name} missing"
    assert not (tmp_path / files.CHECKPOINT).exists()
    logits = arrays.load_arrays(tmp_path / files.RUN["predictions"], ("logits",))[0]
    assert not np.isfinite(logits).all(), "the predictions of a diverged network"
    # the portable model is the network as it diverged (exported as is): it loads and runs
    program, info = export.load_portable(tmp_path)
    size = info["image_size"]
    assert not torch.isfinite(program(torch.zeros((1, 3, size, size), dtype=torch.uint8))).all()


def test_a_diverged_checkpoint_resumes_into_no_more_steps(demo_data, tmp_path):
    opts = train.TrainOptions.from_dict({**DIVERGING, "keep_checkpoint": True})
    first = train.train(opts, demo_data, tmp_path, threads=1, log=lambda *_: None)
    logs = []
    again = train.train(opts, demo_data, tmp_path, threads=1, log=logs.append)
    assert any(line.startswith("resuming from") for line in logs)
    assert again["diverged"] == first["diverged"] and len(again["history"]) == 1


def test_a_healthy_run_records_diverged_null(demo_data, tmp_path):
    opts = train.TrainOptions.from_dict({**DIVERGING, "lr": 0.01, "epochs": 1, "train_subset": 64})
    result = train.train(opts, demo_data, tmp_path, threads=1, log=lambda *_: None)
    assert (
        result["diverged"] is None and json.loads((tmp_path / "metrics.json").read_text())["diverged"] is None
    )
    assert len(result["history"]) == 1 and math.isfinite(result["test_loss"])


# ---------------------------------------------------------------- evaluation
def test_evaluate_of_non_finite_logits_says_diverged_with_null_metrics_in_strict_json():
    labels = np.arange(12) % 3
    logits = np.full((12, 3), np.nan)
    logits[:4] = np.eye(3)[labels[:4]] * 5  # four images still have finite logits, all right
    logits[4, 0] = np.inf
    result = metrics.evaluate(logits, labels, ["a", "b", "c"], top_k=2)
    json.dumps(result, allow_nan=False)  # strict JSON: nothing is NaN
    assert result["diverged"] is True
    assert result["accuracy"] is None and result["top2_accuracy"] is None and result["macro_f1"] is None
    assert result["macro_auc"] is None and result["ece"] is None and result["confusion_matrix"] is None
    assert result["finite_predictions"] == 4 and result["accuracy_where_finite"] == 1.0
    assert result["per_class"]["a"] == {
        "precision": None,
        "recall": None,
        "f1": None,
        "support": 4,
        "auc": None,
    }
    assert result["test_images"] == 12 and result["confident_mistakes"] == []
    everything = metrics.evaluate(np.full((12, 3), np.nan), labels, ["a", "b", "c"])
    assert everything["finite_predictions"] == 0 and everything["accuracy_where_finite"] is None
    healthy = metrics.evaluate(np.eye(3)[labels], labels, ["a", "b", "c"])
    assert healthy["diverged"] is False and healthy["accuracy"] == 1.0


# ---------------------------------------------------------------- fabricated runs, analyzed and reported
RUNS = {  # name: (seeds diverged, target, hypothesis)
    "steady": ({}, 0.1, "Beats chance."),
    "lr1e6": ({0: {"epoch": 1, "step": 3, "loss": "nan"}}, 0.1, "Beats chance too."),
}


def fabricate(data_dir: Path, root: Path, name: str, seed: int, diverged: dict | None) -> dict:
    """A run's train outputs as the train step writes them (non-finite logits and a diverged
    record when diverged), then the real analyze notebook over them; its job record."""
    classes = arrays.read_manifest(data_dir)["classes"]
    _, labels = arrays.load_split(data_dir, "test")
    rng = np.random.default_rng(seed)
    logits = 3.0 * np.eye(len(classes))[labels] + rng.normal(0, 1, (len(labels), len(classes)))
    run_dir = root / "runs" / name / f"seed{seed}"
    run_dir.mkdir(parents=True)
    record = fake_metrics(name, seed, metrics.accuracy(logits, labels), classes)
    record["diverged"] = diverged
    if diverged:
        logits[:] = np.nan
        record["history"] = [{**record["history"][0], "train_loss": math.nan, "val_loss": math.nan,
                              "val_acc": 0.0}]  # fmt: skip
        record["test_acc"], record["test_loss"] = 0.0, math.nan
    np.savez(run_dir / files.RUN["predictions"], logits=logits.astype(np.float32), labels=labels)
    (run_dir / files.RUN["metrics"]).write_text(json.dumps(record))
    provenance.write(
        run_dir / files.RUN["provenance"], provenance.collect("train", ["numpy"], run=name, seed=seed)
    )
    analysis_dir = run_dir / files.ANALYSIS_FOLDER
    params = {"data_dir": str(data_dir), "run_dir": str(run_dir), "out_dir": str(analysis_dir), "run": name,
              "seed": seed, "options": ANALYSIS_OPTIONS}  # fmt: skip
    runner.execute(
        REPO / "notebooks" / "analyze.ipynb", root / "logs" / "analyze" / name / f"seed{seed}.ipynb", params
    )
    return JobRecord(name, seed, str(run_dir), str(analysis_dir), *RUNS[name][1:]).to_dict()


@pytest.fixture(scope="module")
def fabricated(demo_data, tmp_path_factory):
    """{jobs, html, book}: a healthy run and a diverged one, analyzed and reported by the real
    notebooks."""
    patch = pytest.MonkeyPatch()
    patch.setenv("PYTHONPATH", scripts_on_pythonpath())  # the kernels find labbook as the rules make them
    root = tmp_path_factory.mktemp("diverged") / "results" / "sweep"
    jobs = [fabricate(demo_data, root, name, 0, seeds.get(0)) for name, (seeds, *_) in RUNS.items()]
    params = {"experiment": "sweep", "title": "A sweep with a diverged run",
              "objective": {"goal": "Find a learning rate.", "hypothesis": "One works."},
              "data_dir": str(demo_data), "runs": jobs, "config": {"runs": {n: {"seeds": [0]} for n in RUNS}},
              "logs": [], "tensorboard_dir": "results/sweep/runs",
              "provenance_path": str(root / "report.provenance.json"), "book_entry_path": str(root / "book.json")}  # fmt: skip
    runner.execute(REPO / "notebooks" / "report.ipynb", root / "report.ipynb", params)
    runner.to_html(root / "report.ipynb", root / "report.html")
    yield {
        "jobs": jobs,
        "html": (root / "report.html").read_text(),
        "book": json.loads((root / "book.json").read_text()),
    }
    patch.undo()


def test_the_analysis_of_a_diverged_run_records_it_and_writes_every_figure_file(fabricated):
    job = JobRecord.from_dict(fabricated["jobs"][1])
    outputs = job.analysis_files()
    for name, path in outputs.items():
        assert path.is_file(), f"the analyze rule's output {name} is missing"
    evaluation = json.loads(outputs["evaluation"].read_text())  # strict JSON: no NaN in it
    assert evaluation["diverged"] is True and evaluation["accuracy"] is None
    assert evaluation["finite_predictions"] == 0 and evaluation["test_images"] == 200
    healthy = json.loads(
        JobRecord.from_dict(fabricated["jobs"][0]).analysis_files()["evaluation"].read_text()
    )
    assert healthy["diverged"] is False and healthy["accuracy"] > 0.5


def test_the_report_marks_the_diverged_run_and_compares_the_others(fabricated):
    text = text_of(fabricated["html"])
    assert not re.search(r"\bnan\b", text, flags=re.IGNORECASE), "a NaN leaked into the page"
    assert "Best run: steady" in text and "1 of 2 runs diverged (lr1e6): left out of the comparison" in text
    assert "1 of 2 claims supported by their 95% intervals" in text
    assert "steady ★ best" in text and "lr1e6 diverged" in text  # the results table
    assert "lr1e6: Beats chance too. → not supported (diverged): seed 0 diverged in epoch 1 at step 3" in text
    assert "steady: Beats chance. → supported" in text
    assert "class F1 steady lr1e6 diverged" in text  # the per-class F1 table's header
    assert "lr1e6, seed 0: diverged¶This job diverged in epoch 1 at step 3 (train loss not a number)" in text
    # the healthy run's figures are in the page, the diverged run's notes are not
    alts = [attrs.get("alt") for tag, attrs in Elements(fabricated["html"]).tags if tag == "img"]
    assert alts.count("roc") == 1 and alts.count("confusion_matrix") == 1
    entry = fabricated["book"]
    assert entry["best_run"] == "steady" and entry["diverged_runs"] == ["lr1e6"]
    assert (entry["runs"], entry["hypotheses_supported"], entry["hypotheses_checked"]) == (2, 1, 2)


# ---------------------------------------------------------------- the report's pieces, by hand
def job(name, seed, accuracy, diverged=False, target=0.5, sweep=None):
    where = {"epoch": 2, "step": 17, "loss": "inf"} if diverged else None
    evaluation = {"accuracy": None if diverged else accuracy, "macro_f1": None if diverged else accuracy / 2,
                  "top_k": 3, "top3_accuracy": None if diverged else 1.0, "ece": None if diverged else 0.1,
                  "per_class": {"a": {"f1": None if diverged else accuracy}}, "diverged": diverged,
                  "accuracy_interval": None if diverged else [accuracy - 0.05, accuracy + 0.05]}  # fmt: skip
    return {"name": name, "seed": seed, "target_accuracy": target, "hypothesis": "", "sweep": sweep,
            "metrics": {"model": "cifarnet", "device_name": "cpu", "parameters": {"total": 10, "trainable": 10},
                        "history": [{}], "train_seconds": 1.0, "images_per_s": 100.0, "diverged": where,
                        "val_acc": None if diverged else accuracy},
            "evaluation": evaluation}  # fmt: skip


def test_one_diverged_seed_of_two_is_left_out_of_the_mean_and_said_so():
    records = [job("wobbly", 0, 0.9), job("wobbly", 1, None, diverged=True), job("plain", 0, 0.6)]
    table = report.results_table(records)
    [wobbly, plain] = table.splitlines()[2:]
    assert wobbly.startswith(
        "| wobbly *diverged* | cifarnet | 2 | 90.0% (1 of 2 seeds diverged) | 90.0% (1 of 2 seeds diverged) "
        "[85.0–95.0%] | 100.0% |"
    ), "the interval of the seed that did not diverge"
    assert plain.startswith("| **plain** ★ best |"), "the diverged run's better mean does not make it best"
    assert "nan" not in table.lower()
    assert report.best_run(records) == "plain" and report.hypotheses_held(records) == [False, True]
    [verdict, _] = report.verdicts(records)
    assert (
        "not supported (diverged)</b>: seed 1 diverged in epoch 2 at step 17 (train loss infinite)" in verdict
    )
    assert "the other seeds' mean test accuracy 90.0%" in verdict
    assert report.per_class_f1_table(records).splitlines()[2] == "| a | 0.900 | 0.600 |"
    assert "1 of 2 runs diverged (wobbly)" in report.headline(records)
    entry = book.entry("x", "t", {"name": "d", "kind": "demo"}, records, {})
    assert (
        entry["best_run"] == "plain"
        and entry["diverged_runs"] == ["wobbly"]
        and entry["best_accuracy"] == 0.6
    )
    assert "2 runs, 3 jobs, 1 diverged" in book.index_html([{**entry, "folder": "x"}])


def test_every_run_diverged_means_no_best_run():
    records = [job("a", 0, None, diverged=True, target=None), job("b", 0, None, diverged=True)]
    assert report.best_run(records) is None
    assert report.headline(records) == "**No best run**: all 2 runs diverged, so none has a test accuracy."
    assert (
        report.results_table(records)
        .splitlines()[2]
        .startswith("| a *diverged* | cifarnet | 1 | *diverged* | *diverged* | — | — | — |")
    )
    assert "<b" in report.verdict(records[:1]) and "diverged</b>: seed 0 diverged" in report.verdict(
        records[:1]
    )
    assert report.hypotheses_held(records) == [False]
    entry = book.entry("x", "t", {"name": "d", "kind": "demo"}, records, {})
    assert entry["best_run"] is None and entry["best_accuracy"] is None


def test_a_sweep_with_a_diverged_value_says_so_in_its_table_and_plot(tmp_path):
    sweep = {"run": "sgd"}
    records = [job("sgd-lr0.003", 0, 0.7, sweep={**sweep, "values": {"lr": 0.003}}),
               job("sgd-lr1000000.0", 0, None, diverged=True, sweep={**sweep, "values": {"lr": 1e6}})]  # fmt: skip
    points = report.sweeps(records)["sgd"]
    assert points[1] == ({"lr": 1e6}, [None], "sgd-lr1000000.0", [None])
    assert report.sweep_table(points).splitlines()[2:] == [
        "| 0.003 | 70.0% ★ | 70.0% | 1 | sgd-lr0.003 |",
        "| 1000000.0 | *diverged* | *diverged* | 1 | sgd-lr1000000.0 |",
    ]
    fig = plots.sweep([({"lr": 0.003}, 0.7)], title="sweep sgd", diverged=[{"lr": 1e6}])
    curve, lost = fig.axes[0].get_lines()
    assert (
        list(curve.get_ydata()) == [0.7]
        and list(lost.get_xdata()) == [1e6]
        and lost.get_label() == "diverged"
    )
    assert fig.axes[0].get_xscale() == "log"
    fig.canvas.draw()
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert "0.01" in ticks and "1e+06" in ticks, "plain numbers, not raw mathtext: $\\mathdefault{10^{-2}}$"
    plots.save(fig, tmp_path / "sweep.png")
    grid = plots.sweep([({"lr": 0.1, "bs": 32}, 0.5)], diverged=[{"lr": 1.0, "bs": 32}])
    assert "diverged" in [t.get_text() for t in grid.axes[0].texts]
    plots.save(grid, tmp_path / "grid.png")
    bars = plots.accuracy_by_run({"sgd-lr0.003": [0.7], "sgd-lr1000000.0": []})
    assert "diverged" in [t.get_text() for t in bars.axes[0].texts]
    plots.save(plots.notice("run diverged: no ROC curves"), tmp_path / "notice.png")
