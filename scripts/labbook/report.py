"""Tables and verdicts for the report notebook, from the files the steps wrote. No torch."""

import json
from pathlib import Path

import numpy as np


def load_runs(runs: list) -> list:
    """runs: [{name, seed, train_dir, analysis_dir, ...}] → the same dicts with metrics,
    evaluation and provenance loaded from their directories."""
    records = []
    for run in runs:
        train_dir, analysis_dir = Path(run["train_dir"]), Path(run["analysis_dir"])
        record = dict(run)
        record["metrics"] = json.loads((train_dir / "metrics.json").read_text())
        record["evaluation"] = json.loads((analysis_dir / "evaluation.json").read_text())
        provenance = train_dir / "provenance.json"
        record["provenance"] = json.loads(provenance.read_text()) if provenance.exists() else {}
        records.append(record)
    return records


def by_run(records: list) -> dict:
    """{run name: [records of its seeds]} in config order."""
    grouped = {}
    for record in records:
        grouped.setdefault(record["name"], []).append(record)
    return grouped


def mean_sd(values) -> str:
    values = np.asarray(values, dtype=float)
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{values.mean():.4f} ± {values.std(ddof=1):.4f}"


def markdown_table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def results_table(records: list) -> str:
    """One row per run; accuracy as mean ± sd over seeds; the best mean accuracy in bold."""
    grouped = by_run(records)
    means = {name: np.mean([r["evaluation"]["accuracy"] for r in group]) for name, group in grouped.items()}
    best = max(means, key=means.get) if means else None
    rows = []
    for name, group in grouped.items():
        metrics = group[0]["metrics"]
        label = f"**{name}** (best)" if name == best and len(grouped) > 1 else name
        rows.append(
            [
                label,
                metrics["model"],
                len(group),
                mean_sd([r["evaluation"]["accuracy"] for r in group]),
                mean_sd([r["evaluation"]["macro_f1"] for r in group]),
                f"{metrics['parameters']['total']:,} ({metrics['parameters']['trainable']:,} trained)",
                len(metrics["history"]),
                f"{np.mean([r['metrics']['train_seconds'] for r in group]):.1f}",
                f"{np.mean([r['metrics']['images_per_s'] for r in group]):.0f}",
                metrics["device_name"],
            ]
        )
    header = ["run", "model", "seeds", "test accuracy", "macro F1", "parameters", "epochs",
              "train s", "images/s", "device"]  # fmt: skip
    return markdown_table(header, rows)


def verdicts(records: list) -> list:
    """One line per run: did the mean test accuracy reach the run's target?"""
    lines = []
    for name, group in by_run(records).items():
        accuracy = float(np.mean([r["evaluation"]["accuracy"] for r in group]))
        target = group[0].get("target_accuracy")
        hypothesis = group[0].get("hypothesis") or ""
        if target is None:
            verdict = f"reached {accuracy:.1%}; no target accuracy was set"
        elif accuracy >= target:
            verdict = f"**reached** the target: {accuracy:.1%} ≥ {target:.1%}"
        else:
            verdict = f"**missed** the target: {accuracy:.1%} < {target:.1%}"
        lines.append(f"- **{name}**: {verdict}." + (f" Hypothesis: _{hypothesis}_" if hypothesis else ""))
    return lines
