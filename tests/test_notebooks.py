"""Every step notebook runs on its own, as a user opening it in Jupyter would: from
notebooks/, with its default parameters, without the workflow."""

import nbformat
import papermill
import pytest
from conftest import REPO


@pytest.mark.parametrize("name", ["prepare_data", "train", "analyze", "report"])
def test_notebook_runs_standalone_with_its_defaults(name, tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the defaults write to temporary folders
    monkeypatch.delenv("PYTHONPATH", raising=False)  # the notebook finds ../scripts itself
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
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    figures += [o for o in outputs if "data:image/png" in o.get("data", {}).get("text/html", "")]
    assert figures, "the notebook shows its figures"


def test_every_notebook_declares_its_parameters_in_a_tagged_cell():
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        book = nbformat.read(path, 4)
        tagged = [c for c in book.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, path.name
        assert not any(c.get("outputs") for c in book.cells if c.cell_type == "code"), (
            f"{path.name} is committed with outputs: clear them"
        )
