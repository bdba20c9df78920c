"""Run one step notebook with papermill, the way every rule does.

    python -m labbook.runner NOTEBOOK EXECUTED --params JSON [--threads N] [--html OUT]

Papermill only warns about parameters a notebook does not declare, and never checks types, so a
typo in the workflow would silently run with a default. Here both are errors, raised before any
cell runs. The executed notebook is written to EXECUTED also when a cell fails; the error
message points at it.
"""

import argparse
import ast
import json
import logging
import sys
from pathlib import Path


class ParameterError(ValueError):
    pass


def declared_parameters(notebook) -> dict:
    """{name: default value} from the cell tagged `parameters` (None where not a literal)."""
    import papermill

    declared = {}
    for name, info in papermill.inspect_notebook(str(notebook)).items():
        try:
            declared[name] = ast.literal_eval(info["default"])
        except (ValueError, SyntaxError):
            declared[name] = None
    return declared


def _type_ok(default, value) -> bool:
    """A value fits a default of the same kind; None as default accepts anything."""
    if default is None or value is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


def check_parameters(notebook, params: dict) -> None:
    declared = declared_parameters(notebook)
    if not declared:
        raise ParameterError(f"{notebook} has no cell tagged 'parameters'")
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise ParameterError(
            f"{notebook} does not take parameter(s) {unknown}; it declares {sorted(declared)}"
        )
    for name, value in params.items():
        if not _type_ok(declared[name], value):
            raise ParameterError(
                f"{notebook}: parameter {name!r} should be {type(declared[name]).__name__} "
                f"like its default {declared[name]!r}, got {value!r}"
            )


def execute(notebook, executed, params: dict) -> None:
    """Check, then execute; raises RuntimeError naming the executed notebook on failure."""
    check_parameters(notebook, params)
    Path(executed).parent.mkdir(parents=True, exist_ok=True)
    try:
        _execute(notebook, executed, params)
    finally:
        if Path(executed).exists():
            scrub_home(executed)


def scrub_home(executed) -> None:
    """The executed notebook with the home directory written as ~ (parameters, code, output),
    as in provenance: paths under it would name the user. Images are left as they are."""
    from .provenance import scrub

    def walk(value):
        if isinstance(value, dict):
            return {k: v if k.startswith("image/") else walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(item) for item in value]
        return scrub(value)

    path = Path(executed)
    notebook = walk(json.loads(path.read_text(encoding="utf-8")))
    path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False), encoding="utf-8")


def _execute(notebook, executed, params: dict) -> None:
    import papermill

    try:
        papermill.execute_notebook(
            str(notebook),
            str(executed),
            parameters=params,
            kernel_name="python3",
            log_output=True,
            progress_bar=False,
            # Output written to the kernel's own stderr (tqdm progress bars) goes to the step's
            # log file only, not into the notebook.
            extra_arguments=["--IPKernelApp.capture_fd_output=False"],
        )
    except papermill.PapermillExecutionError as error:
        raise RuntimeError(
            f"step notebook {notebook} failed: {error.ename}: {error.evalue}\n"
            f"The executed notebook, with the traceback, is kept at {executed}"
        ) from None


def to_html(executed, html) -> None:
    """One self-contained page: code hidden, images already inline as base64, no CDN scripts."""
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(
        template_name="offline",  # templates/offline: the lab look, no scripts from the network
        extra_template_basedirs=[str(Path(__file__).parent / "templates")],
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )
    body, _ = exporter.from_notebook_node(nbformat.read(str(executed), as_version=4))
    Path(html).parent.mkdir(parents=True, exist_ok=True)
    Path(html).write_text(body, encoding="utf-8")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook")
    parser.add_argument("executed")
    parser.add_argument("--params", default="{}", help="JSON object of notebook parameters")
    parser.add_argument(
        "--threads", type=int, help="passed as the parameter `threads` where the notebook has one"
    )
    parser.add_argument("--html", help="also convert the executed notebook to this HTML file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    params = json.loads(args.params)
    if args.threads is not None and "threads" in declared_parameters(args.notebook):
        params["threads"] = args.threads
    try:
        execute(args.notebook, args.executed, params)
    except (ParameterError, RuntimeError) as error:
        print(f"labbook: {error}", file=sys.stderr)
        return 1
    if args.html:
        to_html(args.executed, args.html)
    return 0


if __name__ == "__main__":
    sys.exit(main())
