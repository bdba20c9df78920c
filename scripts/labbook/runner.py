"""Run one step notebook with papermill, the way every rule does.

    python -m labbook.runner NOTEBOOK EXECUTED --params FILE [--threads N] [--html OUT]

Papermill only warns about parameters a notebook does not declare, and never checks types, so a
typo in the workflow would silently run with a default. Here both are errors, raised before any
cell runs. The executed notebook is written to EXECUTED also when a cell fails; the error
message points at it.

The kernel gets LABBOOK_KERNEL_START_TIMEOUT seconds to start (default 300) instead of
papermill's 60: on a busy compute node, a cold network filesystem or a conda env used for the
first time, Python and ipykernel can take minutes to import. Changing it changes no result, so,
like the thread count, it is not a step parameter.

The kernel talks to papermill over Unix sockets in a private temporary folder, not TCP: over
TCP, jupyter_client picks free ports and the kernel binds them a moment later, so kernels
started side by side (parallel jobs, other users on the node) sometimes took the same port and
died with "Address already in use" before running a cell.
"""

import argparse
import ast
import errno
import json
import logging
import os
import sys
import tempfile
from pathlib import Path

from .atomic import DiskFullError, atomic_write, is_disk_full
from .plan.params import read as read_params

KERNEL_START_TIMEOUT_VARIABLE = "LABBOOK_KERNEL_START_TIMEOUT"
KERNEL_START_TIMEOUT = 300  # seconds


class ParameterError(ValueError):
    pass


def kernel_start_timeout() -> int:
    """Seconds a kernel may take to start: LABBOOK_KERNEL_START_TIMEOUT, else the default."""
    text = os.environ.get(KERNEL_START_TIMEOUT_VARIABLE, "").strip()
    if not text:
        return KERNEL_START_TIMEOUT
    if not text.isdigit() or int(text) == 0:
        raise ParameterError(
            f"{KERNEL_START_TIMEOUT_VARIABLE}={text!r}: give a whole number of seconds, e.g. 600"
        )
    return int(text)


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
    """Check, then execute; raises RuntimeError naming the executed notebook on failure, and
    DiskFullError naming the folder when its disk is full. Papermill writes the notebook as it
    runs into a file beside `executed`, which becomes `executed` when it stops: a valid
    notebook, also after a failure, and never a half-written one."""
    check_parameters(notebook, params)
    start_timeout = kernel_start_timeout()
    executed = Path(executed)
    executed.parent.mkdir(parents=True, exist_ok=True)
    running = executed.with_name(f".{executed.stem}.running.ipynb")
    try:
        _execute(notebook, executed, params, start_timeout, running)
    except Exception as error:
        if is_disk_full(error):
            raise DiskFullError(
                errno.ENOSPC, f"no space left on {executed.parent} while running {notebook}"
            ) from error
        raise
    finally:
        if running.exists():
            keep_executed(running, executed)


def keep_executed(running: Path, executed: Path) -> None:
    """The notebook papermill wrote, with the home directory written as ~ (parameters, code,
    output; images left as they are), as in provenance: paths under it would name the user.
    One cut short (its disk filled up) is replaced by a notebook saying so."""
    from .provenance import scrub

    def walk(value):
        if isinstance(value, dict):
            return {k: v if k.startswith("image/") else walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(item) for item in value]
        return scrub(value)

    try:
        notebook = walk(json.loads(running.read_text(encoding="utf-8")))
    except ValueError:
        running.unlink()  # frees the space a full disk needs for the note below
        note = f"The step stopped while this notebook was being written ({executed.parent} was full)."
        notebook = {"cells": [{"cell_type": "markdown", "id": "disk-full", "metadata": {}, "source": note}],
                    "metadata": {}, "nbformat": 4, "nbformat_minor": 5}  # fmt: skip
    text = json.dumps(notebook, indent=1, ensure_ascii=False).encode()
    atomic_write(executed, lambda f: f.write(text))
    running.unlink(missing_ok=True)


def _execute(notebook, executed, params: dict, start_timeout: int, running: Path) -> None:
    """Papermill writes into `running`; messages name `executed`, where it will be kept."""
    import papermill

    try:
        with tempfile.TemporaryDirectory(prefix="labbook-kernel-") as sockets:
            papermill.execute_notebook(
                str(notebook),
                str(running),
                parameters=params,
                kernel_name="python3",
                log_output=True,
                progress_bar=False,
                start_timeout=start_timeout,
                kernel_manager_class=socket_kernel_manager(Path(sockets) / "kernel"),
                # Output written to the kernel's own stderr (tqdm progress bars) goes to the
                # step's log file only, not into the notebook.
                extra_arguments=["--IPKernelApp.capture_fd_output=False"],
            )
    except papermill.PapermillExecutionError as error:
        raise RuntimeError(
            f"step notebook {notebook} failed: {error.ename}: {error.evalue}\n"
            f"The executed notebook, with the traceback, is kept at {executed}"
        ) from None
    except RuntimeError as error:  # about the kernel itself, from jupyter_client and nbclient
        if "didn't respond" in str(error):
            raise RuntimeError(
                f"the kernel for {notebook} did not start within {start_timeout} s ({error}). On a "
                f"slow node give it longer: export {KERNEL_START_TIMEOUT_VARIABLE}=<seconds>"
            ) from None
        if type(error).__name__ == "DeadKernelError":
            raise RuntimeError(
                f"the kernel running {notebook} died ({error}): killed, e.g. for using more memory "
                f"than the job may (on a cluster, raise its mem_mb; README). The notebook as far "
                f"as it ran is kept at {executed}"
            ) from None
        raise


def socket_kernel_manager(prefix: Path):
    """A kernel manager whose kernel listens on Unix sockets named `prefix`-N (module doc)."""
    from jupyter_client import AsyncKernelManager

    class SocketKernelManager(AsyncKernelManager):
        def __init__(self, **traits):
            super().__init__(transport="ipc", ip=str(prefix), **traits)

    return SocketKernelManager


def to_html(executed, html, title=None) -> None:
    """One self-contained page: code hidden, images already inline as base64, no CDN scripts;
    its <title> is `title` (escaped by the template), else the notebook's name."""
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(
        template_name="offline",  # templates/offline: the lab look, no scripts from the network
        extra_template_basedirs=[str(Path(__file__).parent / "templates")],
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )
    notebook = nbformat.read(str(executed), as_version=4)
    if title:
        notebook.metadata["title"] = str(title)
    body, _ = exporter.from_notebook_node(notebook)
    Path(html).parent.mkdir(parents=True, exist_ok=True)
    Path(html).write_text(body, encoding="utf-8")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook")
    parser.add_argument("executed")
    parser.add_argument("--params", help="a JSON file of notebook parameters (labbook.plan.params)")
    parser.add_argument(
        "--threads", type=int, help="passed as the parameter `threads` where the notebook has one"
    )
    parser.add_argument("--html", help="also convert the executed notebook to this HTML file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    params = read_params(args.params) if args.params else {}
    if args.threads is not None and "threads" in declared_parameters(args.notebook):
        params["threads"] = args.threads
    try:
        execute(args.notebook, args.executed, params)
    except (ParameterError, RuntimeError) as error:
        print(f"labbook: {error}", file=sys.stderr)
        return 1
    if args.html:
        to_html(args.executed, args.html, title=params.get("title"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
