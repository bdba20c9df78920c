"""The book of experiments: each experiment's entry (book.json, written by its report step) and
the lab book page (results/index.html) that lists every experiment on disk and compares their runs.

book.json holds the experiment's summary (one row of the page) and `run_details`: per run (a
config run with its seeds) its options, dataset spec, validation and test accuracy, curves and
per-image test correctness (stats.pack_correct). The page embeds every experiment's runs and,
for each pair of runs evaluated on the same test images, their paired difference
(stats.paired_difference), computed when the page is written."""

import datetime
import hashlib
import html
import json
import math
from pathlib import Path
from urllib.parse import quote

import numpy as np

from . import provenance, report, stats
from .atomic import atomic_write
from .plan import files


def entry(experiment: str, title: str, dataset: dict, records: list, git: dict) -> dict:
    """What the lab book shows of one experiment (book.json beside its report). records: the
    report's loaded runs (labbook.report.load_runs). Counted as the report counts them: a run
    with a diverged seed is among the runs and diverged_runs, never the best run, and its
    hypothesis is checked and not supported. The best run is report.best_run's (chosen on
    validation); the headline number is its test accuracy."""
    best = report.best_run(records)
    held = report.hypotheses_held(records)
    grouped = report.by_run(records)
    details = [run_details(name, group, dataset) for name, group in grouped.items()]
    best_details = next((d for d in details if d["name"] == best), None)
    return {
        "experiment": experiment,
        "title": title,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "git_commit": (git or {}).get("commit"),
        "git_dirty": (git or {}).get("dirty"),
        "dataset": f"{dataset['name']} ({dataset['kind']})",
        "dataset_spec": provenance.scrub(finite(dataset)),
        "runs": len(grouped),
        "jobs": len(records),
        "diverged_runs": [name for name, group in grouped.items() if any(map(report.diverged, group))],
        "best_run": best,
        "best_chosen_on": "validation",
        "best_accuracy": report.mean_accuracy(grouped[best]) if best else None,  # its test accuracy
        "best_val_accuracy": best_details["val_acc"] if best_details else None,
        "hypotheses_supported": sum(held),
        "hypotheses_checked": len(held),
        "report": files.REPORT["html"],
        "run_details": details,
    }


def finite(value):
    """value with every non-finite float (NaN, ±inf) as None and numpy scalars as Python's:
    what JSON.parse reads (it refuses NaN)."""
    if isinstance(value, dict):
        return {str(k): finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def mean_of(values):
    """The mean of the finite numbers among values; None when there are none."""
    kept = [float(v) for v in values if isinstance(v, int | float) and math.isfinite(v)]
    return float(np.mean(kept)) if kept else None


def history_value(record: dict, key: str):
    """An epoch's validation number; history written before the validation split holds the test
    split's (test_acc, test_loss) instead."""
    value = record.get(f"val_{key}")
    return record.get(f"test_{key}") if value is None else value


def curves(group: list) -> dict:
    """Per-epoch curves, the mean over the run's seeds that did not diverge (all, when every seed
    did) of those that reached each epoch: {"epoch", "val_acc", "val_loss", "train_loss",
    "split"}; split says which split the per-epoch numbers are of ("test" in older runs)."""
    group = report.healthy(group) or group
    histories = [(r.get("metrics") or {}).get("history") or [] for r in group]
    epochs = max((len(h) for h in histories), default=0)
    split = "val"
    if any("val_acc" not in e and "test_acc" in e for h in histories for e in h):
        split = "test"
    out = {"split": split, "epoch": [], "val_acc": [], "val_loss": [], "train_loss": []}
    for index in range(epochs):
        at = [h[index] for h in histories if len(h) > index]
        out["epoch"].append(at[0].get("epoch", index + 1))
        out["val_acc"].append(mean_of([history_value(e, "acc") for e in at]))
        out["val_loss"].append(mean_of([history_value(e, "loss") for e in at]))
        out["train_loss"].append(mean_of([e.get("train_loss") for e in at]))
    return out


def correctness(group: list) -> dict:
    """{"correct": stats.pack_correct text (a row per seed, in the run's seed order, as the report
    pairs them), "images", "test_labels": the hash of the test labels, "no_correct": None}, from
    the records' per-image correctness (report.load_runs). Without it (so without a paired
    comparison, as in the report) where a seed diverged or has none (fabricated records), or the
    seeds were tested on different images: then "no_correct" says why."""

    def without(reason):
        return {"correct": None, "images": None, "test_labels": None, "no_correct": reason}

    if any(map(report.diverged, group)):
        return without("a seed diverged")
    correct = report.correctness(group)
    if correct is None:
        return without("no test predictions on record")
    hashes = {record.get("test_labels") for record in group}
    if len(hashes) != 1:
        return without("its seeds were tested on different images")
    return {
        "correct": stats.pack_correct(correct),
        "images": int(correct.shape[1]),
        "test_labels": hashes.pop(),
        "no_correct": None,
    }


def run_details(name: str, group: list, dataset: dict) -> dict:
    """What the lab book's comparison needs of one run: its options, data and numbers (means over
    the seeds that did not diverge; None where there are none)."""
    metrics = [r.get("metrics") or {} for r in group]
    kept = report.healthy(group)
    kept_metrics = [r.get("metrics") or {} for r in kept]
    first = metrics[0]

    def test_accuracy(record):
        evaluation = record.get("evaluation") or {}
        return evaluation.get("accuracy", (record.get("metrics") or {}).get("test_acc"))

    return provenance.scrub(
        finite(
            {
                "name": name,
                "seeds": [r.get("seed") for r in group],
                "sweep": group[0].get("sweep"),
                "target_accuracy": group[0].get("target_accuracy"),
                "model": first.get("model", (first.get("options") or {}).get("model")),
                "options": first.get("options") or {},
                "dataset": dataset,
                "diverged": any(map(report.diverged, group)),
                "val_acc": mean_of([m.get("val_acc") for m in kept_metrics]),
                "test_acc": mean_of([test_accuracy(r) for r in kept]),
                "macro_f1": mean_of([(r.get("evaluation") or {}).get("macro_f1") for r in kept]),
                "val_acc_seeds": [
                    None if report.diverged(r) else (r.get("metrics") or {}).get("val_acc") for r in group
                ],
                "test_acc_seeds": [None if report.diverged(r) else test_accuracy(r) for r in group],
                "best_epoch": [m.get("best_epoch") for m in metrics],
                "parameters": first.get("parameters") or {},
                "train_seconds": mean_of([m.get("train_seconds") for m in metrics]),
                "curves": curves(group),
                **correctness(group),
            }
        )
    )


def read_entries(paths) -> list:
    """The book.json files given, newest run first; an unreadable one is listed as such."""
    entries = []
    for path in paths:
        path = Path(path)
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            record = {"experiment": path.parent.name, "title": f"unreadable {path.name}: {error}"}
        if not isinstance(record, dict):
            record = {"experiment": path.parent.name, "title": f"unreadable {path.name}: not an object"}
        record["folder"] = path.parent.name
        entries.append(record)
    return sorted(entries, key=lambda e: e.get("date") or "", reverse=True)


# ---------------------------------------------------------------- comparing runs
def test_images_key(run: dict):
    """The key of the test images a run was evaluated on: runs with equal keys share them (same
    dataset spec, same test labels, same count) and are compared image by image; None for a
    run without per-image correctness."""
    if not (run.get("correct") and run.get("test_labels") and run.get("images")):
        return None
    spec = json.dumps(run.get("dataset"), sort_keys=True, default=str)
    return spec, run["test_labels"], run["images"]


def paired_differences(runs: list, known: dict | None = None) -> tuple:
    """({"i-j": stats.paired_difference(run i, run j)} for i < j, [test-images group of each
    run, None without correctness]) over every pair of runs sharing their test images; run i is
    A: its difference is run i's test accuracy minus run j's. known: earlier results by their
    inputs (a pair's "inputs", see pair_inputs), reused rather than computed again."""
    known = known or {}
    groups, correct, digests = {}, {}, {}
    for index, run in enumerate(runs):
        key = test_images_key(run)
        if key is None:
            continue
        try:
            correct[index] = stats.unpack_correct(run["correct"], run["images"])
        except ValueError:
            continue
        digests[index] = hashlib.sha256(f"{run['images']}:{run['correct']}".encode()).hexdigest()[:24]
        groups.setdefault(key, []).append(index)
    group_of = [None] * len(runs)
    pairs = {}
    for number, members in enumerate(groups.values()):
        for position, a in enumerate(members):
            group_of[a] = number
            for b in members[position + 1 :]:
                inputs = f"{STATS_VERSION}:{digests[a]}:{digests[b]}"
                found = known.get(inputs)
                if found is None:
                    result = finite(stats.paired_difference(correct[a], correct[b]))
                    found = {**{k: short(v) for k, v in result.items()}, "inputs": inputs}
                pairs[f"{a}-{b}"] = found
    return pairs, group_of


def short(value):
    """A float to 6 significant digits (what the page shows needs 3; the page stays small)."""
    return float(f"{value:.6g}") if isinstance(value, float) else value


# What a pair's stored result was computed by: a change to stats.py computes every pair again.
STATS_VERSION = hashlib.sha256(Path(stats.__file__).read_bytes()).hexdigest()[:12]


def compare_data(entries: list, previous: dict | None = None) -> dict:
    """The page's data: every experiment's runs (without their packed correctness) and the paired
    differences of those sharing test images; previous: the data of the page this one replaces,
    whose pairs are reused where their inputs are the same (a rebuild computes the new pairs)."""
    runs = []
    for e in entries:
        for run in e.get("run_details") or []:
            if isinstance(run, dict) and "name" in run:
                runs.append({**run, "experiment": str(e.get("experiment", e["folder"])),
                             "best": run["name"] == e.get("best_run")})  # fmt: skip
    known = {}
    for pair in ((previous or {}).get("pairs") or {}).values():
        if isinstance(pair, dict) and isinstance(pair.get("inputs"), str):
            known[pair["inputs"]] = pair
    pairs, group_of = paired_differences(runs, known)
    page_runs = []
    for index, run in enumerate(runs):
        page_run = {k: v for k, v in run.items() if k != "correct"}
        page_runs.append({**page_run, "id": index, "test_group": group_of[index]})
    unlisted = [str(e.get("experiment", e["folder"])) for e in entries if "run_details" not in e]
    data = {"runs": page_runs, "pairs": pairs, "confidence": stats.CONFIDENCE, "unlisted": unlisted}
    return provenance.scrub(finite(data))


DATA_START = '<script type="application/json" id="book-data">'


def page_data(path) -> dict:
    """The data inlined in a lab book page written before ({} if there is none, or it is not
    readable)."""
    try:
        text = Path(path).read_text()
        start = text.index(DATA_START) + len(DATA_START)
        data = json.loads(text[start : text.index("</script>", start)])
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def script_json(data) -> str:
    """JSON for a <script type="application/json"> block: no `</script>` or `<!--` can end or
    change it, whatever a run's name holds (every <, > and & is a JSON escape)."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


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
#experiments td:nth-child(8) {{ text-align: right; font-variant-numeric: tabular-nums; }}
code {{ font-size: .9em; }}
{style}
</style></head>
<body>
<h1>The lab book</h1>
<p>{summary}</p>
<table id="experiments">
<thead><tr><th>experiment</th><th>title</th><th>last run (UTC)</th><th>git commit</th>
<th>dataset</th><th>runs × seeds</th><th>best run (chosen on validation)</th><th>its test accuracy</th>
<th>claims supported</th></tr></thead>
<tbody>
{rows}
</tbody></table>
{compare}
</body></html>
"""

STYLE = """
h2 { margin-top: 1.6em; border-bottom: 1px solid #c8d3ea; padding-bottom: .15em; }
h3 { margin: 1.2em 0 .4em; font-size: 1.05em; }
.note { color: #555; max-width: 60em; }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.scroll { max-height: 30em; overflow: auto; border: 1px solid #ddd; }
.scroll thead th { position: sticky; top: 0; z-index: 1; }
th button { font: inherit; font-weight: bold; background: none; border: 0; padding: 0; cursor: pointer;
  color: #1f3f7a; text-align: inherit; }
th button:hover, th button:focus { text-decoration: underline; }
th .arrow { color: #4c72b0; margin-left: .25em; }
tr.selected td { background: #fdf6dd; }
.best { color: #b8860b; margin-left: .3em; }
#baseline-choice { border: 1px solid #ddd; padding: .4em .8em; margin: .8em 0; }
#baseline-choice label { margin-right: 1.4em; white-space: nowrap; display: inline-block; }
#options-table caption, #delta-table caption { text-align: left; color: #555; padding: .2em 0; caption-side: top; }
#options-table tr.differs th, #options-table tr.differs td { font-weight: bold; background: #fff8e6; }
#options-table td, #options-table th { word-break: break-word; }
#options-table th[scope=row] { white-space: nowrap; word-break: normal; }
.toggle { display: inline-block; margin: .2em 0 .4em; }
#pairing-notes li { margin: .25em 0; }
.paired { color: #1a5e2a; }
.unpaired { color: #8a4b08; }
svg { max-width: 100%; height: auto; background: #fff; }
svg text { font-family: inherit; font-size: 12px; fill: #333; }
.controls label { margin-right: 1.5em; }
"""

COMPARE = """
<h2 id="compare-runs">Compare runs</h2>
<p class="note">Every run of the experiments above (a run: a config run over its seeds; numbers
are means over seeds). Every choice is made on validation accuracy (<b>val acc</b>); every claim
on test accuracy (<b>test acc</b>). Tick two or more runs to compare them, against a baseline you
choose. Click a column's name to sort by it; click it again to reverse the order. Runs evaluated
on the same test images are compared image by image (a paired interval and McNemar's test);
runs evaluated on different test images are not, and the comparison says so.</p>
<div class="scroll"><table id="runs-table"><thead></thead><tbody></tbody></table></div>
<p id="compare-hint"></p>
<div id="comparison" hidden>
<fieldset id="baseline-choice"><legend>Baseline</legend><div id="baseline-options"></div></fieldset>
<h3>Options</h3>
<label class="toggle"><input type="checkbox" id="show-all"> show all options</label>
<table id="options-table"><caption></caption><thead></thead><tbody></tbody></table>
<h3>Metrics against the baseline</h3>
<table id="delta-table"><caption></caption><thead></thead><tbody></tbody></table>
<ul id="pairing-notes"></ul>
<h3>Validation accuracy per epoch</h3>
<div id="curves"></div>
</div>
<h2 id="sweeps-heading">Sweeps</h2>
<div id="sweeps"></div>
<noscript><p>Comparing runs needs JavaScript; the experiments table above does not.</p></noscript>
<script type="application/json" id="book-data">{data}</script>
<script>{code}</script>
"""

# The page's own code: it builds every element from the data with textContent and
# setAttribute (never innerHTML), so no text from a config can become markup.
CODE = r"""
(function () {
"use strict";
const data = JSON.parse(document.getElementById("book-data").textContent);
const runs = data.runs;
const byId = new Map(runs.map((r) => [r.id, r]));
const level = Math.round(100 * data.confidence);
const state = { selected: [], baseline: null, sortKey: null, sortDir: 1, showAll: false };
const rows = new Map();
const SVG = "http://www.w3.org/2000/svg";
const PALETTE = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3",
  "#8c8c8c", "#ccb974", "#64b5cd"];

function el(tag, props, children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (key === "text") node.textContent = value;
    else if (key === "className") node.className = value;
    else node.setAttribute(key, String(value));
  }
  for (const child of children || []) node.append(child);
  return node;
}
function sv(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}
const num = (v) => typeof v === "number" && isFinite(v);
const pct = (v) => (num(v) ? (100 * v).toFixed(1) + "%" : "—");
const signed = (v) => (v < 0 ? "\u2212" : "+") + Math.abs(100 * v).toFixed(1);
const pts = (v) => (num(v) ? signed(v) + " pts" : "—");
const label = (r) => r.experiment + " / " + r.name;
const pText = (p) => (!num(p) ? "—" : p < 0.001 ? "p < 0.001" : "p = " + p.toFixed(3));
function valueText(v) {
  if (v === undefined) return "—";
  if (v === null) return "null";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

// ------------------------------------------------------------ the table of every run
const COLUMNS = [
  { key: "experiment", title: "experiment", value: (r) => r.experiment },
  { key: "name", title: "run", value: (r) => r.name },
  { key: "model", title: "model", value: (r) => (r.model == null ? null : String(r.model)) },
  { key: "val_acc", title: "val acc", numeric: true, value: (r) => r.val_acc, text: pct },
  { key: "test_acc", title: "test acc", numeric: true, value: (r) => r.test_acc, text: pct },
  { key: "macro_f1", title: "macro F1", numeric: true, value: (r) => r.macro_f1,
    text: (v) => (num(v) ? v.toFixed(3) : "—") },
  { key: "parameters", title: "params", numeric: true,
    value: (r) => (r.parameters && num(r.parameters.total) ? r.parameters.total : null),
    text: (v) => (num(v) ? v.toLocaleString("en-US") : "—") },
  { key: "train_seconds", title: "seconds", numeric: true, value: (r) => r.train_seconds,
    text: (v) => (num(v) ? v.toFixed(1) : "—") },
];

function buildRunsTable() {
  const table = document.getElementById("runs-table");
  const head = el("tr", {}, [el("th", { scope: "col", text: "compare" })]);
  for (const column of COLUMNS) {
    const button = el("button", { type: "button", "data-sort": column.key,
      title: "sort by " + column.title + "; click again to reverse" }, [column.title]);
    button.append(el("span", { className: "arrow", "aria-hidden": "true" }));
    button.addEventListener("click", () => sortBy(column.key));
    head.append(el("th", { scope: "col", "data-key": column.key, "aria-sort": "none",
      className: column.numeric ? "num" : "" }, [button]));
  }
  table.tHead.append(head);
  if ((data.unlisted || []).length) {
    table.parentNode.after(el("p", { className: "note", id: "unlisted", text: "Not listed: the runs of " +
      data.unlisted.join(", ") + " (book entries written before runs were recorded; rerun their report step)." }));
  }
  const body = table.tBodies[0];
  if (!runs.length) {
    body.append(el("tr", {}, [el("td", { colspan: COLUMNS.length + 1,
      text: "No experiment here lists its runs yet: rerun its report step to add them." })]));
  }
  for (const run of runs) {
    const box = el("input", { type: "checkbox", "data-run": run.id, "aria-label": "compare " + label(run) });
    box.addEventListener("change", () => toggle(run.id, box.checked));
    const row = el("tr", { "data-run": run.id }, [el("td", {}, [box])]);
    for (const column of COLUMNS) {
      const value = column.value(run);
      const cell = el("td", { className: column.numeric ? "num" : "", "data-key": column.key },
        [column.text ? column.text(value) : value == null ? "—" : String(value)]);
      if (column.key === "name") {
        cell.replaceChildren(el("span", { className: "run-name", text: run.name }));
        if (run.best) cell.append(el("span", { className: "best", text: "★",
          title: "the experiment's best run, chosen on validation accuracy" }));
        if (run.diverged) cell.append(" (diverged)");
      }
      row.append(cell);
    }
    rows.set(run.id, row);
    body.append(row);
  }
}

function sortBy(key) {
  if (state.sortKey === key) state.sortDir = -state.sortDir;
  else { state.sortKey = key; state.sortDir = 1; }
  const column = COLUMNS.find((c) => c.key === key);
  const direction = (column.numeric ? -1 : 1) * state.sortDir;  // numbers: largest first
  const ordered = runs.slice().sort((a, b) => {
    const x = column.value(a), y = column.value(b);
    if (x == null || y == null) return x == null && y == null ? a.id - b.id : x == null ? 1 : -1;
    const d = column.numeric ? x - y : String(x).localeCompare(String(y));
    return d !== 0 ? direction * d : a.id - b.id;
  });
  const body = document.getElementById("runs-table").tBodies[0];
  for (const run of ordered) body.append(rows.get(run.id));
  for (const th of document.querySelectorAll("#runs-table th[data-key]")) {
    const on = th.getAttribute("data-key") === key;
    th.setAttribute("aria-sort", on ? (direction > 0 ? "ascending" : "descending") : "none");
    th.querySelector(".arrow").textContent = on ? (direction > 0 ? "▲" : "▼") : "";
  }
}

function toggle(id, on) {
  state.selected = state.selected.filter((s) => s !== id);
  if (on) state.selected.push(id);
  rows.get(id).classList.toggle("selected", on);
  if (!state.selected.includes(state.baseline)) state.baseline = state.selected.length ? state.selected[0] : null;
  render();
}

// ------------------------------------------------------------ the comparison
function render() {
  const hint = document.getElementById("compare-hint");
  const box = document.getElementById("comparison");
  const count = state.selected.length;
  hint.textContent = !runs.length ? "" : count === 0 ? "Tick two or more runs to compare them."
    : count === 1 ? "One run ticked: tick at least one more to compare." : "";
  hint.hidden = count >= 2 || !runs.length;
  box.hidden = count < 2;
  if (count < 2) return;
  const baseline = byId.get(state.baseline);
  const selected = [baseline, ...state.selected.filter((s) => s !== state.baseline).map((s) => byId.get(s))];
  renderBaseline();
  renderOptions(selected);
  renderMetrics(selected, baseline);
  drawCurves(selected);
}

function renderBaseline() {
  const box = document.getElementById("baseline-options");
  box.replaceChildren();
  for (const id of state.selected) {
    const radio = el("input", { type: "radio", name: "baseline", value: id });
    radio.checked = id === state.baseline;
    radio.addEventListener("change", () => { if (radio.checked) { state.baseline = id; render(); } });
    box.append(el("label", {}, [radio, " " + label(byId.get(id))]));
  }
}

function renderOptions(selected) {
  const fields = [], seen = new Set();
  const add = (name, get) => { if (!seen.has(name)) { seen.add(name); fields.push({ name, get }); } };
  for (const run of selected) {
    for (const key of Object.keys(run.options || {})) add(key, (r) => (r.options || {})[key]);
  }
  for (const run of selected) {
    for (const key of Object.keys(run.dataset || {})) add("dataset." + key, (r) => (r.dataset || {})[key]);
  }
  for (const field of fields) {
    field.differs = new Set(selected.map((r) => JSON.stringify(field.get(r) === undefined ? "\u0000" : field.get(r)))).size > 1;
  }
  const shown = fields.filter((f) => state.showAll || f.differs);
  const differing = fields.filter((f) => f.differs).length;
  const table = document.getElementById("options-table");
  table.caption.textContent = state.showAll
    ? "All " + fields.length + " options and dataset keys; the " + differing + " that differ in bold."
    : differing + " of " + fields.length + " options and dataset keys differ among the selected runs.";
  table.tHead.replaceChildren(el("tr", {}, [el("th", { scope: "col", text: "option" }),
    ...selected.map((r, i) => el("th", { scope: "col", "data-run": r.id, text: label(r) + (i === 0 ? " (baseline)" : "") }))]));
  const body = table.tBodies[0];
  body.replaceChildren();
  if (!shown.length) {
    body.append(el("tr", {}, [el("td", { colspan: selected.length + 1,
      text: "The selected runs have the same options and dataset; tick “show all options” to list them." })]));
  }
  for (const field of shown) {
    body.append(el("tr", { "data-option": field.name, className: field.differs ? "differs" : "" },
      [el("th", { scope: "row", text: field.name }), ...selected.map((r) => el("td", { text: valueText(field.get(r)) }))]));
  }
}

function pairing(run, baseline) {
  if (run.test_group == null || baseline.test_group == null) return { kind: "missing" };
  if (run.test_group !== baseline.test_group) return { kind: "different" };
  const p = data.pairs[Math.min(run.id, baseline.id) + "-" + Math.max(run.id, baseline.id)];
  if (!p) return { kind: "missing" };
  if (run.id < baseline.id) return { kind: "paired", ...p };
  const minus = (v) => (num(v) ? -v : null);
  return { kind: "paired", ...p, difference: -p.difference, low: -p.high, high: -p.low,
    seeds_low: minus(p.seeds_high), seeds_high: minus(p.seeds_low), a_only: p.b_only, b_only: p.a_only };
}

function renderMetrics(selected, baseline) {
  const table = document.getElementById("delta-table");
  table.caption.textContent = "Δ: the run minus the baseline (" + label(baseline) + "), in percentage points.";
  const headers = ["run", "val acc", "Δ val acc", "test acc", "Δ test acc",
    "paired " + level + "% interval of Δ test acc", "McNemar p"];
  table.tHead.replaceChildren(el("tr", {}, headers.map((h, i) => el("th", { scope: "col", className: i ? "num" : "", text: h }))));
  const body = table.tBodies[0];
  body.replaceChildren();
  const notes = document.getElementById("pairing-notes");
  notes.replaceChildren();
  const missing = new Set();
  let paired = 0;
  for (const run of selected) {
    const cells = { run: label(run) + (run === baseline ? " (baseline)" : ""), val: pct(run.val_acc),
      dval: "baseline", test: pct(run.test_acc), dtest: "baseline", interval: "baseline", p: "baseline" };
    let kind = "";
    if (run !== baseline) {
      const both = num(run.val_acc) && num(baseline.val_acc);
      cells.dval = both ? pts(run.val_acc - baseline.val_acc) : "—";
      cells.dtest = num(run.test_acc) && num(baseline.test_acc) ? pts(run.test_acc - baseline.test_acc) : "—";
      const pair = pairing(run, baseline);
      kind = pair.kind;
      if (pair.kind === "paired") {
        paired += 1;
        cells.interval = signed(pair.low) + " to " + signed(pair.high) + " pts";
        if (num(pair.seeds_low)) cells.interval += " (over seeds: " + signed(pair.seeds_low) + " to " + signed(pair.seeds_high) + ")";
        cells.p = pText(pair.mcnemar_p);
      } else if (pair.kind === "different") {
        cells.interval = "none: different test images";
        cells.p = "—";
        notes.append(el("li", { className: "unpaired", "data-run": run.id, text: label(run) + " and the baseline " + label(baseline) +
          " were evaluated on different test images, so only the unpaired numbers are shown." }));
      } else {
        cells.interval = "none: no per-image results";
        cells.p = "—";
        for (const r of [run, baseline]) if (r.test_group == null) missing.add(r);
      }
    }
    const row = el("tr", { "data-run": run.id, "data-pairing": kind || "baseline" });
    for (const [key, text] of Object.entries(cells)) {
      row.append(el("td", { "data-col": key, className: key === "run" ? "" : "num", text }));
    }
    if (kind === "paired") row.querySelector('[data-col="interval"]').className = "num paired";
    body.append(row);
  }
  for (const r of missing) {
    notes.append(el("li", { className: "unpaired", "data-run": r.id, text: label(r) + " has no per-image test results (" +
      (r.no_correct || "none on record") + "), so only the unpaired numbers are shown for it." }));
  }
  if (paired) {
    notes.append(el("li", { text: "Paired interval: a " + level + "% bootstrap interval over the shared test images " +
      "of the run's test accuracy minus the baseline's (and a t interval over matched seeds where both have " +
      "the same number of seeds); McNemar p: exact test on the images one gets right and the other wrong." }));
  }
}

// ------------------------------------------------------------ charts
function axes(svg, box, x, y, xLabel, yLabel) {
  const [left, top, width, height] = box;
  for (const t of y.ticks) {
    const py = y.at(t);
    svg.append(sv("line", { x1: left, x2: left + width, y1: py, y2: py, stroke: "#e3e3e3" }));
    svg.append(sv("text", { x: left - 6, y: py + 4, "text-anchor": "end" }, y.text(t)));
  }
  for (const t of x.ticks) {
    const px = x.at(t);
    svg.append(sv("line", { x1: px, x2: px, y1: top + height, y2: top + height + 4, stroke: "#777" }));
    svg.append(sv("text", { x: px, y: top + height + 17, "text-anchor": "middle" }, x.text(t)));
  }
  svg.append(sv("rect", { x: left, y: top, width, height, fill: "none", stroke: "#999" }));
  svg.append(sv("text", { x: left + width / 2, y: top + height + 34, "text-anchor": "middle" }, xLabel));
  svg.append(sv("text", { x: 14, y: top + height / 2, "text-anchor": "middle",
    transform: "rotate(-90 14 " + (top + height / 2) + ")" }, yLabel));
}

function accuracyScale(values, top, height) {
  let low = Math.min(...values), high = Math.max(...values);
  const pad = Math.max(0.02, (high - low) * 0.1);
  low = Math.max(0, low - pad); high = Math.min(1, high + pad);
  if (high - low < 1e-9) { low = Math.max(0, low - 0.05); high = Math.min(1, high + 0.05); }
  const raw = (high - low) / 4, power = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw);
  const ticks = [];
  for (let t = Math.ceil(low / step - 1e-9) * step; t <= high + 1e-9; t += step) ticks.push(t);
  const whole = Math.abs(Math.round(100 * step) - 100 * step) < 1e-9;  // steps of whole percents
  const text = (v) => (100 * v).toFixed(whole ? 0 : 1) + "%";
  return { ticks, text, at: (v) => top + (1 - (v - low) / (high - low)) * height };
}

function drawCurves(selected) {
  const box = document.getElementById("curves");
  box.replaceChildren();
  const series = selected.map((run, i) => {
    const c = run.curves || {};
    const points = (c.epoch || []).map((e, k) => [e, (c.val_acc || [])[k]]).filter((p) => num(p[0]) && num(p[1]));
    return { run, color: PALETTE[i % PALETTE.length], points, split: c.split };
  });
  const all = series.flatMap((s) => s.points);
  if (!all.length) {
    box.append(el("p", { text: "None of the selected runs recorded a validation accuracy per epoch." }));
    return;
  }
  const W = 760, left = 64, right = 16, top = 12, height = 240;
  const legendTop = top + height + 52, H = legendTop + 20 * series.length + 4;
  let x0 = Math.min(...all.map((p) => p[0])), x1 = Math.max(...all.map((p) => p[0]));
  if (x0 === x1) { x0 -= 1; x1 += 1; }
  const step = Math.max(1, Math.ceil((x1 - x0) / 10));
  const xTicks = [];
  for (let e = Math.ceil(x0); e <= x1; e += step) xTicks.push(e);
  const x = { ticks: xTicks, text: String, at: (v) => left + ((v - x0) / (x1 - x0)) * (W - left - right) };
  const y = accuracyScale(all.map((p) => p[1]), top, height);
  const svg = sv("svg", { viewBox: "0 0 " + W + " " + H, width: W, height: H, role: "img",
    "aria-label": "validation accuracy per epoch of the selected runs" });
  axes(svg, [left, top, W - left - right, height], x, y, "epoch", "val accuracy");
  series.forEach((s, i) => {
    const line = sv("polyline", { points: s.points.map((p) => x.at(p[0]).toFixed(1) + "," + y.at(p[1]).toFixed(1)).join(" "),
      fill: "none", stroke: s.color, "stroke-width": i === 0 ? 3 : 2, "data-run": s.run.id });
    line.append(sv("title", {}, label(s.run)));
    svg.append(line);
    for (const p of s.points) svg.append(sv("circle", { cx: x.at(p[0]), cy: y.at(p[1]), r: 2.5, fill: s.color }));
    const ly = legendTop + 20 * i;
    svg.append(sv("line", { x1: left, x2: left + 26, y1: ly, y2: ly, stroke: s.color, "stroke-width": 3 }));
    let text = label(s.run) + (i === 0 ? " (baseline)" : "") + (s.split === "test" ? " (per-epoch test accuracy: an older run)" : "");
    if (!s.points.length) text += " (no per-epoch validation accuracy)";
    const legend = sv("text", { x: left + 34, y: ly + 4, class: "legend" }, text.length > 100 ? text.slice(0, 99) + "…" : text);
    legend.append(sv("title", {}, text));
    svg.append(legend);
  });
  box.append(svg);
}

// ------------------------------------------------------------ sweeps
function buildSweeps() {
  const box = document.getElementById("sweeps");
  const groups = [];
  for (const run of runs) {
    if (!run.sweep || !run.sweep.values) continue;
    let group = groups.find((g) => g.experiment === run.experiment && g.sweep === run.sweep.run);
    if (!group) groups.push((group = { experiment: run.experiment, sweep: run.sweep.run, runs: [] }));
    group.runs.push(run);
  }
  if (!groups.length) {
    box.append(el("p", { className: "note", text: "No experiment here has a sweep." }));
    return;
  }
  box.append(el("p", { className: "note", text: "Each point is one combination of a sweep (mean over its seeds): " +
    "the chosen swept option against validation accuracy. The other swept options vary too; hover a point for its run." }));
  const sweepChoice = el("select", { id: "sweep-choice" });
  groups.forEach((g, i) => sweepChoice.append(el("option", { value: i, text: g.experiment + " / sweep " + g.sweep +
    " (" + g.runs.length + " runs)" })));
  const optionChoice = el("select", { id: "sweep-option" });
  const chart = el("div", { id: "sweep-chart" });
  box.append(el("p", { className: "controls" }, [el("label", {}, ["sweep ", sweepChoice]), el("label", {}, ["option ", optionChoice])]), chart);
  const options = () => {
    const group = groups[Number(sweepChoice.value)];
    const keys = [];
    for (const r of group.runs) for (const k of Object.keys(r.sweep.values)) if (!keys.includes(k)) keys.push(k);
    optionChoice.replaceChildren(...keys.map((k) => el("option", { value: k, text: k })));
    drawScatter(chart, group, optionChoice.value);
  };
  sweepChoice.addEventListener("change", options);
  optionChoice.addEventListener("change", () => drawScatter(chart, groups[Number(sweepChoice.value)], optionChoice.value));
  options();
}

function drawScatter(box, group, option) {
  box.replaceChildren();
  const points = group.runs.map((run) => ({ run, value: run.sweep.values[option], y: run.val_acc }))
    .filter((p) => p.value !== undefined && num(p.y));
  const left_out = group.runs.length - points.length;
  if (!points.length) {
    box.append(el("p", { text: "No run of this sweep has a validation accuracy for " + option + "." }));
    return;
  }
  const numeric = points.every((p) => num(p.value));
  const log = numeric && points.every((p) => p.value > 0) &&
    Math.max(...points.map((p) => p.value)) / Math.min(...points.map((p) => p.value)) >= 10;
  const distinct = [];
  for (const p of points) if (!distinct.some((d) => valueText(d) === valueText(p.value))) distinct.push(p.value);
  if (numeric) distinct.sort((a, b) => a - b);
  const W = 640, left = 64, right = 24, top = 12, height = 240, H = top + height + 48;
  const width = W - left - right;
  let position;
  if (numeric && distinct.length > 1) {
    const f = log ? Math.log10 : (v) => v;
    const lo = f(distinct[0]), hi = f(distinct[distinct.length - 1]);
    position = (v) => left + 20 + ((f(v) - lo) / (hi - lo)) * (width - 40);
  } else {
    position = (v) => left + ((distinct.findIndex((d) => valueText(d) === valueText(v)) + 0.5) / distinct.length) * width;
  }
  const x = { ticks: distinct, text: valueText, at: position };
  const y = accuracyScale(points.map((p) => p.y), top, height);
  const svg = sv("svg", { viewBox: "0 0 " + W + " " + H, width: W, height: H, role: "img",
    "aria-label": option + " against validation accuracy" });
  axes(svg, [left, top, width, height], x, y, option + (log ? " (log scale)" : ""), "val accuracy");
  const best = points.reduce((a, b) => (b.y > a.y ? b : a));
  for (const p of points) {
    const dot = sv("circle", { cx: x.at(p.value), cy: y.at(p.y), r: p === best ? 6 : 4.5,
      fill: p === best ? "#dd8452" : "#4c72b0", "fill-opacity": 0.85, stroke: "#fff", "data-run": p.run.id });
    dot.append(sv("title", {}, p.run.name + ": val acc " + pct(p.y) + ", test acc " + pct(p.run.test_acc)));
    svg.append(dot);
  }
  box.append(svg);
  box.append(el("p", { className: "note", text: "Best on validation: " + best.run.name + " (val acc " + pct(best.y) +
    ", test acc " + pct(best.run.test_acc) + ")." + (left_out ? " " + left_out + " runs without a validation accuracy are not shown." : "") }));
}

const showAll = document.getElementById("show-all");
showAll.checked = false;
showAll.addEventListener("change", () => { state.showAll = showAll.checked; render(); });
buildRunsTable();
buildSweeps();
render();
})();
"""


def index_html(entries: list, data: dict | None = None) -> str:
    """The lab book: one row per experiment, linking to its report, then the comparison of every
    run (data: compare_data(entries), computed here when not given). Every text from a config is
    escaped, in the markup and in the inline JSON; links are percent-encoded relative paths, so
    the page opens from disk; nothing is fetched."""
    rows = []
    for e in entries:
        commit = e.get("git_commit")
        commit_text = f"<code>{html.escape(commit[:12])}</code>" if commit else "—"
        if commit and e.get("git_dirty"):
            commit_text += " + changes"
        accuracy = e.get("best_accuracy")
        link = quote(f"{e['folder']}/{e.get('report', files.REPORT['html'])}")
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
            f"{e.get('runs', '—')} runs, {e.get('jobs', '—')} jobs" + diverged_runs(e),
            html.escape(str(e.get("best_run") or "—")),
            f"{accuracy:.1%}" if isinstance(accuracy, int | float) else "—",
            held,
        ]
        rows.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    count = len(entries)
    summary = (
        f"{count} experiment{'s' if count != 1 else ''} in this folder, newest first. Each best run is "
        "chosen on validation accuracy; the number shown is its test accuracy."
    )
    data = compare_data(entries) if data is None else data
    # the code first: a run named "{code}" stays a name in the data
    compare = COMPARE.replace("{code}", CODE).replace("{data}", script_json(data))
    return PAGE.format(summary=summary, rows="\n".join(rows), style=STYLE, compare=compare)


def diverged_runs(entry: dict) -> str:
    """ ", N diverged" for an experiment whose runs include diverged ones (none: "")."""
    count = len(entry.get("diverged_runs") or [])
    return f", {count} diverged" if count else ""


def write_index(entry_paths, out) -> list:
    """Write the lab book page from book.json files, and every other experiment's beside `out`
    when the page is built (one whose report was made while this job's graph was built is not
    among entry_paths); returns the entries it lists."""
    on_disk = Path(out).parent.glob(f"*/{files.REPORT['book_entry']}")
    entries = read_entries(sorted({str(Path(path).resolve()) for path in [*entry_paths, *on_disk]}))
    page = index_html(entries, compare_data(entries, page_data(out))).encode()
    atomic_write(out, lambda f: f.write(page))
    return entries
