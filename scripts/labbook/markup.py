"""Text from a config or a dataset, shown in the step notebooks' Markdown and the report as the
characters it holds (never as markup), and the Markdown tables they print. No third-party
imports: every step notebook uses these."""

import html
from urllib.parse import quote

# Characters that can start markup in Markdown or HTML when text sits inside a line (md() turns
# line breaks into spaces, so line-start markers such as "1." or "- " never begin a line).
MARKUP_CHARACTERS = set("\\`*_{}[]()<>#+!|~$&:\"'")


def md(text) -> str:
    """Text from a config or a dataset (a title, a hypothesis, a class folder name, a path),
    ready to put into Markdown: shown as the characters it holds, never as markup. Each character
    that could start markup (a tag, a link, emphasis, a table cell, $math$, an autolink) becomes
    a numeric character reference, which Markdown never reads as structure; line breaks become
    spaces (one would end a table row)."""
    return "".join(f"&#{ord(c)};" if c in MARKUP_CHARACTERS else " " if c in "\r\n" else c for c in str(text))


def md_code(text) -> str:
    """Like md(), in a code font. Not a `code span`: character references stay literal there."""
    return f"<code>{md(text)}</code>"


def md_link(path) -> str:
    """A Markdown link to a relative path, its text escaped and its address quoted."""
    return f"[{md(path)}]({quote(str(path))})"


def preformatted(text) -> str:
    """HTML showing text as it is, in a monospaced block (e.g. the config as YAML)."""
    return f"<pre><code>{html.escape(str(text))}</code></pre>"


def markdown_table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
