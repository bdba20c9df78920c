"""The book of experiments: where a dataset spec's data go, sweeps expanded into runs, and the
lab book page (results/index.html) that lists every experiment on disk.

Only the standard library: the workflow imports this module while it builds the job graph, in
Snakemake's own Python.
"""

import datetime
import hashlib
import html
import itertools
import json
import re
from pathlib import Path
from urllib.parse import quote

from .prepare import dataset_options

# Keys of a run that are not training options (runtime and mem_mb: what its jobs ask a cluster
# for, see limits.py; not training parameters, so changing them reruns no training).
RUN_KEYS = ("seeds", "target_accuracy", "hypothesis", "description", "sweep", "runtime", "mem_mb")
# The analysis step's figures: file stem → what it shows (Snakemake report labels, alt texts).
ANALYSIS_FIGURES = {
    "confusion_matrix": "confusion matrix",
    "roc": "ROC curves",
    "reliability": "reliability diagram",
    "mistakes": "most confident mistakes",
}
SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


def dataset_key(spec: dict) -> str:
    """The data folder's name: the dataset's name and a hash of its full spec (defaults filled
    in), so experiments with the same spec share one data step and different specs under one
    name never overwrite each other."""
    options = {"kind": spec["kind"], **dataset_options(spec)}
    digest = hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()
    return f"{spec['name']}-{digest[:8]}"


def sweep_name(run: str, values: dict) -> str:
    """A path-safe run name for one combination: cifarnet-lr0.01-batch_size128."""
    parts = [run] + [f"{key}{value}" for key, value in values.items()]
    return SAFE_NAME.sub("_", "-".join(parts))


def expand_runs(runs: dict):
    """Runs as the config names them, each `sweep:` expanded into one run per combination of its
    values (the first key varies slowest). Returns ({name: run without sweep},
    {expanded name: {"run": the config's run name, "values": {option: value}}})."""
    expanded, sweeps = {}, {}
    for name, spec in runs.items():
        sweep = spec.get("sweep")
        if not sweep:
            expanded[name] = dict(spec)
            continue
        base = {k: v for k, v in spec.items() if k != "sweep"}
        for combination in itertools.product(*sweep.values()):
            values = dict(zip(sweep, combination, strict=True))
            new_name = sweep_name(name, values)
            if new_name in runs or new_name in expanded:
                raise ValueError(
                    f"run {name!r}: its sweep combination {values} is named {new_name!r}, "
                    "which another run already has; rename one of them"
                )
            expanded[new_name] = {**base, **values}
            sweeps[new_name] = {"run": name, "values": values}
    return expanded, sweeps


def training_options(defaults: dict, run: dict) -> dict:
    """A run's training options: the `train:` defaults with the run's own values on top."""
    return {**defaults, **{k: v for k, v in run.items() if k not in RUN_KEYS}}


def entry(experiment: str, title: str, dataset: dict, records: list, git: dict) -> dict:
    """What the lab book shows of one experiment (book.json beside its report). records: the
    report's loaded runs (labbook.report.load_runs)."""
    from . import report  # numpy: only the report step, not the job graph, makes entries

    best = report.best_run(records)
    held = report.hypotheses_held(records)
    return {
        "experiment": experiment,
        "title": title,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "git_commit": (git or {}).get("commit"),
        "git_dirty": (git or {}).get("dirty"),
        "dataset": f"{dataset['name']} ({dataset['kind']})",
        "runs": len(report.by_run(records)),
        "jobs": len(records),
        "best_run": best,
        "best_accuracy": report.mean_accuracy(report.by_run(records)[best]) if best else None,
        "hypotheses_supported": sum(held),
        "hypotheses_checked": len(held),
        "report": "report.html",
    }


def read_entries(paths) -> list:
    """The book.json files given, newest run first; an unreadable one is listed as such."""
    entries = []
    for path in paths:
        path = Path(path)
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            record = {"experiment": path.parent.name, "title": f"unreadable {path.name}: {error}"}
        record["folder"] = path.parent.name
        entries.append(record)
    return sorted(entries, key=lambda e: e.get("date") or "", reverse=True)


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>labbook: the lab book</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2em auto;
  max-width: 1200px; padding: 0 1em; color: #222; }}
h1 {{ border-bottom: 2px solid #4c72b0; padding-bottom: .2em; }}
table {{ border-collapse: collapse; width: 100%; font-size: .95em; }}
th, td {{ text-align: left; padding: .35em .6em; border-bottom: 1px solid #ddd; vertical-align: top; }}
th {{ background: #f2f5fb; }}
td:nth-child(8) {{ text-align: right; font-variant-numeric: tabular-nums; }}
code {{ font-size: .9em; }}
</style></head>
<body>
<h1>The lab book</h1>
<p>{summary}</p>
<table>
<thead><tr><th>experiment</th><th>title</th><th>last run (UTC)</th><th>git commit</th>
<th>dataset</th><th>runs × seeds</th><th>best run</th><th>test accuracy</th><th>hypotheses held</th></tr></thead>
<tbody>
{rows}
</tbody></table>
</body></html>
"""


def index_html(entries: list) -> str:
    """The lab book: one row per experiment, linking to its report. Every text from a config is
    escaped; links are percent-encoded relative paths, so the page opens from disk."""
    rows = []
    for e in entries:
        commit = e.get("git_commit")
        commit_text = f"<code>{html.escape(commit[:12])}</code>" if commit else "—"
        if commit and e.get("git_dirty"):
            commit_text += " + changes"
        accuracy = e.get("best_accuracy")
        link = quote(f"{e['folder']}/{e.get('report', 'report.html')}")
        held = (
            f"{e['hypotheses_supported']} of {e['hypotheses_checked']}"
            if e.get("hypotheses_checked")
            else "—"
        )
        cells = [
            f'<a href="{html.escape(link)}">{html.escape(str(e.get("experiment", e["folder"])))}</a>',
            html.escape(str(e.get("title", ""))),
            html.escape(str(e.get("date", "—")).replace("T", " ").replace("+00:00", "")),
            commit_text,
            html.escape(str(e.get("dataset", "—"))),
            f"{e.get('runs', '—')} runs, {e.get('jobs', '—')} jobs",
            html.escape(str(e.get("best_run") or "—")),
            f"{accuracy:.1%}" if accuracy is not None else "—",
            held,
        ]
        rows.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    count = len(entries)
    summary = f"{count} experiment{'s' if count != 1 else ''} in this folder, newest first."
    return PAGE.format(summary=summary, rows="\n".join(rows))


def write_index(entry_paths, out) -> list:
    """Write the lab book page from book.json files; returns the entries it lists."""
    from .cache import atomic_write

    entries = read_entries(entry_paths)
    page = index_html(entries).encode()
    atomic_write(out, lambda f: f.write(page))
    return entries
