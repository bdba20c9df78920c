"""The lab book (labbook/book.py): an entry per experiment, with every run's options, numbers and
per-image test correctness; the index page, which escapes what configs say, links each report
and pairs the runs evaluated on the same test images. (The book of experiments run by the
workflow: workflows/test_workflow_book.py; the page's comparison in a browser:
unit/test_book_compare.py.)"""

import json

import numpy as np
import pytest
from labbook import book, report, stats
from labbook.plan import files

DATASET = {"name": "shapes", "kind": "demo", "test_size": 12, "seed": 0}
OPTIONS = {"model": "cifarnet", "optimizer": "adam", "lr": 0.003, "batch_size": 32}


def correct_mask(count: int, images: int = 12, shift: int = 0) -> np.ndarray:
    return np.roll(np.arange(images) < count, shift)


def job(tmp_path, name, seed, correct, labels, val_acc, *, history=None, diverged=False, predictions=True):
    """A record as report.load_runs gives it; predictions.npz written from `correct` (its logits
    point at the label where correct, at the next class where not)."""
    run_dir = tmp_path / name / f"seed{seed}"
    run_dir.mkdir(parents=True)
    saved = files.paths("train", run_dir)["predictions"]
    if predictions:
        logits = np.eye(3, dtype=np.float32)[np.where(correct, labels, (labels + 1) % 3)]
        if diverged:
            logits[0, 0] = np.nan
        np.savez(saved, logits=logits, labels=labels)
    history = history or [
        {"epoch": 1, "train_loss": 1.2, "train_acc": 0.3, "val_loss": 1.1, "val_acc": val_acc - 0.2},
        {"epoch": 2, "train_loss": 0.8, "train_acc": 0.5, "val_loss": 0.9, "val_acc": val_acc},
    ]
    accuracy = float(np.mean(correct))
    return {"name": name, "seed": seed, "run_dir": str(run_dir), "analysis_dir": str(run_dir / "analysis"),
            "target_accuracy": None, "hypothesis": "", "sweep": None,
            "metrics": {"model": "cifarnet", "options": OPTIONS, "val_acc": val_acc, "test_acc": accuracy,
                        "best_epoch": 2, "kept": "best", "parameters": {"total": 1000, "trainable": 900},
                        "train_seconds": 2.0 + seed, "history": history,
                        "diverged": {"epoch": 2, "step": 3, "loss": "nan"} if diverged else None},
            "evaluation": {"accuracy": accuracy, "macro_f1": accuracy - 0.1},
            **report.test_correctness(saved)}  # fmt: skip


def test_the_lab_book_escapes_what_configs_say_and_links_each_report(tmp_path):
    records = [
        {"name": "a", "evaluation": {"accuracy": 0.5}, "target_accuracy": 0.5, "metrics": {"val_acc": 0.5}},
        {"name": "b", "evaluation": {"accuracy": 0.7}, "target_accuracy": 0.8, "metrics": {"val_acc": 0.7}},
    ]
    entry = book.entry(
        "x<1",
        '<script>alert("title")</script>',
        {"name": "<b>data", "kind": "demo"},
        records,
        {"commit": "0123456789abcdef", "dirty": True},
    )
    assert (entry["best_run"], entry["best_accuracy"], entry["best_chosen_on"]) == ("b", 0.7, "validation")
    held = report.hypotheses_held(records)  # counted as the report counts them
    assert (entry["hypotheses_supported"], entry["hypotheses_checked"]) == (sum(held), len(held)) == (0, 2)
    (tmp_path / "x<1").mkdir()
    (tmp_path / "x<1" / "book.json").write_text(json.dumps(entry))
    older = {**entry, "experiment": "older", "date": "2000-01-01T00:00:00+00:00"}
    (tmp_path / "older").mkdir()
    (tmp_path / "older" / "book.json").write_text(json.dumps(older))
    listed = book.write_index(
        [tmp_path / "older" / "book.json", tmp_path / "x<1" / "book.json"], tmp_path / "index.html"
    )
    assert [e["experiment"] for e in listed] == ["x<1", "older"], "newest first"
    page = (tmp_path / "index.html").read_text()
    assert '<script>alert("title")' not in page and "&lt;script&gt;" in page and "&lt;b&gt;data" in page
    assert page.count("<script") == 2, "the page's own data and code only"
    assert book.page_data(tmp_path / "index.html")["unlisted"] == [], "both list their runs"
    assert 'href="x%3C1/report.html"' in page and ">x&lt;1</a>" in page
    assert "<code>0123456789ab</code> + changes" in page and "70.0%" in page and "0 of 2" in page
    assert "best run (chosen on validation)" in page
    assert [r["experiment"] for r in book.page_data(tmp_path / "index.html")["runs"]] == ["x<1"] * 2 + [
        "older"
    ] * 2


def test_an_entry_records_each_runs_options_numbers_curves_and_test_correctness(tmp_path):
    labels = np.arange(12) % 3
    old_history = [{"epoch": 1, "train_loss": 1.0, "test_loss": 1.3, "test_acc": 0.4}]  # before val existed
    records = [
        job(tmp_path, "wide", 1, correct_mask(9, shift=1), labels, 0.72),
        job(tmp_path, "wide", 0, correct_mask(8), labels, 0.70),
        job(tmp_path, "small", 0, correct_mask(6), labels, 0.50, history=old_history, predictions=False),
        job(tmp_path, "wobbly", 0, correct_mask(10), labels, 0.9),
        job(tmp_path, "wobbly", 1, correct_mask(2), labels, float("nan"), diverged=True),
    ]
    records[0]["sweep"] = records[1]["sweep"] = {"run": "net", "values": {"lr": 0.003}}
    entry = book.entry("e", "t", DATASET, records, {})
    assert entry["best_run"] == report.best_run(records) == "wide", "wobbly has a diverged seed"
    assert entry["best_accuracy"] == pytest.approx((9 + 8) / 24) and entry[
        "best_val_accuracy"
    ] == pytest.approx(0.71)
    assert entry["dataset_spec"] == DATASET
    wide, small, wobbly = entry["run_details"]
    assert (wide["name"], wide["seeds"], wide["sweep"]) == (
        "wide",
        [1, 0],
        {"run": "net", "values": {"lr": 0.003}},
    )
    assert wide["options"] == OPTIONS and wide["dataset"] == DATASET and wide["model"] == "cifarnet"
    assert wide["val_acc"] == pytest.approx(0.71) and wide["test_acc"] == pytest.approx(17 / 24)
    assert wide["macro_f1"] == pytest.approx(17 / 24 - 0.1) and wide["val_acc_seeds"] == [0.72, 0.70]
    assert wide["parameters"] == {"total": 1000, "trainable": 900} and wide["train_seconds"] == 2.5
    assert wide["best_epoch"] == [2, 2]
    assert wide["curves"] == {"split": "val", "epoch": [1, 2], "val_acc": [pytest.approx(0.51), pytest.approx(0.71)],
                              "val_loss": [1.1, 0.9], "train_loss": [1.2, 0.8]}  # fmt: skip
    # one row per seed, in the run's seed order (as the report pairs them); the test images named
    # by their labels' hash
    assert (wide["images"], wide["test_labels"]) == (12, records[0]["test_labels"])
    assert len({r["test_labels"] for r in records if r["test_labels"]}) == 1
    np.testing.assert_array_equal(
        stats.unpack_correct(wide["correct"], 12), [correct_mask(9, shift=1), correct_mask(8)]
    )
    # no predictions file (fabricated): no correctness, so no paired interval; old history: test curves
    assert (small["correct"], small["images"], small["test_labels"]) == (None, None, None)
    assert small["curves"]["split"] == "test" and small["curves"]["val_acc"] == [0.4]
    # a diverged seed: left out of the means; NaN never reaches JSON
    assert wobbly["diverged"] and wobbly["val_acc"] == 0.9 and wobbly["test_acc"] == pytest.approx(10 / 12)
    assert wobbly["val_acc_seeds"] == [0.9, None]
    assert (wobbly["correct"], wobbly["no_correct"]) == (None, "a seed diverged"), "as the report: no pairing"
    assert small["no_correct"] == "no test predictions on record" and wide["no_correct"] is None
    json.loads(json.dumps(entry, allow_nan=False))


def page_run(name, correct, labels_hash="L1", dataset=DATASET):
    correct = np.atleast_2d(correct)
    return {"name": name, "dataset": dataset, "test_labels": labels_hash, "images": correct.shape[1],
            "correct": stats.pack_correct(correct), "val_acc": 0.5, "test_acc": float(correct.mean())}  # fmt: skip


def test_only_runs_on_the_same_test_images_are_paired_across_experiments_too(monkeypatch):
    a, b = correct_mask(9), np.stack([correct_mask(6), correct_mask(7, shift=3)])
    entries = [
        {"experiment": "one", "folder": "one", "best_run": "a",
         "run_details": [page_run("a", a), page_run("other labels", a, "L2"), page_run("no predictions", a)]},
        {"experiment": "two", "folder": "two",
         "run_details": [page_run("b", b), page_run("other spec", a, dataset={**DATASET, "seed": 1})]},
    ]  # fmt: skip
    entries[0]["run_details"][2].update(correct=None, images=None, test_labels=None)
    data = book.compare_data(entries)
    assert list(data["pairs"]) == ["0-3"], "same dataset spec and test labels, across experiments"
    groups = [r["test_group"] for r in data["runs"]]
    assert groups[0] == groups[3] and groups[2] is None
    assert len({groups[0], groups[1], groups[4]}) == 3, "other labels, other spec: other test images"
    assert all("correct" not in r for r in data["runs"]) and data["runs"][0]["best"]
    pair, expected = data["pairs"]["0-3"], stats.paired_difference(a, b)
    for key in ("difference", "low", "high", "mcnemar_p", "images"):
        assert pair[key] == pytest.approx(expected[key], rel=1e-5), key
    assert pair["difference"] == pytest.approx(9 / 12 - 13 / 24, rel=1e-5), "run 0 minus run 3"

    # Rebuilt: the earlier page's pairs are reused where their inputs are the same; new ones computed.
    monkeypatch.setattr(stats, "paired_difference", lambda *_: pytest.fail("computed again"))
    assert book.compare_data(entries, data) == data
    entries[1]["run_details"][0] = page_run("b", correct_mask(3))
    monkeypatch.undo()
    assert book.compare_data(entries, data)["pairs"]["0-3"]["difference"] == pytest.approx(0.5)


def test_the_pages_data_cannot_end_its_script_block(tmp_path):
    hostile = "</script><img src=x onerror=alert(1)><!-- & {code}{data}"  # and the page's own slots
    (tmp_path / "e").mkdir()
    entry = {"experiment": "e", "date": "2026-01-01", "run_details": [page_run(hostile, correct_mask(3))]}
    (tmp_path / "e" / "book.json").write_text(json.dumps(entry))
    book.write_index([tmp_path / "e" / "book.json"], tmp_path / "index.html")
    page = (tmp_path / "index.html").read_text()
    assert "<img" not in page and "<!-- &" not in page and page.count("</script>") == 2
    assert book.page_data(tmp_path / "index.html")["runs"][0]["name"] == hostile
