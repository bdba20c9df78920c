"""The lab book's "Compare runs" in headless Chromium, clicked as a reader clicks: tick runs, read
the options that differ, show them all, sort by a column and reverse it, choose a baseline and read
the deltas and the paired interval, compare runs on other test images, and a run whose name is
markup shown as text. (The entry and the pairing rule: unit/test_book.py.)"""

import json

import browser
import numpy as np
import pytest
from labbook import book, report, stats
from labbook.plan import files

HOSTILE = "</script><img src=x onerror=alert(1)>"
BASE = {
    "model": "cifarnet",
    "optimizer": "adam",
    "lr": 0.003,
    "batch_size": 32,
    "epochs": 3,
    "weight_decay": 0.0,
}
ALPHA = {"name": "shapes", "kind": "demo", "test_size": 40, "seed": 0, "image_size": 32}
BETA = {**ALPHA, "seed": 1}  # another split of the same generator: other test images


def job(root, name, seed, labels, right: int, val_acc: float, options: dict, sweep=None, predictions=True):
    """A record as report.load_runs gives it; `right` of the test images classified right."""
    run_dir = root / name.replace("/", "_").replace("<", "_") / f"seed{seed}"
    run_dir.mkdir(parents=True)
    correct = np.random.default_rng(seed + right).permutation(len(labels)) < right
    saved = files.paths("train", run_dir)["predictions"]
    if predictions:
        logits = np.eye(3, dtype=np.float32)[np.where(correct, labels, (labels + 1) % 3)]
        np.savez(saved, logits=logits, labels=labels)
    history = [{"epoch": e, "train_loss": 1.5 / e, "train_acc": 0.3 * e, "val_loss": 1.2 / e,
                "val_acc": val_acc * (0.6 + 0.2 * e)} for e in (1, 2)]  # fmt: skip
    accuracy = right / len(labels)
    return {"name": name, "seed": seed, "run_dir": str(run_dir), "analysis_dir": str(run_dir / "analysis"),
            "target_accuracy": None, "hypothesis": "", "sweep": sweep, **report.test_correctness(saved),
            "metrics": {"model": options["model"], "options": options, "val_acc": val_acc, "test_acc": accuracy,
                        "best_epoch": 2, "parameters": {"total": 10_000 + right, "trainable": 10_000},
                        "train_seconds": 1.0 + right / 10, "history": history},
            "evaluation": {"accuracy": accuracy, "macro_f1": accuracy - 0.05}}  # fmt: skip


def sweep_run(root, labels, lr, batch_size, rights, vals):
    name = f"cnn-lr{lr}-bs{batch_size}"
    sweep = {"run": "cnn", "values": {"lr": lr, "batch_size": batch_size}}
    options = {**BASE, "lr": lr, "batch_size": batch_size}
    return [
        job(root, name, s, labels, r, v, options, sweep)
        for s, (r, v) in enumerate(zip(rights, vals, strict=True))
    ]


@pytest.fixture
def page(tmp_path):
    """Two experiments' book entries and the lab book built from them. Run ids, in page order:
    0-3 alpha (three sweep runs, the hostile name), 4-5 beta (another test split; 5 without
    predictions)."""
    results = tmp_path / "results"
    alpha_labels = np.arange(40) % 3
    beta_labels = (np.arange(40) + 1) % 3
    alpha = [
        *sweep_run(results / "alpha", alpha_labels, 0.01, 32, (30, 33), (0.80, 0.82)),
        *sweep_run(results / "alpha", alpha_labels, 0.001, 64, (24, 27), (0.66, 0.68)),
        *sweep_run(results / "alpha", alpha_labels, 0.003, 32, (28,), (0.74,)),
        job(
            results / "alpha",
            HOSTILE,
            0,
            alpha_labels,
            20,
            0.55,
            {**BASE, "model": "resnet18", "optimizer": "sgd"},
        ),
    ]
    beta = [
        job(results / "beta", "vit", 0, beta_labels, 25, 0.60, {**BASE, "model": "vit_b_16"}),
        job(results / "beta", "mlp", 0, beta_labels, 18, 0.50, {**BASE, "model": "mlp"}, predictions=False),
    ]
    paths = []
    for name, dataset, records, date in (
        ("alpha", ALPHA, alpha, "2026-01-02"),
        ("beta", BETA, beta, "2026-01-01"),
    ):
        entry = {**book.entry(name, f"Experiment {name}", dataset, records, {}), "date": date}
        paths.append(results / name / files.REPORT["book_entry"])
        paths[-1].write_text(json.dumps(entry))
    book.write_index(paths, results / files.INDEX)
    return {"html": results / files.INDEX, "alpha": alpha}


ROWS = "[...document.querySelectorAll('#runs-table tbody tr')].map(tr => Number(tr.dataset.run))"
OPTION_ROWS = "[...document.querySelectorAll('#options-table tr[data-option]')].map(tr => tr.dataset.option)"


def cell(run: int, column: str) -> str:
    return (
        f'document.querySelector(\'#delta-table tr[data-run="{run}"] td[data-col="{column}"]\').textContent'
    )


def box(run: int) -> dict:
    return {"click": f'#runs-table input[data-run="{run}"]'}


def signed(value: float) -> str:  # as the page writes a difference in points
    return ("\u2212" if value < 0 else "+") + f"{abs(100 * value):.1f}"


@pytest.mark.slow
@pytest.mark.skipif(not browser.available(), reason=f"no Chromium at {browser.CHROMIUM}")
def test_comparing_runs_by_clicking_in_the_lab_book(page, tmp_path):
    steps = [
        # 0-1: every run listed, the hostile name as text; nothing compared yet
        "({rows: " + ROWS + ", names: [...document.querySelectorAll('#runs-table .run-name')].map(e => e.textContent),"
        " hidden: document.getElementById('comparison').hidden, hint: document.getElementById('compare-hint').textContent})",
        "document.querySelectorAll('img').length",
        # 2-4: tick two runs of the sweep: only their differing options are listed
        box(0), box(1),
        "({hidden: document.getElementById('comparison').hidden, options: " + OPTION_ROWS + "})",
        # 5-8: show all options, and hide them again
        {"click": "#show-all"},
        "({options: " + OPTION_ROWS + ", bold: document.querySelectorAll('#options-table tr.differs').length})",
        {"click": "#show-all"},
        OPTION_ROWS,
        # 9-13: sort by test accuracy, then reverse
        {"click": '#runs-table th[data-key="test_acc"] button'},
        "({rows: " + ROWS + ", sort: document.querySelector('#runs-table th[data-key=\"test_acc\"]').getAttribute('aria-sort')})",
        {"click": '#runs-table th[data-key="test_acc"] button'},
        "({rows: " + ROWS + ", sort: document.querySelector('#runs-table th[data-key=\"test_acc\"]').getAttribute('aria-sort')})",
        # 13-14: the second run as baseline: the first's deltas and paired interval against it
        {"click": 'input[name="baseline"][value="1"]'},
        f"[{cell(0, 'dval')}, {cell(0, 'dtest')}, {cell(0, 'interval')}, {cell(0, 'p')}, {cell(1, 'dtest')}]",
        # 15-16: the first as baseline again: the same pair, the other way round
        {"click": 'input[name="baseline"][value="0"]'},
        f"[{cell(1, 'dtest')}, {cell(1, 'interval')}]",
        # 17-19: runs on other test images, and one without per-image results, plainly said
        box(4), box(5),
        "({notes: [...document.querySelectorAll('#pairing-notes li')].map(li => li.textContent), "
        f"vit: [{cell(4, 'dtest')}, {cell(4, 'interval')}, {cell(4, 'p')}], options: " + OPTION_ROWS + "})",
        # 20-21: the hostile run: its name is text in every table and the legend, nothing ran
        box(3),
        "({header: document.querySelector('#options-table th[data-run=\"3\"]').textContent,"
        " row: document.querySelector('#delta-table tr[data-run=\"3\"] td[data-col=\"run\"]').textContent,"
        " legend: [...document.querySelectorAll('#curves text.legend')].map(t => t.firstChild.textContent),"
        " lines: document.querySelectorAll('#curves polyline').length, images: document.images.length,"
        " planted: document.querySelectorAll('[onerror]').length})",
        # 22-23: the sweep's scatter: lr, then batch size, against validation accuracy
        "({sweeps: document.querySelectorAll('#sweep-choice option').length,"
        " options: [...document.querySelectorAll('#sweep-option option')].map(o => o.value),"
        " dots: document.querySelectorAll('#sweep-chart circle').length,"
        " best: document.querySelector('#sweep-chart p').textContent})",
        "(() => { const s = document.getElementById('sweep-option'); s.value = 'batch_size';"
        " s.dispatchEvent(new Event('change')); return {dots: document.querySelectorAll('#sweep-chart circle').length,"
        " ticks: [...document.querySelectorAll('#sweep-chart svg text')].map(t => t.textContent)}; })()",
    ]  # fmt: skip
    screenshot = tmp_path / "compare.png"
    seen = browser.run_steps(page["html"], steps, screenshot, width=1280, height=900)
    print(f"\nscreenshot of the lab book after the clicks: {screenshot}")
    r = seen["results"]
    assert r[0]["rows"] == [0, 1, 2, 3, 4, 5] and r[0]["hidden"] and "two or more" in r[0]["hint"]
    assert r[0]["names"][3] == HOSTILE and r[1] == 0
    assert r[4] == {"hidden": False, "options": ["lr", "batch_size"]}, "exactly the differing options"
    assert (
        len(r[6]["options"]) == 6 + 5 and r[6]["options"][:2] == ["model", "optimizer"] and r[6]["bold"] == 2
    )
    assert "dataset.test_size" in r[6]["options"] and r[8] == ["lr", "batch_size"]
    # test accuracy: 0.7875, 0.6375, 0.7, 0.5 | 0.625, 0.45; numbers sort largest first, then reverse
    assert r[10] == {"rows": [0, 2, 1, 4, 3, 5], "sort": "descending"}
    assert r[12] == {"rows": [5, 3, 4, 1, 2, 0], "sort": "ascending"}
    a = np.stack([rec["correct"] for rec in page["alpha"][0:2]])
    b = np.stack([rec["correct"] for rec in page["alpha"][2:4]])
    pair = stats.paired_difference(a, b)
    interval = f"{signed(pair['low'])} to {signed(pair['high'])} pts"
    seeds = f" (over seeds: {signed(pair['seeds_low'])} to {signed(pair['seeds_high'])})"
    p = "p < 0.001" if pair["mcnemar_p"] < 0.001 else f"p = {pair['mcnemar_p']:.3f}"
    assert r[14] == ["+14.0 pts", "+15.0 pts", interval + seeds, p, "baseline"]
    assert r[16] == ["\u221215.0 pts", f"{signed(-pair['high'])} to {signed(-pair['low'])} pts"
                     f" (over seeds: {signed(-pair['seeds_high'])} to {signed(-pair['seeds_low'])})"]  # fmt: skip
    assert r[19]["vit"] == ["\u221216.2 pts", "none: different test images", "—"]
    assert (
        "beta / vit and the baseline alpha / cnn-lr0.01-bs32 were evaluated on different test images, "
        "so only the unpaired numbers are shown." in r[19]["notes"]
    )
    assert any(
        n.startswith("beta / mlp has no per-image test results (no test predictions") for n in r[19]["notes"]
    )
    assert "dataset.seed" in r[19]["options"] and "model" in r[19]["options"]
    assert r[21]["header"] == f"alpha / {HOSTILE}" and r[21]["row"] == f"alpha / {HOSTILE}"
    assert f"alpha / {HOSTILE}" in r[21]["legend"] and r[21]["lines"] == 5
    assert r[21]["images"] == 0 and r[21]["planted"] == 0
    assert r[22]["sweeps"] == 1 and r[22]["options"] == ["lr", "batch_size"] and r[22]["dots"] == 3
    assert r[22]["best"].startswith("Best on validation: cnn-lr0.01-bs32 (val acc 81.0%, test acc 78.8%)")
    assert r[23]["dots"] == 3 and {"32", "64"} <= set(r[23]["ticks"])
    assert seen["console_errors"] == [] and seen["dialogs"] == []
    assert seen["requests"] == [page["html"].resolve().as_uri()], "nothing but the page itself"
    assert screenshot.stat().st_size > 20_000
