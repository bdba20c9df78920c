"""Hostile and odd inputs through the real notebooks: markup planted in every field a config or a
dataset fills (title, goal, hypotheses, descriptions, class and file names, options), data under a
home folder. The report, the lab book and the executed step notebooks, as a reader opens them,
show it all as text, run nothing, and never name the home folder. (The escaping itself, piece by
piece: test_markup.py.)"""

import json

import numpy as np
import pytest
from builders import REPO, Elements, image_folder, odd_name, scripts_on_pythonpath, write_image
from labbook import arrays, metrics, runner
from labbook.plan.record import JobRecord

# Markup planted in every field a config or a dataset fills, data under a home folder: the
# report and the executed step notebooks, as a reader opens them.
HOSTILE = {
    "title": "<script>window.pwned = 'title'</script><b id=planted-title>Title</b> $x$",
    "goal": '<img src=x id=planted-goal onerror="window.pwned = 1"> [click](javascript:window.pwned=2)',
    "hypothesis": "<iframe id=planted-hypothesis srcdoc='<script>parent.pwned = 3</script>'></iframe>",
    "run_hypothesis": '<svg id=planted-run onload="window.pwned = 4"></svg> **loud**',
    "description": "```\n<b id=planted-description>d</b>\n```",
}
# Folder and file names: anything but "/" and NUL.
CLASS_NAMES = [
    "<img src=x id=planted-class onerror=window.pwned=5>",
    "<b id=planted-class-b>b",
    "$\\frac{x$ [a](javascript:window.pwned=6) | cell",
]
BAD_FILE = "<img src=x id=planted-file onerror=window.pwned=7>.png"
PROBE = """JSON.stringify({
  planted: Array.from(document.querySelectorAll('[id^=planted]')).map(e => e.id),
  handlers: Array.from(document.querySelectorAll('*')).filter(e => Array.from(e.attributes)
    .some(a => a.name.startsWith('on'))).map(e => e.outerHTML.slice(0, 80)),
  scriptLinks: document.querySelectorAll('a[href^="javascript"]').length,
  pwned: window.pwned === undefined ? null : String(window.pwned),
  text: document.body.innerText
})"""


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """{report, notebooks (as HTML), files that must not name the home}, built by the real
    notebooks from an ImageFolder under a home folder, runs fabricated as in report_demo."""
    import report_demo
    from labbook import provenance

    tmp = tmp_path_factory.mktemp("hostile")
    home = tmp / "home" / "someone"
    patch = pytest.MonkeyPatch()
    patch.setenv("HOME", str(home))  # the kernels inherit it
    patch.setenv("PYTHONPATH", scripts_on_pythonpath())
    root = image_folder(
        home / "photos",
        per_class={"train": dict.fromkeys(CLASS_NAMES, 4), "val": dict.fromkeys(CLASS_NAMES, 2)},
        colour=lambda slot: tuple(int(c) for c in np.roll([220, 30, 30], slot.label)),
        size=(20, 20),
    )
    (root / "train" / CLASS_NAMES[0] / BAD_FILE).write_bytes(b"<html>")
    write_image(root / "train" / CLASS_NAMES[1] / f"{odd_name('x')}.png", (30, 220, 30), size=(20, 20))
    dataset = {"name": "hostile", "kind": "imagefolder", "root": str(root), "image_size": 16}
    data_dir = tmp / "results" / "data" / "hostile"
    logs = tmp / "logs"
    runner.execute(
        REPO / "notebooks" / "prepare_data.ipynb",
        logs / "prepare_data.ipynb",
        {"dataset": dataset, "out_dir": str(data_dir)},
    )

    classes = arrays.read_manifest(data_dir)["classes"]
    _, test_labels = arrays.load_split(data_dir, "test")
    train_dir = tmp / "results" / "runs" / "base" / "seed0"
    train_dir.mkdir(parents=True)
    logits = 3.0 * np.eye(len(classes))[test_labels] + np.random.default_rng(0).normal(
        0, 1, (len(test_labels), len(classes))
    )
    np.savez(train_dir / "predictions.npz", logits=logits, labels=test_labels)
    run_metrics = report_demo.fake_metrics("base", 0, metrics.accuracy(logits, test_labels), classes)
    run_metrics["model"] = run_metrics["options"]["model"] = "vgg16"
    run_metrics["options"]["weights"] = f"{home}/weights/<b id=planted-weights>w</b>.pt"
    (train_dir / "metrics.json").write_text(json.dumps(run_metrics))
    provenance.write(
        train_dir / "provenance.json", provenance.collect("train", ["numpy"], run="base", seed=0)
    )
    analysis = {"data_dir": str(data_dir), "run_dir": str(train_dir), "out_dir": str(train_dir / "analysis"),
                "run": "base", "seed": 0, "options": {"top_k": 1, "calibration_bins": 5, "mistakes": 4}}  # fmt: skip
    runner.execute(REPO / "notebooks" / "analyze.ipynb", logs / "analyze" / "base" / "seed0.ipynb", analysis)

    analysis_dir = train_dir / "analysis"
    runs = [JobRecord("base", 0, str(train_dir), str(analysis_dir), 0.5, HOSTILE["run_hypothesis"],
                      {"run": "base", "values": {"weights": "<b id=planted-sweep>s</b>"}}).to_dict()]  # fmt: skip
    config = {"experiment": "hostile", "title": HOSTILE["title"],
              "objective": {"goal": HOSTILE["goal"], "hypothesis": HOSTILE["hypothesis"]},
              "dataset": dataset, "runs": {"base": {"seeds": [0], "hypothesis": HOSTILE["run_hypothesis"],
                                                    "description": HOSTILE["description"]}}}  # fmt: skip
    out = tmp / "results" / "hostile"
    params = {"experiment": "hostile", "title": config["title"], "objective": config["objective"],
              "data_dir": str(data_dir), "runs": runs, "config": config,
              "logs": ["logs/prepare_data.ipynb", "logs/analyze/base/seed0.ipynb"],
              "tensorboard_dir": "results/hostile/runs", "provenance_path": str(out / "report.provenance.json"),
              "book_entry_path": str(out / "book.json")}  # fmt: skip
    executed, html = out / "report.ipynb", out / "report.html"
    runner.execute(REPO / "notebooks" / "report.ipynb", executed, params)
    runner.to_html(executed, html)
    index = tmp / "results" / "index.html"
    runner.execute(
        REPO / "notebooks" / "index.ipynb",
        logs / "index.ipynb",
        {"entries": [str(out / "book.json")], "out": str(index)},
    )
    pages = {"report": html, "index": index}
    for name, notebook in (
        ("prepare_data", logs / "prepare_data.ipynb"),
        ("analyze", logs / "analyze/base/seed0.ipynb"),
        ("index notebook", logs / "index.ipynb"),
    ):
        pages[name] = tmp / f"{name}.html"
        runner.to_html(notebook, pages[name])  # what Jupyter shows of the executed notebook
    patch.undo()
    shared = [
        html,
        executed,
        index,
        out / "book.json",
        data_dir / "manifest.json",
        data_dir / "provenance.json",
        *logs.rglob("*.ipynb"),
    ]
    return {"pages": pages, "shared": shared, "home": home}


def test_planted_markup_is_nowhere_live_in_the_report_and_notebooks(hostile):
    for name, path in hostile["pages"].items():
        page = Elements(path.read_text())
        assert page.live() == [], name
    text = " ".join("".join(Elements(hostile["pages"]["report"].read_text()).text).split())
    for shown in ("<b id=planted-title>Title</b> $x$", HOSTILE["goal"], HOSTILE["hypothesis"],
                  "<svg id=planted-run", *CLASS_NAMES, "<b id=planted-weights>w</b>.pt", "<b id=planted-description>"):  # fmt: skip
        assert " ".join(shown.split()) in text, f"{shown!r} is shown as text"
    assert "<b id=planted-sweep>s</b>" in text
    prepare_text = "".join(Elements(hostile["pages"]["prepare_data"].read_text()).text)
    assert BAD_FILE in prepare_text  # listed as skipped, by its name
    index_text = "".join(Elements(hostile["pages"]["index"].read_text()).text)
    assert "<b id=planted-title>Title</b>" in index_text


def test_the_home_folder_is_written_as_tilde_in_everything_shared(hostile):
    for path in hostile["shared"]:
        assert str(hostile["home"]) not in path.read_text(errors="replace"), path
    assert "~/photos" in hostile["pages"]["report"].read_text()


@pytest.mark.slow
def test_a_browser_finds_nothing_live(hostile, tmp_path):
    import browser

    if not browser.available():
        pytest.skip(f"no Chromium at {browser.CHROMIUM}")
    for name, path in hostile["pages"].items():
        seen = browser.inspect(path, tmp_path / f"{name}.png", probe=PROBE)
        found = seen["probe"]
        assert found["planted"] == [] and found["handlers"] == [] and found["scriptLinks"] == 0, name
        assert found["pwned"] is None, f"{name}: planted script ran"
        assert seen["console_errors"] == [] and seen["external"] == [], name
        if name == "report":
            assert "<b id=planted-title>Title</b>" in found["text"]
            assert all(class_name in found["text"] for class_name in CLASS_NAMES[:2])
