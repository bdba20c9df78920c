"""A step's parameters handed over in a file, not on its command line: Linux takes at most 128 KiB
in one argument (the whole shell command of a job is one), and a report's parameters grow with
the experiment (116 training jobs were the ceiling). The file is named by a hash of its content,
so the path a rule records in its params changes exactly when a value does (Snakemake reruns the
step then, as when it recorded the values), and Snakemake's own report shows only that path,
never config text."""

import hashlib
import json
import os
from pathlib import Path

FOLDER = ".snakemake/labbook/params"


def write(values: dict, folder=FOLDER) -> str:
    """The path (relative, as folder is) of a JSON file holding values; written once."""
    text = json.dumps(values, sort_keys=True, ensure_ascii=False)
    path = Path(folder) / f"{hashlib.sha256(text.encode()).hexdigest()[:24]}.json"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}")
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)  # atomic: another process may write the same file
    return str(path)


def read(path) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(
            f"step parameters {path} not found: run the workflow again to write them"
        ) from None
