"""Every step notebook runs on its own, as a user opening it in Jupyter would: from
notebooks/, with its default parameters, without the workflow."""

import nbformat
import papermill
import pytest
from builders import REPO, scripts_on_pythonpath


def run_standalone(name: str, tmp_path) -> list:
    """Execute notebooks/<name>.ipynb with its defaults, from notebooks/: its outputs."""
    executed = tmp_path / f"{name}.ipynb"
    papermill.execute_notebook(
        str(REPO / "notebooks" / f"{name}.ipynb"),
        str(executed),
        kernel_name="python3",
        cwd=str(REPO / "notebooks"),
        progress_bar=False,
    )
    book = nbformat.read(executed, 4)
    outputs = [o for cell in book.cells for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    return outputs


@pytest.mark.parametrize("name", ["prepare_data", "train", "analyze", "report"])
def test_notebook_runs_standalone_with_its_defaults(name, tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the defaults write to temporary folders
    # The kernel imports labbook as the rules make it: the checkout's scripts/ on PYTHONPATH (the
    # notebooks add no path of their own; Jupyter finds the package `pip install -e .` installed).
    monkeypatch.setenv("PYTHONPATH", scripts_on_pythonpath())
    outputs = run_standalone(name, tmp_path)
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    figures += [o for o in outputs if "data:image/png" in o.get("data", {}).get("text/html", "")]
    assert figures, "the notebook shows its figures"


def test_the_predict_notebook_runs_standalone_and_lists_its_unreadable_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.delenv("PYTHONPATH", raising=False)  # labbook as `pip install -e .` installed it
    shown = "".join(o.get("data", {}).get("text/html", "") for o in run_standalone("predict", tmp_path))
    assert "data:image/png;base64," in shown  # the images with their predictions
    assert "broken" in shown  # the standalone demo's unreadable file is listed


def test_every_notebook_declares_its_parameters_in_a_tagged_cell():
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        book = nbformat.read(path, 4)
        tagged = [c for c in book.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, path.name
        assert not any(c.get("outputs") for c in book.cells if c.cell_type == "code"), (
            f"{path.name} is committed with outputs: clear them"
        )
        code = "\n".join(c.source for c in book.cells if c.cell_type == "code")
        assert "sys.path" not in code, f"{path.name}: labbook is installed (pip install -e .), not patched in"
