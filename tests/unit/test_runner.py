"""The notebook runner every rule uses (labbook/runner.py): parameter checks, kept notebooks,
offline HTML, a step's stderr in its log, slow and killed kernels."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from builders import make_notebook, scripts_on_pythonpath
from labbook import runner
from labbook.plan import params as step_params
from nbformat.v4 import new_code_cell, new_markdown_cell


def test_unknown_parameter_is_an_error_before_anything_runs(tmp_path):
    notebook = make_notebook(tmp_path / "step.ipynb")
    with pytest.raises(runner.ParameterError, match=r"\['sise'\]"):
        runner.execute(notebook, tmp_path / "out.ipynb", {"sise": 4})
    assert not (tmp_path / "out.ipynb").exists()


@pytest.mark.parametrize(
    "params, ok",
    [
        ({"size": 4, "scale": 2}, True),  # an int where the default is a float is fine
        ({"extra": [1, 2]}, True),  # a None default takes anything
        ({"size": "4"}, False),
        ({"size": True}, False),
        ({"name": 3}, False),
    ],
)
def test_parameter_types_follow_the_defaults(tmp_path, params, ok):
    notebook = make_notebook(tmp_path / "step.ipynb")
    if ok:
        runner.check_parameters(notebook, params)
    else:
        with pytest.raises(runner.ParameterError, match=repr(next(iter(params)))):
            runner.check_parameters(notebook, params)


def test_a_failing_step_keeps_its_executed_notebook_and_names_it(tmp_path, capsys):
    notebook = make_notebook(tmp_path / "step.ipynb", new_code_cell("print('before')\n1 / (size - 3)"))
    executed = tmp_path / "logs" / "step.ipynb"
    handed = step_params.write({"size": 3}, tmp_path / "params")
    assert runner.main([str(notebook), str(executed), "--params", handed]) == 1
    error = capsys.readouterr().err
    assert "ZeroDivisionError" in error and str(executed) in error
    outputs = [o for cell in nbformat.read(executed, 4).cells for o in cell.get("outputs", [])]
    assert any(o.get("ename") == "ZeroDivisionError" for o in outputs)
    assert any("before" in o.get("text", "") for o in outputs)


def test_threads_reach_only_notebooks_that_take_them(tmp_path):
    with_threads = make_notebook(
        tmp_path / "a.ipynb", new_code_cell("assert threads == 5"), parameters="threads = 1"
    )
    assert runner.main([str(with_threads), str(tmp_path / "a-out.ipynb"), "--threads", "5"]) == 0
    without = make_notebook(tmp_path / "b.ipynb", new_code_cell("assert 'threads' not in globals()"))
    assert runner.main([str(without), str(tmp_path / "b-out.ipynb"), "--threads", "5"]) == 0


def test_html_hides_code_and_loads_nothing_from_the_network(tmp_path):
    plot = new_code_cell(
        "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
        "from IPython.display import Markdown, display\n"
        "display(Markdown('## Results'))\nplt.plot([1, 2]); plt.show()"
    )
    notebook = make_notebook(tmp_path / "r.ipynb", new_markdown_cell("# Title"), plot, parameters="x = 1")
    html = tmp_path / "r.html"
    assert runner.main([str(notebook), str(tmp_path / "r-out.ipynb"), "--html", str(html)]) == 0
    page = html.read_text()
    assert "<h2" in page and "data:image/png;base64" in page
    assert "matplotlib.use" not in page, "code cells are hidden"
    assert "<script src=" not in page, "no script is loaded from anywhere"


def test_what_a_step_writes_to_its_process_stderr_goes_to_the_log_not_the_notebook(tmp_path, capfd):
    progress = new_code_cell(
        "import sys\nprint('progress 50%', file=sys.__stderr__, flush=True)\nprint('epoch 1')"
    )
    notebook = make_notebook(tmp_path / "p.ipynb", progress, parameters="x = 1")
    executed = tmp_path / "p-out.ipynb"
    assert runner.main([str(notebook), str(executed)]) == 0
    assert "progress 50%" in capfd.readouterr().err
    texts = [o.get("text", "") for cell in nbformat.read(executed, 4).cells for o in cell.get("outputs", [])]
    assert "epoch 1\n" in texts and not any("progress" in t for t in texts)


def slow_kernel(tmp_path, seconds):
    """A `python3` kernel spec, found first through JUPYTER_PATH, that sleeps before starting."""
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    launch = f'sleep {seconds}; exec "$0" -m ipykernel_launcher -f "$1"'
    argv = ["sh", "-c", launch, sys.executable, "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "slow", "language": "python"})
    )
    return str(tmp_path / "jupyter")


def test_a_slow_kernel_start_waits_as_long_as_configured_and_says_how_to_give_it_more(
    tmp_path, monkeypatch, capsys
):
    notebook = make_notebook(tmp_path / "s.ipynb", new_code_cell("print('ran')"), parameters="x = 1")
    monkeypatch.setenv("JUPYTER_PATH", slow_kernel(tmp_path, 4))
    monkeypatch.setenv("LABBOOK_KERNEL_START_TIMEOUT", "1")
    assert runner.main([str(notebook), str(tmp_path / "s-out.ipynb")]) == 1
    error = capsys.readouterr().err
    assert "did not start within 1 s" in error and "LABBOOK_KERNEL_START_TIMEOUT" in error
    monkeypatch.setenv("LABBOOK_KERNEL_START_TIMEOUT", "60")
    assert runner.main([str(notebook), str(tmp_path / "s-out.ipynb")]) == 0


def test_the_kernel_start_timeout_defaults_to_minutes_and_rejects_nonsense(monkeypatch):
    monkeypatch.delenv("LABBOOK_KERNEL_START_TIMEOUT", raising=False)
    assert runner.kernel_start_timeout() == 300
    for bad in ("ten", "0", "-5", "1.5"):
        monkeypatch.setenv("LABBOOK_KERNEL_START_TIMEOUT", bad)
        with pytest.raises(runner.ParameterError, match=f"LABBOOK_KERNEL_START_TIMEOUT='{re.escape(bad)}'"):
            runner.kernel_start_timeout()


def test_a_killed_kernel_is_reported_as_killed_with_the_memory_hint(tmp_path, capsys):
    kill = new_code_cell("import os, signal\nprint('before')\nos.kill(os.getpid(), signal.SIGKILL)")
    notebook = make_notebook(tmp_path / "k.ipynb", kill, parameters="x = 1")
    executed = tmp_path / "k-out.ipynb"
    assert runner.main([str(notebook), str(executed)]) == 1
    error = capsys.readouterr().err
    assert "died" in error and "mem_mb" in error and str(executed) in error
    assert executed.exists()


def test_kernels_started_side_by_side_talk_over_private_sockets_not_tcp_ports(tmp_path):
    """Over TCP, a port is picked before the kernel binds it: of 72 kernels started 24 at a
    time, 2 died with "Address already in use" (a CI run lost 4 tests to it)."""
    where = new_code_cell(
        "from ipykernel.kernelapp import IPKernelApp\n"
        "app = IPKernelApp.instance()\n"
        "print(app.transport, app.ip)"
    )
    notebook = make_notebook(tmp_path / "w.ipynb", where, parameters="x = 1")
    command = [sys.executable, "-m", "labbook.runner", str(notebook)]
    environment = {**os.environ, "PYTHONPATH": scripts_on_pythonpath()}
    side_by_side = [
        subprocess.Popen([*command, str(tmp_path / f"w-{i}.ipynb")], env=environment) for i in range(4)
    ]
    assert [process.wait() for process in side_by_side] == [0] * 4
    transport, ip = nbformat.read(tmp_path / "w-0.ipynb", 4).cells[-1].outputs[0]["text"].split()
    assert transport == "ipc" and Path(ip).parent.name.startswith("labbook-kernel-")
    assert not Path(ip).parent.exists(), "the sockets' folder is removed with the kernel"
