"""The home folder in what is shared, and recovery claims: the home directory is written as ~ in
executed notebooks and manifests (and only the home folder itself, not a longer name that starts
like it); the README says how to recover after Snakemake itself is killed."""

from builders import REPO, image_folder, make_notebook
from labbook import prepare, runner


def test_scrub_replaces_the_home_folder_not_a_longer_name(monkeypatch):
    from labbook import provenance

    home = "/home/al"
    assert provenance.scrub(f"{home}/data and {home}", home) == "~/data and ~"
    assert provenance.scrub("/home/alice/data", home) == "/home/alice/data"
    assert provenance.scrub({"a": [f"'{home}'"]}, home) == {"a": ["'~'"]}


def test_executed_notebooks_write_home_as_tilde(tmp_path, monkeypatch):
    from nbformat.v4 import new_code_cell

    home = tmp_path / "home" / "someone"
    home.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    source = make_notebook(tmp_path / "n.ipynb", new_code_cell("print(path)\npath"), parameters="path = ''")
    executed = tmp_path / "executed.ipynb"
    runner.execute(source, executed, {"path": f"{home}/data/photos"})
    text = executed.read_text()
    assert str(home) not in text and "~/data/photos" in text


def test_the_manifest_writes_home_as_tilde(tmp_path, monkeypatch):
    home = tmp_path / "home" / "someone"
    monkeypatch.setenv("HOME", str(home))
    root = image_folder(home / "photos", ("ants", "bees"), 2, size=(20, 20))
    (root / "train" / "ants" / "bad.png").write_bytes(b"")
    prepare.prepare(
        {"name": "p", "kind": "imagefolder", "root": str(root), "image_size": 8}, tmp_path / "out"
    )
    text = (tmp_path / "out" / "manifest.json").read_text()
    assert str(home) not in text and "~/photos/train/ants/bad.png" in text


def test_readme_says_how_to_recover_after_snakemake_itself_is_killed():
    readme = (REPO / "README.md").read_text()
    assert "snakemake --unlock" in readme and "cannot be locked" in readme
