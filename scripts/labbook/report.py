"""Tables and verdicts for the report notebook, from the files the steps wrote. No torch."""

import hashlib
import html
import json
from pathlib import Path

import numpy as np

from . import provenance, stats
from .markup import markdown_table, md
from .plan.record import JobRecord


def read_json(path: Path):
    """A step's JSON output; a truncated or damaged one is an error naming it."""
    try:
        return json.loads(path.read_text())
    except ValueError as error:
        raise ValueError(f"{path} is damaged or truncated ({error}); delete it and rerun its step") from error


def load_runs(runs: list) -> list:
    """runs: the job records (plan.record.JobRecord, as dicts) → one dict per job: the record's
    fields, with `metrics`, `evaluation`, `provenance` and `analysis_provenance` read from the
    files its steps wrote, and `figures` ({stem: path})."""
    records = []
    for run in runs:
        job = JobRecord.from_dict(run)
        trained, analysis = job.train_files(), job.analysis_files()
        records.append(
            {
                **job.to_dict(),
                "metrics": read_json(trained["metrics"]),
                "evaluation": read_json(analysis["evaluation"]),
                "provenance": provenance.read(trained["provenance"]),
                "analysis_provenance": provenance.read(analysis["provenance"]),
                "figures": {name: str(path) for name, path in job.figures().items()},
                **test_correctness(trained["predictions"]),
            }
        )
    return records


def test_correctness(predictions: Path) -> dict:
    """{"correct": whether each test image was classified right (bool array), "test_labels": a
    hash of the test labels in order (which test images these were)}, from the train step's
    predictions; None where there are none to read (hand-made records) or they are not finite."""
    if not predictions.exists():
        return {"correct": None, "test_labels": None}
    with np.load(predictions, allow_pickle=False) as saved:
        logits, labels = saved["logits"], saved["labels"]
    labels_hash = hashlib.sha256(np.ascontiguousarray(labels, dtype=np.int64).tobytes()).hexdigest()[:16]
    correct = (logits.argmax(1) == labels) if np.isfinite(logits).all() else None
    return {"correct": correct, "test_labels": labels_hash}


def by_run(records: list) -> dict:
    """{run name: [records of its seeds]} in config order."""
    grouped = {}
    for record in records:
        grouped.setdefault(record["name"], []).append(record)
    return grouped


def mean_sd(values, percent: bool = False) -> str:
    """'mean ± sd' over seeds (sample sd); a single value alone."""
    values = np.asarray(values, dtype=float)
    scale, fmt = (100, "{:.1f}") if percent else (1, "{:.4f}")
    text = fmt.format(values.mean() * scale)
    if len(values) > 1:
        text += " ± " + fmt.format(values.std(ddof=1) * scale)
    return text + ("%" if percent else "")


# ---------------------------------------------------------------- diverged runs
# A job diverged when its training loss became non-finite (metrics.json's "diverged", written by
# the train step) or its test logits are (evaluation.json's, by the analysis): it has no test
# accuracy. A run with a diverged seed is a diverged run: it is marked so wherever it is listed,
# its hypothesis is not supported, and it is left out of the best-run choice and the headline;
# mean ± sd over its seeds is over the seeds that did not diverge, saying how many did.
DIVERGED = "*diverged*"
LOSS_WORDS = {"nan": "not a number", "inf": "infinite", "-inf": "minus infinite"}


def diverged(record: dict) -> bool:
    """Whether a job diverged, by its train step's record or its analysis's (older files and
    hand-made records may lack either)."""
    return bool(record.get("metrics", {}).get("diverged") or record.get("evaluation", {}).get("diverged"))


def healthy(group: list) -> list:
    """The records of a run's seeds that did not diverge."""
    return [r for r in group if not diverged(r)]


def divergence(record: dict) -> str:
    """Where and how a diverged job diverged, in words."""
    where = record.get("metrics", {}).get("diverged")
    if where:
        loss = LOSS_WORDS.get(str(where.get("loss")), "not finite")
        text = f"diverged in epoch {where['epoch']} at step {where['step']} (train loss {loss})"
    else:
        text = "diverged (its test logits are not finite)"
    evaluation = record.get("evaluation", {})
    if evaluation.get("diverged") and "finite_predictions" in evaluation:
        lost = evaluation["test_images"] - evaluation["finite_predictions"]
        text += f"; {lost} of {evaluation['test_images']} test predictions are not finite"
    return text


def divergence_notes(records: list) -> str:
    """A Markdown list of every diverged job and where it diverged ("" when none did)."""
    lines = [f"- **{md(r['name'])}**, seed {r['seed']}: {divergence(r)}." for r in records if diverged(r)]
    if not lines:
        return ""
    return (
        "**Diverged**: training stopped where the loss stopped being finite; these jobs have no test "
        "accuracy and are left out of the best-run choice and of the means over seeds.\n\n" + "\n".join(lines)
    )


def seed_accuracies(group: list) -> list:
    """Each seed's test accuracy, None for a seed that diverged (see seeds_cell)."""
    return [None if diverged(r) else r["evaluation"]["accuracy"] for r in group]


def seeds_cell(values: list, percent: bool = False) -> str:
    """mean ± sd of a run's values over its seeds, None standing for a diverged seed: left out of
    the mean, and said so; *diverged* when every seed did."""
    kept = [v for v in values if v is not None]
    if not kept:
        return DIVERGED
    text = mean_sd(kept, percent)
    lost = len(values) - len(kept)
    return text + (f" ({lost} of {len(values)} seeds diverged)" if lost else "")


def over_seeds(kept: list, key: str, default=None, percent: bool = False) -> str:
    """mean ± sd of an evaluation number over the records kept (the seeds that did not
    diverge); "—" when there are none."""
    return mean_sd([r["evaluation"].get(key, default) for r in kept], percent) if kept else "—"


def mean_accuracy(group: list) -> float:
    """Mean test accuracy over a run's seeds: what a claim is made on."""
    return float(np.mean([r["evaluation"]["accuracy"] for r in group]))


def val_accuracy(group: list):
    """Mean validation accuracy over a run's seeds: what every choice is made on (None for
    records from before there was a validation split)."""
    values = [r["metrics"].get("val_acc") for r in group]
    return None if None in values else float(np.mean(values))


def best_run(records: list):
    """The run with the highest mean validation accuracy over its seeds, of the runs none of
    whose seeds diverged (None without such runs). Chosen on validation, never on test: a choice
    made on the test split would bias the chosen run's test accuracy upward."""
    grouped = {name: group for name, group in by_run(records).items() if len(healthy(group)) == len(group)}
    return max(grouped, key=lambda name: val_accuracy(grouped[name]) or 0.0) if grouped else None


def correctness(group: list):
    """(seeds, images) per-image test correctness of a run's seeds, None if a seed has none."""
    rows = [r.get("correct") for r in group]
    return None if any(row is None for row in rows) else np.stack(rows)


def accuracy_intervals(group: list) -> dict:
    """A healthy run's test accuracy with its 95% intervals: over test images (exact for one
    seed, else a bootstrap over images; stats.images_interval), and with several seeds over
    seeds (Student t)."""
    correct = correctness(group)
    if correct is not None:
        images = stats.images_interval(correct)
    elif len(group) == 1 and group[0]["evaluation"].get("accuracy_interval"):
        images = tuple(group[0]["evaluation"]["accuracy_interval"])
    else:
        images = None
    seeds = stats.seeds_summary([r["evaluation"]["accuracy"] for r in group])
    over_seeds = (seeds["low"], seeds["high"]) if seeds["low"] is not None else None
    return {"mean": seeds["mean"], "sd": seeds["sd"], "images": images, "seeds": over_seeds}


def interval_text(interval) -> str:
    """An accuracy interval as percentages, 87.3–91.2%; "—" for none."""
    return "—" if interval is None else f"{interval[0]:.1%}–{interval[1]:.1%}".replace("%–", "–")


def accuracy_cell(group: list) -> str:
    """Test accuracy, mean ± sd, [95% CI over images; over seeds] of the seeds that did not
    diverge (seeds_cell); *diverged* when none did."""
    kept = healthy(group)
    if not kept:
        return DIVERGED
    summary = accuracy_intervals(kept)
    text = seeds_cell(seed_accuracies(group), percent=True) + f" [{interval_text(summary['images'])}"
    return text + (f"; seeds {interval_text(summary['seeds'])}]" if summary["seeds"] else "]")


def results_table(records: list) -> str:
    """One row per run, metrics as mean ± sd over seeds, test accuracy with its 95% intervals;
    the best run (on validation) marked, a diverged run marked *diverged* (its diverged seeds
    left out of the means, see seeds_cell)."""
    grouped = by_run(records)
    best = best_run(records)
    rows = []
    for name, group in grouped.items():
        metrics = group[0]["metrics"]
        top_k = group[0]["evaluation"].get("top_k", 3)
        label = f"**{md(name)}** ★ best" if name == best and len(grouped) > 1 else md(name)
        label += f" {DIVERGED}" if any(map(diverged, group)) else ""
        kept = healthy(group)
        rows.append(
            [
                label,
                metrics["model"],
                len(group),
                seeds_cell(
                    [None if diverged(r) else r["metrics"].get("val_acc") for r in group], percent=True
                ),
                accuracy_cell(group),
                over_seeds(kept, f"top{top_k}_accuracy", np.nan, percent=True),
                over_seeds(kept, "macro_f1"),
                over_seeds(kept, "ece", np.nan),
                f"{metrics['parameters']['total']:,} ({metrics['parameters']['trainable']:,} trained)",
                len(metrics["history"]),
                f"{np.mean([r['metrics']['train_seconds'] for r in group]):.1f}",
                f"{np.mean([r['metrics']['images_per_s'] for r in group]):,.0f}",
                md(", ".join(sorted({r["metrics"]["device_name"] for r in group}))),
            ]
        )
    top_k = records[0]["evaluation"].get("top_k", 3) if records else 3
    header = ["run", "model", "seeds", "val accuracy (chooses)", "test accuracy [95% CI]", f"top-{top_k}",
              "macro F1", "ECE", "parameters", "epochs", "train s", "images/s", "device"]  # fmt: skip
    return markdown_table(header, rows)


def model_table(records: list) -> str:
    """One row per run: the model, its weights, what was trained, how its inputs were normalized
    and sized, and the precision it ran in (", compiled" when trained through torch.compile; ⚠ with the
    run's warnings, e.g. bf16 on a CPU)."""
    rows = []
    for name, group in by_run(records).items():
        m = group[0]["metrics"]
        o = m["options"]
        inputs = m.get("inputs", {})
        mean = ", ".join(f"{v:.3f}" for v in inputs.get("mean", []))
        std = ", ".join(f"{v:.3f}" for v in inputs.get("std", []))
        precision = m.get("precision", o["precision"])
        warnings = sorted({w for r in group for w in r["metrics"].get("warnings", [])})
        rows.append(
            [
                md(name),
                md(o["model"]),  # config text: a user's model file, a weights path
                md(o["weights"]),
                md(o.get("trainable", "—")),
                f"{m['parameters']['total']:,}",
                f"{m['parameters']['trainable']:,}",
                f"{inputs.get('normalization', '—')} (mean {mean}; std {std})" if inputs else "—",
                inputs.get("input_size", "—"),
                f"{o['optimizer']} lr {o['lr']}, {o['schedule']}",
                o["batch_size"],
                precision + ", compiled" * bool(m.get("compiled")) + "".join(f" ⚠ {w}" for w in warnings),
                processes_and_data(m),
            ]
        )
    header = ["run", "model", "weights", "trainable", "parameters", "trained", "normalization",
              "input size", "optimizer", "batch", "precision", "processes, data"]  # fmt: skip
    return markdown_table(header, rows)


def processes_and_data(metrics: dict) -> str:
    """How many processes trained a run, and whether its splits were resident on the device or
    streamed to it ("—" for runs recorded before labbook said)."""
    processes = metrics.get("processes", 1)
    placement = metrics.get("data_placement")
    if not placement:
        where = "—"
    elif len(set(placement.values())) == 1:
        where = next(iter(placement.values()))
    else:
        where = "; ".join(f"{split} {kind}" for split, kind in placement.items())
    return f"{processes} process{'es' * (processes > 1)}, {where}"


def sweeps(records: list) -> dict:
    """{sweep's run name: [({option: value}, [test accuracy of each seed], expanded run name,
    [validation accuracy of each seed])]} for the runs that came from a `sweep:`, in config
    order; a diverged seed's accuracies are None."""
    found = {}
    for name, group in by_run(records).items():
        sweep = group[0].get("sweep")
        if sweep:
            val = [None if diverged(r) else r["metrics"].get("val_acc") for r in group]
            found.setdefault(sweep["run"], []).append((sweep["values"], seed_accuracies(group), name, val))
    return found


def sweep_table(points: list) -> str:
    """One row per combination: the swept values, validation accuracy (which chooses the
    winner, marked ★), test accuracy (mean ± sd; *diverged*), the run's name."""
    keys = list(points[0][0])
    chosen = [np.mean(val) if None not in val else -1.0 for *_, val in points]
    winner = int(np.argmax(chosen)) if max(chosen) >= 0 else None
    rows = [
        [
            *(md(values[k]) for k in keys),
            seeds_cell(val, percent=True) + (" ★" if i == winner else ""),
            seeds_cell(acc, percent=True),
            len(acc),
            md(name),
        ]  # fmt: skip
        for i, (values, acc, name, val) in enumerate(points)
    ]
    return markdown_table([*keys, "val accuracy (chooses ★)", "test accuracy", "seeds", "run"], rows)


def per_class_f1_table(records: list) -> str:
    """F1 of every class (rows) for every run (columns), mean over seeds: where runs differ. A
    diverged run's column is marked *diverged*, its F1 the mean over the seeds that did not
    diverge ("—" when all did)."""
    grouped = by_run(records)
    if not grouped:
        return ""
    classes = list(records[0]["evaluation"]["per_class"])

    def f1(group, name):
        kept = healthy(group)
        return f"{np.mean([r['evaluation']['per_class'][name]['f1'] for r in kept]):.3f}" if kept else "—"

    rows = [[md(name)] + [f1(g, name) for g in grouped.values()] for name in classes]
    header = [md(name) + (f" {DIVERGED}" if any(map(diverged, g)) else "") for name, g in grouped.items()]
    return markdown_table(["class F1", *header], rows)


# Coloured words, not emoji: headless and minimal systems often lack an emoji font.
SUPPORTED = '<b style="color:#1a7f37">supported</b>'
NOT_SUPPORTED = '<b style="color:#c62828">not supported</b>'
INCONCLUSIVE = '<b style="color:#9a6700">inconclusive</b>'
NOT_SUPPORTED_DIVERGED = '<b style="color:#c62828">not supported (diverged)</b>'
DIVERGED_WORD = '<b style="color:#c62828">diverged</b>'
WORDS = {"supported": SUPPORTED, "not supported": NOT_SUPPORTED, "inconclusive": INCONCLUSIVE}


def target_claim(group: list) -> tuple[str, str] | None:
    """(outcome, words) of a healthy run's target_accuracy: supported when every 95% interval
    of its test accuracy (over images; over seeds, with several) lies at or above the target,
    not supported when every one lies below, inconclusive otherwise (stats.verdict)."""
    target = group[0].get("target_accuracy")
    if target is None:
        return None
    summary = accuracy_intervals(group)
    intervals = [i for i in (summary["images"], summary["seeds"]) if i is not None]
    outcome = stats.verdict(intervals, target) if intervals else "inconclusive"
    seeds = f"{len(group)} seed{'s' if len(group) > 1 else ''}"
    spans = f"95% CI {interval_text(summary['images'])} over test images" + (
        f", {interval_text(summary['seeds'])} over seeds" if summary["seeds"] else ""
    )
    return outcome, f"test accuracy {summary['mean']:.1%} ({spans}; {seeds}) against target {target:.0%}"


def paired(group: list, other: list) -> dict | None:
    """stats.paired_difference of two runs' test correctness (seeds matched by position), None
    when either has none or they were not evaluated on the same test images."""
    a, b = correctness(group), correctness(other)
    if a is None or b is None or a.shape[1] != b.shape[1]:
        return None
    return stats.paired_difference(a, b)


def beats_claim(group: list, grouped: dict) -> tuple[str, str] | None:
    """(outcome, words) of a run's `beats:` claim, judged on the paired 95% intervals of the
    difference in test accuracy (over images; over seeds where both have several) against its
    margin."""
    claim = group[0].get("beats")
    if not claim:
        return None
    other, margin = grouped.get(claim["run"]), claim["margin"]
    by = f" by more than {margin * 100:.1f} points" if margin else ""
    if other is None or len(healthy(other)) < len(other):
        return "not supported", f"beats {md(claim['run'])}{by}: that run diverged or is missing"
    difference = paired(group, other)
    if difference is None:
        return (
            "inconclusive",
            f"beats {md(claim['run'])}{by}: no paired comparison (not the same test images)",
        )
    intervals = [(difference["low"], difference["high"])]
    if difference["seeds_low"] is not None:
        intervals.append((difference["seeds_low"], difference["seeds_high"]))
    words = f"beats {md(claim['run'])}{by}: {difference_text(difference)}"
    return stats.verdict(intervals, margin), words


def points_interval(low, high) -> str:
    """A difference's interval in percentage points, +14.6 to +20.6; "—" for none."""
    return "—" if low is None else f"{low * 100:+.1f} to {high * 100:+.1f}"


def difference_text(difference: dict) -> str:
    """A paired difference in words: points, its intervals, McNemar's p."""
    seeds = points_interval(difference["seeds_low"], difference["seeds_high"])
    return (
        f"{difference['difference'] * 100:+.1f} points (paired 95% CI "
        f"{points_interval(difference['low'], difference['high'])} over test images"
        + (f", {seeds} over seeds" if difference["seeds_low"] is not None else "")
        + f"; McNemar p = {difference['mcnemar_p']:.2g})"
    )


def claims(group: list, grouped: dict) -> list:
    """[(outcome, words)] of a run's claims: its target accuracy and its `beats:`; a run with a
    diverged seed supports neither."""
    if len(healthy(group)) < len(group):
        made = [group[0].get("target_accuracy") is not None, bool(group[0].get("beats"))]
        return [("not supported", "diverged")] * sum(made)
    return [claim for claim in (target_claim(group), beats_claim(group, grouped)) if claim]


def verdict(group: list, grouped: dict | None = None) -> str:
    """One line: the run's hypothesis and the outcome of each of its claims. A run with a
    diverged seed supports none: "not supported (diverged)"."""
    grouped = grouped or {group[0]["name"]: group}
    name = group[0]["name"]
    seeds = f"{len(group)} seed{'s' if len(group) > 1 else ''}"
    lost, kept = [r for r in group if diverged(r)], healthy(group)
    has_claims = group[0].get("target_accuracy") is not None or group[0].get("beats")
    if lost:
        detail = "; ".join(f"seed {r['seed']} {divergence(r)}" for r in lost)
        if kept:
            detail += f"; the other seeds' mean test accuracy {mean_accuracy(kept):.1%}"
        word = NOT_SUPPORTED_DIVERGED if has_claims else DIVERGED_WORD
        outcome = f"{word}: {detail} ({seeds})" + ("" if has_claims else "; no claim made")
    elif not has_claims:
        outcome = f"no claim made; mean test accuracy {mean_accuracy(kept):.1%} ({seeds})"
    else:
        outcome = "; ".join(f"{WORDS[result]}: {words}" for result, words in claims(group, grouped))
    hypothesis = (group[0].get("hypothesis") or "").strip()
    return f"- **{md(name)}**: " + (f"_{md(hypothesis)}_ → " if hypothesis else "") + outcome


def verdicts(records: list) -> list:
    grouped = by_run(records)
    return [verdict(group, grouped) for group in grouped.values()]


def hypotheses_held(records: list) -> list:
    """Whether each claim of each run (target accuracy, beats) is supported."""
    grouped = by_run(records)
    return [result == "supported" for group in grouped.values() for result, _ in claims(group, grouped)]


def baseline_run(records: list):
    """The run the paired comparisons are against: the config's `baseline`, else the best run."""
    named = [r["name"] for r in records if r.get("baseline")]
    return named[0] if named else best_run(records)


def paired_table(records: list) -> str:
    """Every other healthy run against the baseline, on the same test images: the difference in
    test accuracy with its paired 95% intervals and McNemar's exact p ("" with one run)."""
    grouped = by_run(records)
    baseline = baseline_run(records)
    if baseline is None or len(grouped) < 2:
        return ""
    rows = []
    for name, group in grouped.items():
        if name == baseline or len(healthy(group)) < len(group):
            continue
        difference = paired(group, grouped[baseline])
        if difference is None:
            rows.append([md(name), "—", "not the same test images: no paired comparison", "—", "—", "—"])
            continue
        rows.append(
            [
                md(name),
                f"{difference['difference'] * 100:+.1f}",
                points_interval(difference["low"], difference["high"]),
                points_interval(difference["seeds_low"], difference["seeds_high"]),
                f"{difference['mcnemar_p']:.2g}",
                f"{difference['a_only']:g} / {difference['b_only']:g}",
            ]
        )
    header = [f"run − {md(baseline)}", "Δ test accuracy (points)", "paired 95% CI (images)",
              "95% CI (seeds)", "McNemar p", "right only here / only in baseline"]  # fmt: skip
    return markdown_table(header, rows)


def headline(records: list) -> str:
    """The one sentence a reader sees first: the best run, its accuracy, how many runs met
    their targets, how many diverged (left out)."""
    if not records:
        return "No runs were given."
    grouped = by_run(records)
    best = best_run(records)
    checked = hypotheses_held(records)
    lost = [name for name, group in grouped.items() if any(map(diverged, group))]
    runs = f"{len(grouped)} run{'s' if len(grouped) > 1 else ''}"
    if best is None:
        return f"**No best run**: all {runs} diverged, so none has a test accuracy."
    summary = accuracy_intervals(grouped[best])
    text = (
        f"**Best run: {md(best)}** (chosen on validation accuracy, "
        f"{format(val_accuracy(grouped[best]) or float('nan'), '.1%')}) with test accuracy "
        f"{mean_sd([r['evaluation']['accuracy'] for r in grouped[best]], percent=True)}"
        f" (95% CI {interval_text(summary['images'])}; macro F1 "
        f"{mean_sd([r['evaluation']['macro_f1'] for r in grouped[best]])})"
        f" of {len(grouped)} run{'s' if len(grouped) > 1 else ''}."
    )
    if checked:
        text += f" {sum(checked)} of {len(checked)} claims supported by their 95% intervals."
    if lost:
        names = ", ".join(md(name) for name in lost)
        text += f" {len(lost)} of {runs} diverged ({names}): left out of the comparison."
    return text


def short(value, length: int = 12) -> str:
    return value[:length] if isinstance(value, str) else "—"


def environment_table(steps: dict) -> str:
    """steps: {column label: provenance record}. Rows: what identifies code, interpreter,
    packages and accelerator; a dash where a step does not have it (e.g. torch outside train)."""
    packages = sorted({name for record in steps.values() for name in record.get("packages", {})})

    def git(record):
        state = record.get("git") or {}
        if not state.get("commit"):
            return "not a git checkout"
        return f"`{state['commit'][:12]}`" + (" + uncommitted changes" if state.get("dirty") else " (clean)")

    def torch_fact(key):
        return lambda record: record.get("torch", {}).get(key) if "torch" in record else None

    def gpus(record):
        if "torch" not in record:
            return None
        return ", ".join(record["torch"].get("gpus") or []) or "none (CPU)"

    rows = [
        ("git commit", git),
        ("labbook", lambda r: r.get("labbook")),
        ("Python", lambda r: r.get("python")),
        ("platform", lambda r: r.get("platform")),
        *[(name, lambda r, name=name: r.get("packages", {}).get(name)) for name in packages],
        ("torch build", torch_fact("torch")),
        ("CUDA (torch build)", torch_fact("cuda")),
        ("CUDA available", torch_fact("cuda_available")),
        ("cuDNN", torch_fact("cudnn")),
        ("GPU", gpus),
        ("GPU driver", torch_fact("driver")),
    ]
    table = []
    for label, get in rows:
        cells = [get(record) if record else None for record in steps.values()]
        if any(cell is not None for cell in cells):
            table.append([label, *[cell if cell is not None else "—" for cell in cells]])
    return markdown_table(["", *steps], table)


def runs_provenance_table(records: list) -> str:
    """Per training job: seed, device, the hash of the values it was given."""
    rows = []
    for r in records:
        given = r.get("provenance", {}).get("config", {})  # what the train step was given
        options_hash = provenance.config_hash(given["options"]) if "options" in given else None
        rows.append(
            [
                md(r["name"]),
                r["seed"],
                md(r["metrics"].get("device_name", "—")),
                f"`{short(options_hash)}`" if options_hash else "—",
                f"`{short(r.get('analysis_provenance', {}).get('manifest_sha256'))}`",
            ]
        )
    return markdown_table(
        ["run", "seed", "device", "training options sha256", "data manifest sha256 seen"], rows
    )


def gpu_table(records: list) -> str:
    """Per training job: its GPU, the peak memory allocated to tensors and reserved by PyTorch
    (the highest epoch), reserved as a share of the GPU's memory, and mean utilization: room for
    a bigger batch or not. One sentence instead when no job had a GPU."""
    summaries = [r["metrics"].get("gpu") for r in records]
    notes = sorted({_table_text(s["note"]) for s in summaries if s and s.get("note")})
    if records and not any(s and s.get("name") for s in summaries):
        return f"Nothing to show ({'; '.join(notes) or 'not recorded by these runs'})."
    rows = []
    for record, gpu in zip(records, summaries, strict=True):
        if not gpu or not gpu.get("name"):
            what = _table_text(gpu["note"]) if gpu else "not recorded"
            rows.append([md(record["name"]), record["seed"], what, "—", "—", "—"])
            continue
        allocated, reserved = gpu.get("peak_allocated_mib"), gpu.get("peak_reserved_mib")
        utilization = gpu.get("utilization_percent")
        share = f" ({reserved / gpu['total_mib']:.1%} of {gpu['total_mib']:,.0f})" if reserved else ""
        rows.append(
            [
                md(record["name"]),
                record["seed"],
                _table_text(gpu["name"]),
                f"{allocated:,.0f}" if allocated else "—",
                f"{reserved:,.0f}{share}" if reserved else "—",
                f"{utilization:.0f}%" if utilization is not None else "—",
            ]
        )
    header = ["run", "seed", "GPU", "peak allocated MiB", "peak reserved MiB", "mean utilization"]
    table = markdown_table(header, rows)
    return table + ("\n\n" + "; ".join(notes) if notes else "")


def _table_text(text: str) -> str:
    """Text from the machine (a GPU's name, an error) shown as itself inside a Markdown table."""
    return html.escape(str(text)).replace("|", "\\|")


def image_row(paths, width: int = 0) -> str:
    """HTML showing PNGs side by side (wrapping on narrow screens), inlined as base64 so the
    report stays one file that opens offline."""
    import base64

    style = f' style="max-width:{width}px"' if width else ""
    images = []
    for path in paths:
        data = base64.b64encode(Path(path).read_bytes()).decode()
        alt = html.escape(Path(path).stem, quote=True)
        images.append(f'<img src="data:image/png;base64,{data}" alt="{alt}"{style}>')
    return f'<div class="figure-row">{"".join(images)}</div>'


# The look of the report: readable line length, compact tables, the headline as a callout.
# Inline CSS only: nothing loads from the network.
STYLE = """<style>
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
.jp-Notebook, main { max-width: 1150px; margin: 0 auto; }
.jp-RenderedMarkdown h1 { font-size: 2em; border-bottom: 2px solid #4c72b0; padding-bottom: .2em; }
.jp-RenderedMarkdown h2 { border-bottom: 1px solid #ddd; padding-bottom: .15em; margin-top: 1.6em; }
.jp-RenderedMarkdown blockquote { border-left: 5px solid #4c72b0; background: #f2f5fb;
  margin: .6em 0; padding: .6em 1em; font-size: 1.08em; color: #222; }
.jp-RenderedMarkdown table { font-size: .9em; }
.jp-RenderedHTMLCommon td, .jp-RenderedHTMLCommon th { padding: .25em .6em; }
.figure-row { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
.figure-row img { max-width: 100%; height: auto; }
</style>"""
