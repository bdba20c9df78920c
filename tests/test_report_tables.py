"""The report's building blocks, cell by cell: reading the step files, the results, sweep,
environment and runs tables, the headline, the figure row."""

import json

import numpy as np
from labbook import provenance, report
from labbook.plan import files
from labbook.plan.record import JobRecord


def record(name, seed, accuracy, **evaluation):
    return {"name": name, "seed": seed,
            "metrics": {"model": "cifarnet", "device_name": f"GPU {seed}", "parameters": {"total": 1234, "trainable": 34},
                        "history": [{}, {}], "train_seconds": 10.0 + seed, "images_per_s": 1000.0 * (seed + 1)},
            "evaluation": {"accuracy": accuracy, "macro_f1": accuracy / 2, "per_class": {"a": {"f1": accuracy}},
                           **evaluation}}  # fmt: skip


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


def test_mean_sd_of_a_missing_number_says_nan():
    assert report.mean_sd([np.nan]) == "nan" and report.mean_sd([np.nan], percent=True) == "nan%"
    assert report.mean_sd([1, 2]) == "1.5000 ± 0.7071"


def test_results_table_cell_by_cell():
    records = [record("a", 0, 0.5, top_k=2, top2_accuracy=0.75, ece=0.125),
               record("a", 1, 0.7, top_k=2, top2_accuracy=0.85, ece=0.075)]  # fmt: skip
    lines = report.results_table(records).splitlines()
    assert lines[0] == ("| run | model | seeds | test accuracy | top-2 | macro F1 | ECE | parameters | epochs "
                        "| train s | images/s | device |")  # fmt: skip
    assert lines[2] == ("| a | cifarnet | 2 | 60.0 ± 14.1% | 80.0 ± 7.1% | 0.3000 ± 0.0707 | 0.1000 ± 0.0354 "
                        "| 1,234 (34 trained) | 2 | 10.5 | 1,500 | GPU 0, GPU 1 |")  # fmt: skip
    assert len(lines) == 3, "one run: one row, and nothing marked best"


def test_results_table_without_top_k_or_ece_says_nan():
    lines = report.results_table([record("old", 0, 0.5), record("new", 0, 0.9)]).splitlines()
    assert "| top-3 |" in lines[0]
    assert lines[2].startswith("| old | cifarnet | 1 | 50.0% | nan% | 0.2500 | nan |")
    assert lines[3].startswith("| **new** ★ best |")
    assert (
        report.results_table([]).splitlines()[0].startswith("| run | model | seeds | test accuracy | top-3 |")
    )


def test_results_table_of_one_record_reads_top_k_as_three_when_unsaid():
    older = record("a", 0, 0.5, top3_accuracy=0.75, ece=0.25)  # written before top_k was recorded
    lines = report.results_table([older]).splitlines()
    assert "| top-3 |" in lines[0] and lines[2].startswith(
        "| a | cifarnet | 1 | 50.0% | 75.0% | 0.2500 | 0.2500 |"
    )


def test_best_run_of_nothing_is_none():
    assert report.best_run([]) is None


def test_sweeps_group_expanded_runs_by_their_sweep():
    records = [
        record("lr=0.1", 0, 0.5),
        record("lr=0.1", 1, 0.7),
        record("lr=0.2", 0, 0.9),
        record("plain", 0, 0.4),
    ]
    for r in records[:2]:
        r["sweep"] = {"run": "lr", "values": {"lr": 0.1}}
    records[2]["sweep"] = {"run": "lr", "values": {"lr": 0.2}}
    found = report.sweeps(records)
    assert found == {"lr": [({"lr": 0.1}, [0.5, 0.7], "lr=0.1"), ({"lr": 0.2}, [0.9], "lr=0.2")]}
    assert report.sweep_table(found["lr"]).splitlines() == [
        "| lr | test accuracy | seeds | run |",
        "|---|---|---|---|",
        "| 0.1 | 60.0 ± 14.1% | 2 | lr=0.1 |",
        "| 0.2 | 90.0% | 1 | lr=0.2 |",
    ]
    assert report.sweeps([record("plain", 0, 0.4)]) == {}
    assert (
        report.sweep_table([({"lr": 0.3}, [0.5], "lr=0.3")]).splitlines()[2] == "| 0.3 | 50.0% | 1 | lr=0.3 |"
    )


def test_per_class_f1_table_of_one_record():
    assert report.per_class_f1_table([record("a", 0, 0.25)]).splitlines()[2] == "| a | 0.250 |"


def test_headline_counts_runs_and_says_when_there_are_none():
    assert report.headline([]) == "No runs were given."
    one = report.headline([record("a", 0, 0.5), record("a", 1, 0.7)])
    assert one == "**Best run: a** with test accuracy 60.0 ± 14.1% (macro F1 0.3000 ± 0.0707) of 1 run."
    two = report.headline([record("a", 0, 0.5), record("b", 0, 0.7)])
    assert two.endswith(" of 2 runs.")


def test_short_cuts_strings_and_marks_missing_values():
    assert report.short("abcdef", 3) == "abc" and report.short("a" * 20) == "a" * 12
    assert report.short(None) == "—"


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


def test_runs_provenance_table_of_a_record_missing_its_step_files():
    bare = {"name": "r", "seed": 2, "metrics": {}}
    assert report.runs_provenance_table([bare]).splitlines()[2] == "| r | 2 | — | — | `—` |"
    full = {
        **bare,
        "provenance": {"options": {"lr": 1}},
        "analysis_provenance": {"manifest_sha256": "f" * 64},
    }
    assert report.runs_provenance_table([full]).splitlines()[2] == (
        f"| r | 2 | — | `{provenance.config_hash({'lr': 1})[:12]}` | `{'f' * 12}` |"
    )


def test_image_row_is_exactly_one_div_of_images(tmp_path):
    (tmp_path / "a.png").write_bytes(b"A")
    (tmp_path / "b.png").write_bytes(b"B")
    html = report.image_row([tmp_path / "a.png", tmp_path / "b.png"])
    assert html == (
        '<div class="figure-row"><img src="data:image/png;base64,QQ==" alt="a">'
        '<img src="data:image/png;base64,Qg==" alt="b"></div>'
    )


def test_md_shows_markup_characters_as_themselves_and_joins_lines():
    assert report.md("a|b *c*\r\nd") == "a&#124;b &#42;c&#42;  d"
    assert report.md("<b>") == "&#60;b&#62;" and report.md(3) == "3"


def test_image_row_escapes_quotes_in_the_alt_text(tmp_path):
    path = tmp_path / 'say "hi" & <go>.png'
    path.write_bytes(b"A")
    assert 'alt="say &quot;hi&quot; &amp; &lt;go&gt;"' in report.image_row([path])
