"""A lab report built from fabricated runs in seconds: the report's tests need real step files
(metrics, predictions, evaluations, provenance), not real training. The predictions are the true
class plus noise; the analysis is the real analyze notebook."""

import json
import os
import re
from pathlib import Path

import numpy as np
from builders import REPO, scripts_on_pythonpath
from labbook import arrays, metrics, provenance, runner
from labbook.plan.record import JobRecord

# A value no report or provenance record may ever contain (see steps/test_report_notebook.py).
SECRET_NAME, SECRET_VALUE = "LABBOOK_TEST_API_TOKEN", "tok-3c1b9f27e5d84a06"

# The report's sections, in order.
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
# Two runs: "baseline" over two seeds (aggregated as mean ± sd), "noisy" worse on purpose.
RUNS = {
    "baseline": {"seeds": [0, 1], "noise": 1.0, "target_accuracy": 0.1, "hypothesis": "Beats chance."},
    "noisy": {"seeds": [0], "noise": 4.0, "target_accuracy": 0.99, "hypothesis": "Reaches 99%.",
              "beats": {"run": "baseline", "margin": 0.0}},
}  # fmt: skip
VAL_GAP = 0.02  # a fabricated run's validation accuracy: its test accuracy less this


def fake_metrics(name, seed, accuracy, classes):
    history = [
        {"epoch": e, "train_loss": 2 / e, "val_loss": 2.2 / e, "train_acc": accuracy * e / 3,
         "val_acc": (accuracy - VAL_GAP) * e / 3, "lr": 0.01, "train_seconds": e, "images_per_s": 900.0}
        for e in (1, 2, 3)
    ]  # fmt: skip
    options = {"model": "cifarnet", "weights": "none", "optimizer": "adam", "lr": 0.003, "schedule": "cosine",
               "batch_size": 32, "precision": "fp32"}  # fmt: skip
    return {"model": "cifarnet", "seed": seed, "options": options, "classes": classes,
            "parameters": {"total": 145578, "trainable": 145578}, "device": "cpu", "device_name": "cpu",
            "history": history, "val_acc": accuracy - VAL_GAP, "test_acc": accuracy, "train_seconds": 3.0 + seed,
            "images_per_s": 900.0 + seed}  # fmt: skip


def build(data_dir: Path, root: Path) -> Path:
    """Fabricated train outputs → analyze notebook per run → report notebook → report.html."""
    os.environ[SECRET_NAME] = SECRET_VALUE  # the kernels inherit it: nothing may record it
    # the notebooks' kernels find the library the way the rules make them: on PYTHONPATH
    os.environ["PYTHONPATH"] = scripts_on_pythonpath()
    classes = arrays.read_manifest(data_dir)["classes"]
    _, test_labels = arrays.load_split(data_dir, "test")
    signal = 3.0 * np.eye(len(classes))[test_labels]  # the true class stands out, by this much
    runs = []
    for name, spec in RUNS.items():
        for seed in spec["seeds"]:
            rng = np.random.default_rng(seed)
            logits = signal + rng.normal(0, spec["noise"], signal.shape)
            train_dir = root / "results" / "fabricated" / "runs" / name / f"seed{seed}"
            train_dir.mkdir(parents=True)
            np.savez(train_dir / "predictions.npz", logits=logits, labels=test_labels)
            accuracy = metrics.accuracy(logits, test_labels)
            (train_dir / "metrics.json").write_text(json.dumps(fake_metrics(name, seed, accuracy, classes)))
            provenance.write(
                train_dir / "provenance.json",
                provenance.collect("train", ["numpy"], with_torch=True, run=name, seed=seed, options={}),
            )
            params = {"data_dir": str(data_dir), "run_dir": str(train_dir), "out_dir": str(train_dir / "analysis"),
                      "run": name, "seed": seed, "options": {"top_k": 3, "calibration_bins": 10, "mistakes": 8}}  # fmt: skip
            runner.execute(
                REPO / "notebooks" / "analyze.ipynb",
                root / "results" / "fabricated" / "logs" / "analyze" / name / f"seed{seed}.ipynb",
                params,
            )
            runs.append(JobRecord(name, seed, str(train_dir), str(train_dir / "analysis"),
                                  spec["target_accuracy"], spec["hypothesis"], beats=spec.get("beats")).to_dict())  # fmt: skip
    config = {"title": "Fabricated runs", "runs": {n: {"seeds": s["seeds"]} for n, s in RUNS.items()}}
    out = root / "results" / "fabricated"
    params = {"experiment": "fabricated", "title": "Fabricated runs",
              "objective": {"goal": "Test the report.", "hypothesis": "None."},
              "data_dir": str(data_dir), "runs": runs, "config": config,
              "logs": ["logs/analyze/baseline/seed0.ipynb"], "tensorboard_dir": "results/fabricated/runs",
              "provenance_path": str(out / "report.provenance.json"),
              "book_entry_path": str(out / "book.json")}  # fmt: skip
    executed, html = out / "report.ipynb", out / "report.html"
    runner.execute(REPO / "notebooks" / "report.ipynb", executed, params)
    runner.to_html(executed, html)
    return html


def assert_no_secrets(text: str, where: str):
    """Neither SECRET_VALUE, nor the home directory, nor a credential-like variable's value is in text."""
    home = os.path.expanduser("~")
    assert SECRET_VALUE not in text, f"{where} holds an environment variable's value"
    assert not re.search(re.escape(home) + r"(/|\b)", text) or home == "/", (
        f"{where} holds the home directory"
    )
    for name, value in os.environ.items():
        # values of variables that look like credentials must never show up
        if re.search(r"TOKEN|SECRET|PASSWORD|API_KEY|ACCESS_KEY", name) and len(value) >= 8:
            assert value not in text, f"{where} holds the value of ${name}"
