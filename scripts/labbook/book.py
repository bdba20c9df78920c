"""The book of experiments: each experiment's entry (book.json, written by its report step) and
the lab book page (results/index.html) that lists every experiment on disk."""

import datetime
import html
import json
from pathlib import Path
from urllib.parse import quote

from . import report
from .atomic import atomic_write
from .plan import files


def entry(experiment: str, title: str, dataset: dict, records: list, git: dict) -> dict:
    """What the lab book shows of one experiment (book.json beside its report). records: the
    report's loaded runs (labbook.report.load_runs). Counted as the report counts them: a run
    with a diverged seed is among the runs and diverged_runs, never the best run, and its
    hypothesis is checked and not supported."""
    best = report.best_run(records)
    held = report.hypotheses_held(records)
    grouped = report.by_run(records)
    return {
        "experiment": experiment,
        "title": title,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "git_commit": (git or {}).get("commit"),
        "git_dirty": (git or {}).get("dirty"),
        "dataset": f"{dataset['name']} ({dataset['kind']})",
        "runs": len(grouped),
        "jobs": len(records),
        "diverged_runs": [name for name, group in grouped.items() if any(map(report.diverged, group))],
        "best_run": best,
        "best_accuracy": report.mean_accuracy(grouped[best]) if best else None,
        "hypotheses_supported": sum(held),
        "hypotheses_checked": len(held),
        "report": files.REPORT["html"],
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
            f"{accuracy:.1%}" if accuracy is not None else "—",
            held,
        ]
        rows.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    count = len(entries)
    summary = f"{count} experiment{'s' if count != 1 else ''} in this folder, newest first."
    return PAGE.format(summary=summary, rows="\n".join(rows))


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
    page = index_html(entries).encode()
    atomic_write(out, lambda f: f.write(page))
    return entries
