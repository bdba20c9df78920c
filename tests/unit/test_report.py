"""The report's building blocks (labbook/report.py), cell by cell and by hand: reading the step
files; mean ± sd over seeds; the results, per-class F1, sweep, model, environment and runs tables;
verdicts and the headline; Markdown escaping and the row of figures. (The report notebook on
fabricated runs: steps/test_report_notebook.py; hostile names in it: hostile/test_markup.py.)"""

import base64
import json

import numpy as np
from builders import Elements
from labbook import markup, models, provenance, report, stats
from labbook.plan import files
from labbook.plan.record import JobRecord

IMAGES = 1000  # a fabricated run's test images


def right_on(count: int, first: int = 0) -> np.ndarray:
    """Per-image correctness of IMAGES test images: right on `count` of them from `first` on."""
    correct = np.zeros(IMAGES, bool)
    correct[first : first + count] = True
    return correct


def record(name, seed, accuracy, target=None, hypothesis="", f1=None, val=None, correct=None, **evaluation):
    """A run as report.load_runs returns it: its metrics (validation accuracy val, default the
    test accuracy), its evaluation (per-class F1 from f1, else class a's equal to the accuracy;
    more keys from evaluation), its per-image test correctness (default: right on the first
    accuracy × IMAGES images) and its step provenance."""
    per_class = {c: {"f1": v} for c, v in (f1 or {"a": accuracy}).items()}
    correct = right_on(round(accuracy * IMAGES)) if correct is None else correct
    return {"name": name, "seed": seed, "target_accuracy": target, "hypothesis": hypothesis,
            "metrics": {"model": "cifarnet", "device_name": f"GPU {seed}", "parameters": {"total": 1234, "trainable": 34},
                        "history": [{}, {}], "train_seconds": 10.0 + seed, "images_per_s": 1000.0 * (seed + 1),
                        "val_acc": accuracy if val is None else val},
            "evaluation": {"accuracy": accuracy, "macro_f1": accuracy / 2, "per_class": per_class, **evaluation},
            "correct": correct,
            "provenance": {"config": {"options": {"lr": seed}}}, "analysis_provenance": {"manifest_sha256": f"{seed}" * 20}}  # fmt: skip


def exact(accuracy: float) -> str:
    """The exact 95% interval over IMAGES test images, as the report writes it."""
    return report.interval_text(stats.accuracy_interval(round(accuracy * IMAGES), IMAGES))


def test_load_runs_reads_each_file_it_is_given(tmp_path):
    job = JobRecord("r", 0, str(tmp_path / "run"), str(tmp_path / "run" / "analysis"), 0.5, "h")
    written = {
        job.train_files()["metrics"]: {"m": 1},
        job.analysis_files()["evaluation"]: {"e": 2},
        job.train_files()["provenance"]: {"t": 3},
        job.analysis_files()["provenance"]: {"a": 4},
    }
    for path, content in written.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content))
    [loaded] = report.load_runs([job.to_dict()])
    assert loaded["metrics"] == {"m": 1} and loaded["evaluation"] == {"e": 2}
    assert loaded["provenance"] == {"t": 3} and loaded["analysis_provenance"] == {"a": 4}
    assert loaded["name"] == "r" and loaded["target_accuracy"] == 0.5 and loaded["hypothesis"] == "h"
    assert list(loaded["figures"]) == list(files.FIGURES)
    job.train_files()["provenance"].unlink()  # an older run without one
    assert report.load_runs([job.to_dict()] * 2)[1]["provenance"] == {}


# ---------------------------------------------------------------- numbers over seeds, the results table
def test_seeds_are_aggregated_as_mean_and_sd():
    assert report.mean_sd([0.8, 0.9]) == "0.8500 ± 0.0707"
    assert report.mean_sd([0.8, 0.9], percent=True) == "85.0 ± 7.1%"
    assert report.mean_sd([0.8]) == "0.8000"


def test_mean_sd_of_a_missing_number_says_nan():
    assert report.mean_sd([np.nan]) == "nan" and report.mean_sd([np.nan], percent=True) == "nan%"
    assert report.mean_sd([1, 2]) == "1.5000 ± 0.7071"


def test_results_table_cell_by_cell():
    records = [record("a", 0, 0.5, val=0.6, top_k=2, top2_accuracy=0.75, ece=0.125),
               record("a", 1, 0.7, val=0.8, top_k=2, top2_accuracy=0.85, ece=0.075)]  # fmt: skip
    lines = report.results_table(records).splitlines()
    assert lines[0] == ("| run | model | seeds | val accuracy (chooses) | test accuracy [95% CI] | top-2 | macro F1 "
                        "| ECE | parameters | epochs | train s | images/s | device |")  # fmt: skip
    over_images = report.interval_text(stats.images_interval(np.stack([r["correct"] for r in records])))
    seeds = stats.seeds_summary([0.5, 0.7])
    over_seeds = report.interval_text((seeds["low"], seeds["high"]))
    assert lines[2] == (f"| a | cifarnet | 2 | 70.0 ± 14.1% | 60.0 ± 14.1% [{over_images}; seeds {over_seeds}] "
                        "| 80.0 ± 7.1% | 0.3000 ± 0.0707 | 0.1000 ± 0.0354 | 1,234 (34 trained) | 2 | 10.5 | 1,500 "
                        "| GPU 0, GPU 1 |")  # fmt: skip
    assert len(lines) == 3, "one run: one row, and nothing marked best"


def test_results_table_without_top_k_or_ece_says_nan():
    lines = report.results_table([record("old", 0, 0.5), record("new", 0, 0.9)]).splitlines()
    assert "| top-3 |" in lines[0]
    assert lines[2].startswith(f"| old | cifarnet | 1 | 50.0% | 50.0% [{exact(0.5)}] | nan% | 0.2500 | nan |")
    assert lines[3].startswith("| **new** ★ best |")


def test_results_table_of_one_record_reads_top_k_as_three_when_unsaid():
    older = record("a", 0, 0.5, top3_accuracy=0.75, ece=0.25)  # written before top_k was recorded
    lines = report.results_table([older]).splitlines()
    assert "| top-3 |" in lines[0] and lines[2].startswith(
        f"| a | cifarnet | 1 | 50.0% | 50.0% [{exact(0.5)}] | 75.0% | 0.2500 | 0.2500 |"
    )


def test_best_run_of_nothing_is_none():
    assert report.best_run([]) is None


def test_the_best_run_is_chosen_on_validation_where_validation_and_test_disagree():
    records = [record("lucky", 0, 0.95, val=0.70), record("sound", 0, 0.80, val=0.85)]
    assert report.best_run(records) == "sound"
    assert report.headline(records).startswith(
        f"**Best run: sound** (chosen on validation accuracy, 85.0%) with test accuracy 80.0% (95% CI {exact(0.8)}"
    )
    assert "**sound** ★ best" in report.results_table(records)


# ---------------------------------------------------------------- verdicts and the headline
def test_a_target_is_supported_not_supported_or_inconclusive_by_its_interval():
    records = [record("a", 0, 0.85, 0.75, "A learns."), record("b", 0, 0.5, 0.9), record("c", 0, 0.76, 0.75)]
    lines = report.verdicts(records)
    assert lines[0].startswith(
        f"- **a**: _A learns._ → {report.SUPPORTED}: test accuracy 85.0% (95% CI {exact(0.85)} over test images; "
        "1 seed) against target 75%"
    )
    assert lines[1].endswith(f"{report.NOT_SUPPORTED}: test accuracy 50.0% (95% CI {exact(0.5)} over test images; "
                             "1 seed) against target 90%")  # fmt: skip
    assert f"{report.INCONCLUSIVE}: test accuracy 76.0% (95% CI {exact(0.76)}" in lines[2], (
        "74.3% < 75% < 78.6%"
    )
    assert report.hypotheses_held(records) == [True, False, False]
    assert "1 of 3 claims supported by their 95% intervals" in report.headline(records)


def test_with_several_seeds_both_intervals_must_clear_the_target():
    # over images the mean clears 80% easily, but three seeds this far apart leave it open
    group = [record("r", seed, a, 0.8) for seed, a in enumerate([0.83, 0.95, 0.88])]
    line = report.verdict(group)
    assert report.INCONCLUSIVE in line and "over seeds" in line and "3 seeds" in line
    steady = [record("r", seed, a, 0.8) for seed, a in enumerate([0.90, 0.91, 0.90])]
    assert report.SUPPORTED in report.verdict(steady)


def test_a_beats_claim_is_judged_on_the_paired_interval_against_its_margin():
    # b is right on images 0-799, a on 0-849: a is right on 50 more, never worse
    a = record("a", 0, 0.85)
    b = record("b", 0, 0.80)
    grouped = {"a": [a], "b": [b]}
    for margin, outcome in [
        (0.0, report.SUPPORTED),
        (0.04, report.INCONCLUSIVE),
        (0.1, report.NOT_SUPPORTED),
    ]:
        a["beats"] = {"run": "b", "margin": margin}
        line = report.verdict([a], grouped)
        assert f"{outcome}: beats b" in line, (margin, line)
    paired = stats.paired_difference(a["correct"], b["correct"])
    assert "+5.0 points (paired 95% CI" in line and f"McNemar p = {paired['mcnemar_p']:.2g}" in line
    b["correct"] = right_on(799)[:999]  # another test set
    a["beats"] = {"run": "b", "margin": 0.0}
    assert (
        f"{report.INCONCLUSIVE}: beats b: no paired comparison (not the same test images)"
        in report.verdict([a], grouped)
    )


def test_the_paired_table_compares_every_run_with_the_baseline_by_hand():
    records = [
        record("base", 0, 0.80),
        record("more", 0, 0.85),
        record("shifted", 0, 0.80, correct=right_on(800, 100)),
    ]
    records[0]["baseline"] = True
    lines = report.paired_table(records).splitlines()
    assert lines[0].startswith("| run − base | Δ test accuracy (points) | paired 95% CI (images) |")
    more = stats.paired_difference(records[1]["correct"], records[0]["correct"])
    assert lines[2] == (f"| more | +5.0 | {more['low'] * 100:+.1f} to {more['high'] * 100:+.1f} | — "
                        f"| {more['mcnemar_p']:.2g} | 50 / 0 |")  # fmt: skip
    # the same accuracy, right on different images: 100 images each way, p = 1
    assert lines[3].startswith("| shifted | +0.0 |") and lines[3].endswith("| 1 | 100 / 100 |")
    assert report.paired_table(records[:1]) == ""


def test_no_target_gives_no_verdict_and_no_count():
    group = [record("r", 0, 0.4)]
    assert report.verdict(group) == "- **r**: no claim made; mean test accuracy 40.0% (1 seed)"
    assert "claims" not in report.headline(group)


def test_headline_counts_runs_and_says_when_there_are_none():
    assert report.headline([]) == "No runs were given."
    one = report.headline([record("a", 0, 0.5), record("a", 1, 0.7)])
    over_images = report.interval_text(stats.images_interval(np.stack([right_on(500), right_on(700)])))
    assert one == (
        "**Best run: a** (chosen on validation accuracy, 60.0%) with test accuracy 60.0 ± 14.1% "
        f"(95% CI {over_images}; macro F1 0.3000 ± 0.0707) of 1 run."
    )
    two = report.headline([record("a", 0, 0.5), record("b", 0, 0.7)])
    assert two.endswith(" of 2 runs.")


# ---------------------------------------------------------------- the other tables
def test_per_class_f1_table_of_one_record():
    assert report.per_class_f1_table([record("a", 0, 0.25)]).splitlines()[2] == "| a | 0.250 |"


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


def test_sweeps_group_expanded_runs_by_their_sweep_and_choose_on_validation():
    records = [
        record("lr=0.1", 0, 0.5, val=0.6),
        record("lr=0.1", 1, 0.7, val=0.8),
        record("lr=0.2", 0, 0.9, val=0.65),
        record("plain", 0, 0.4),
    ]
    for r in records[:2]:
        r["sweep"] = {"run": "lr", "values": {"lr": 0.1}}
    records[2]["sweep"] = {"run": "lr", "values": {"lr": 0.2}}
    found = report.sweeps(records)
    assert found == {
        "lr": [({"lr": 0.1}, [0.5, 0.7], "lr=0.1", [0.6, 0.8]), ({"lr": 0.2}, [0.9], "lr=0.2", [0.65])]
    }
    assert report.sweep_table(found["lr"]).splitlines() == [
        "| lr | val accuracy (chooses ★) | test accuracy | seeds | run |",
        "|---|---|---|---|---|",
        "| 0.1 | 70.0 ± 14.1% ★ | 60.0 ± 14.1% | 2 | lr=0.1 |",  # 70% on validation beats 65%, not 90% on test
        "| 0.2 | 65.0% | 90.0% | 1 | lr=0.2 |",
    ]
    assert report.sweeps([record("plain", 0, 0.4)]) == {}


def test_the_reports_model_table_shows_normalization_input_size_precision_and_warnings():
    options = {"model": "resnet18", "weights": "DEFAULT", "trainable": "head", "optimizer": "sgd", "lr": 0.01,
               "schedule": "cosine", "batch_size": 32, "precision": "bf16"}  # fmt: skip
    inputs = models.preprocessing("resnet18", "DEFAULT", [0.5] * 3, [0.2] * 3, stored_size=96)
    metrics = {"options": options, "parameters": {"total": 11_178_051, "trainable": 1_539},
               "precision": "bf16", "inputs": inputs, "warnings": ["precision bf16 on a CPU: slow"]}  # fmt: skip
    table = report.model_table([{"name": "transfer", "seed": 0, "metrics": metrics}])
    row = table.splitlines()[-1]
    assert "ResNet18_Weights.IMAGENET1K_V1 (mean 0.485, 0.456, 0.406; std 0.229, 0.224, 0.225)" in row
    assert "| 224 |" in row and "| head |" in row and "1,539" in row
    assert "bf16 ⚠ precision bf16 on a CPU: slow" in row
    assert row.endswith("| 1 process, — |"), "a run recorded before labbook said where its data lived"
    metrics.update(processes=2, data_placement={"train": "streamed", "val": "resident", "test": "resident"})
    row = report.model_table([{"name": "transfer", "seed": 0, "metrics": metrics}]).splitlines()[-1]
    assert row.endswith("| 2 processes, train streamed; val resident; test resident |")
    metrics["data_placement"] = dict.fromkeys(("train", "val", "test"), "streamed")
    row = report.model_table([{"name": "transfer", "seed": 0, "metrics": metrics}]).splitlines()[-1]
    assert row.endswith("| 2 processes, streamed |")


def test_environment_table_with_a_gpu_record():
    gpu = {"labbook": "0.1.0", "platform": "Linux x86_64",
           "torch": {"torch": "2.4", "cuda": "12.4", "cudnn": 90100, "cuda_available": True,
                     "gpus": ["H100", "H100"], "driver": "550.54"}}  # fmt: skip
    lines = report.environment_table({"train": gpu}).splitlines()
    assert lines[2:] == [
        "| git commit | not a git checkout |",
        "| labbook | 0.1.0 |",
        "| platform | Linux x86_64 |",
        "| torch build | 2.4 |",
        "| CUDA (torch build) | 12.4 |",
        "| CUDA available | True |",
        "| cuDNN | 90100 |",
        "| GPU | H100, H100 |",
        "| GPU driver | 550.54 |",
    ]


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


def test_runs_provenance_table_of_a_record_missing_its_step_files():
    bare = {"name": "r", "seed": 2, "metrics": {}}
    assert report.runs_provenance_table([bare]).splitlines()[2] == "| r | 2 | — | — | `—` |"
    full = {
        **bare,
        "provenance": {"config": {"options": {"lr": 1}}},  # as the train step records what it was given
        "analysis_provenance": {"manifest_sha256": "f" * 64},
    }
    assert report.runs_provenance_table([full]).splitlines()[2] == (
        f"| r | 2 | — | `{provenance.config_hash({'lr': 1})[:12]}` | `{'f' * 12}` |"
    )


def test_runs_provenance_table_by_hand():
    records = [record("x", 0, 0.5), record("x", 1, 0.5), record("y", 3, 0.5)]
    records[2]["provenance"] = {}
    lines = report.runs_provenance_table(records).splitlines()
    assert lines[0] == "| run | seed | device | training options sha256 | data manifest sha256 seen |"
    assert lines[2] == f"| x | 0 | GPU 0 | `{provenance.config_hash({'lr': 0})[:12]}` | `{'0' * 12}` |"
    assert lines[3] == f"| x | 1 | GPU 1 | `{provenance.config_hash({'lr': 1})[:12]}` | `{'1' * 12}` |"
    assert lines[4] == f"| y | 3 | GPU 3 | — | `{'3' * 12}` |"


# ---------------------------------------------------------------- text, Markdown and figures
def test_short_cuts_strings_and_marks_missing_values():
    assert report.short("abcdef", 3) == "abc" and report.short("a" * 20) == "a" * 12
    assert report.short(None) == "—"


def test_md_shows_markup_characters_as_themselves_and_joins_lines():
    assert markup.md("a|b *c*\r\nd") == "a&#124;b &#42;c&#42;  d"
    assert markup.md("<b>") == "&#60;b&#62;" and markup.md(3) == "3"


def test_image_row_is_exactly_one_div_of_images(tmp_path):
    (tmp_path / "a.png").write_bytes(b"A")
    (tmp_path / "b.png").write_bytes(b"B")
    html = report.image_row([tmp_path / "a.png", tmp_path / "b.png"])
    assert html == (
        '<div class="figure-row"><img src="data:image/png;base64,QQ==" alt="a">'
        '<img src="data:image/png;base64,Qg==" alt="b"></div>'
    )


def test_image_row_inlines_each_png_with_its_name_as_alt(tmp_path):
    paths = []
    for name, content in (("roc", b"\x89PNG one"), ("loss curve", b"\x89PNG two")):
        paths.append(tmp_path / f"{name}.png")
        paths[-1].write_bytes(content)
    images = [attrs for tag, attrs in Elements(report.image_row(paths, width=300)).tags if tag == "img"]
    assert [image["alt"] for image in images] == ["roc", "loss curve"]
    assert [base64.b64decode(image["src"].split(",", 1)[1]) for image in images] == [
        b"\x89PNG one",
        b"\x89PNG two",
    ]
    assert all(image["style"] == "max-width:300px" for image in images)
    assert "style" not in next(attrs for tag, attrs in Elements(report.image_row(paths)).tags if tag == "img")


def test_image_row_escapes_quotes_in_the_alt_text(tmp_path):
    path = tmp_path / 'say "hi" & <go>.png'
    path.write_bytes(b"A")
    assert 'alt="say &quot;hi&quot; &amp; &lt;go&gt;"' in report.image_row([path])
