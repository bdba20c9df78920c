"""The lab book (labbook/book.py): an entry per experiment, and the index page, which escapes what
configs say and links each report. (The book of experiments run by the workflow:
workflows/test_workflow_book.py.)"""

import json

from labbook import book


def test_the_lab_book_escapes_what_configs_say_and_links_each_report(tmp_path):
    entry = book.entry(
        "x<1",
        '<script>alert("title")</script>',
        {"name": "<b>data", "kind": "demo"},
        [
            {"name": "a", "evaluation": {"accuracy": 0.5}, "target_accuracy": 0.5},  # exactly at target: held
            {"name": "b", "evaluation": {"accuracy": 0.7}, "target_accuracy": 0.8},
        ],
        {"commit": "0123456789abcdef", "dirty": True},
    )
    assert (entry["best_run"], entry["best_accuracy"]) == ("b", 0.7)
    assert (entry["hypotheses_supported"], entry["hypotheses_checked"]) == (1, 2)
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
    assert "<script>" not in page and "&lt;script&gt;" in page and "&lt;b&gt;data" in page
    assert 'href="x%3C1/report.html"' in page and ">x&lt;1</a>" in page
    assert "<code>0123456789ab</code> + changes" in page and "70.0%" in page and "1 of 2" in page
