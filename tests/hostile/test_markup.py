"""Hostile text, as a careless or a malicious user would give it: markup in config and dataset
text (run, class and device names, hypotheses) is shown as its characters, never live, in the
report's Markdown, tables, verdicts and figures. (The same, planted everywhere and rendered by the
real notebooks: test_through_the_notebooks.py.)"""

import numpy as np
import pytest
from builders import Elements
from labbook import markup, plots, report

# Each would be live (an element, a handler, a script, a link, math, a broken table) if it
# reached the page as markup. id="planted..." marks the elements a test looks for.
MARKUP = [
    "<script>window.pwned = 'script'</script>",
    '<img src=x id=planted-img onerror="window.pwned = 1">',
    "<b id=planted-b>bold",
    '<svg id=planted-svg onload="window.pwned = 2"></svg>',
    "<iframe id=planted-iframe srcdoc='<script>parent.pwned = 3</script>'></iframe>",
    "[click](javascript:window.pwned=4)",
    "<javascript:alert(5)>",
    "**strong** _em_ `code` ~~gone~~",
    "a | b | c",
    "$\\frac{1}{2}$ and $$x$$",
    "```\n<b id=planted-fence>x</b>\n```",
    "# heading\n- item\n1. item",
    "&lt;b id=planted-entity&gt; &amp;",
    "<!-- comment --> <![CDATA[x]]>",
]


def rendered(markdown: str) -> str:
    """Markdown as the report's HTML export renders it."""
    from nbconvert.filters.markdown import markdown2html

    return markdown2html(markdown)


@pytest.mark.parametrize("text", MARKUP)
@pytest.mark.parametrize(
    "context",
    ["{}", "# {}", "**Goal.** {}", "- **run**: _{}_ → verdict", "| a | b |\n|---|---|\n| {} | x |"],
    ids=["paragraph", "heading", "bold-label", "emphasis", "table-cell"],
)
def test_escaped_text_renders_as_its_characters_and_nothing_else(text, context):
    page = Elements(rendered(context.format(markup.md(text))))
    assert page.live() == []
    assert " ".join(text.split()) in " ".join("".join(page.text).split())  # shown, not dropped
    plain = Elements(rendered(context.format("plain words")))
    assert [tag for tag, _ in page.tags] == [tag for tag, _ in plain.tags]  # no element of its own


def test_code_font_links_and_preformatted_blocks_escape_too():
    for text in MARKUP:
        for html in (
            rendered(markup.md_code(text)),
            rendered(markup.md_link(text)),
            markup.preformatted(text),
            report.image_row([]),
        ):
            assert Elements(html).live() == []
    link = Elements(rendered(markup.md_link("../logs/a b(1).ipynb")))
    assert [a["href"] for t, a in link.tags if t == "a"] == ["../logs/a%20b%281%29.ipynb"]


def test_report_tables_and_verdicts_escape_run_and_class_names():
    name = MARKUP[1]
    evaluation = {"accuracy": 0.9, "macro_f1": 0.9, "top_k": 1, "top1_accuracy": 0.9, "ece": 0.1,
                  "per_class": {MARKUP[2]: {"f1": 0.9}, MARKUP[5]: {"f1": 0.8}}}  # fmt: skip
    run_metrics = {"model": "cifarnet", "parameters": {"total": 1, "trainable": 1}, "history": [{}],
                   "train_seconds": 1.0, "images_per_s": 1.0, "device_name": MARKUP[3], "val_acc": 0.9}  # fmt: skip
    records = [{"name": name, "seed": 0, "evaluation": evaluation, "metrics": run_metrics,
                "target_accuracy": 0.5, "hypothesis": MARKUP[0], "provenance": {}}]  # fmt: skip
    for markdown in (
        report.results_table(records),
        report.per_class_f1_table(records),
        report.headline(records),
        report.runs_provenance_table(records),
        *report.verdicts(records),
    ):
        assert Elements(rendered(markdown)).live() == [], markdown


def test_figure_text_is_shown_as_it_is(tmp_path):
    """A class named like math or with a lone $ or backslash: the figure is drawn, not parsed."""
    names = ["$\\frac{", "a$b", "\\", "$x_1$"]
    figure = plots.confusion(np.eye(4, dtype=int), names, title="$\\oops")
    plots.save(figure, tmp_path / "c.png")
    figure = plots.confusion(np.eye(4, dtype=int), names)
    labels = [label.get_text() for label in figure.axes[0].get_xticklabels()]
    assert labels == names
