"""Provenance (labbook/provenance.py): the git state of a real clone, the hashes and versions a
step records, the torch environment, and files written with the home folder as ~."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from builders import REPO
from labbook import provenance

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def git(repo, *args) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}  # fmt: skip
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env
    ).stdout


@pytest.fixture
def clone(tmp_path):
    """A clone of a fresh repository with two commits: (clone, the commit it is at)."""
    origin = tmp_path / "origin"
    origin.mkdir()
    git(origin, "init", "-q")
    (origin / "config.yaml").write_text("lr: 0.1\n")
    git(origin, "add", "config.yaml")
    git(origin, "commit", "-qm", "first")
    (origin / "config.yaml").write_text("lr: 0.2\n")
    git(origin, "commit", "-qam", "second")
    subprocess.run(["git", "clone", "-q", str(origin), str(tmp_path / "clone")], check=True)
    clone = tmp_path / "clone"
    return clone, git(clone, "rev-parse", "HEAD").strip()


@needs_git
def test_git_state_of_a_clone_is_its_commit_and_clean(clone):
    repo, commit = clone
    assert provenance.git_state(repo) == {"commit": commit, "dirty": False}
    assert len(commit) == 40


@needs_git
def test_untracked_files_leave_it_clean_and_an_edit_makes_it_dirty(clone):
    repo, commit = clone
    (repo / "results.txt").write_text("an output nobody tracks\n")
    assert provenance.git_state(repo) == {"commit": commit, "dirty": False}
    (repo / "config.yaml").write_text("lr: 0.3\n")
    assert provenance.git_state(repo) == {"commit": commit, "dirty": True}
    git(repo, "commit", "-qam", "third")
    assert provenance.git_state(repo) == {"commit": git(repo, "rev-parse", "HEAD").strip(), "dirty": False}
    git(repo, "checkout", "-q", commit)  # a detached HEAD is still a commit
    assert provenance.git_state(repo) == {"commit": commit, "dirty": False}


def test_outside_git_there_is_no_commit_and_no_dirty_flag(tmp_path):
    assert provenance.git_state(tmp_path) == {"commit": None, "dirty": None}


@needs_git
def test_collect_records_this_checkouts_state_and_the_hashes(tmp_path):
    manifest = tmp_path / "manifest.json"
    manifest.write_text('{"classes": ["a"]}')
    record = provenance.collect("train", ["numpy", "no-such-package"], config={"b": 1, "a": [2]},
                                manifest=manifest, run="r", seed=3)  # fmt: skip
    assert record["git"] == provenance.git_state(REPO)
    assert record["packages"]["numpy"] and record["packages"]["no-such-package"] is None
    assert record["config_sha256"] == provenance.config_hash({"a": [2], "b": 1})
    assert (
        record["manifest_sha256"]
        == provenance.file_hash(manifest)
        == (__import__("hashlib").sha256(manifest.read_bytes()).hexdigest())
    )
    assert (record["step"], record["run"], record["seed"]) == ("train", "r", 3)
    assert record["python"] == ".".join(map(str, sys.version_info[:3]))
    assert "torch" not in record and "torch" in provenance.collect("t", with_torch=True)
    assert "manifest_sha256" not in provenance.collect("t", manifest=tmp_path / "missing.json")
    assert "config" not in provenance.collect("t")


def test_config_hash_ignores_key_order_not_values():
    assert provenance.config_hash({"a": 1, "b": {"c": 2, "d": 3}}) == provenance.config_hash(
        {"b": {"d": 3, "c": 2}, "a": 1}
    )
    assert provenance.config_hash({"a": 1}) != provenance.config_hash({"a": 2})


def test_scrub_writes_home_as_tilde_everywhere(tmp_path):
    home = "/home/someone"
    value = {"p": f"{home}/x", "l": [f"{home}/y", 1, (f"{home}",)], "n": None, "o": "/opt/data"}
    assert provenance.scrub(value, home) == {"p": "~/x", "l": ["~/y", 1, ["~"]], "n": None, "o": "/opt/data"}
    assert provenance.scrub({"p": "/x"}, "/") == {"p": "/x"}, "a home of / is not replaced"
    path = tmp_path / "sub" / "provenance.json"
    provenance.write(path, {"when": "now", "home": os.path.expanduser("~") + "/data"})
    assert provenance.read(path) == {"when": "now", "home": "~/data"}
    assert provenance.read(tmp_path / "none.json") == {}


def test_provenance_replaces_the_home_directory(tmp_path):
    home = os.path.expanduser("~")
    record_ = provenance.collect("test", ["numpy"], config={"weights": f"{home}/models/vgg.pt"})
    path = tmp_path / "provenance.json"
    provenance.write(path, record_)
    text = path.read_text()
    assert home not in text and "~/models/vgg.pt" in text
    saved = json.loads(text)
    assert saved["config_sha256"] == provenance.config_hash({"weights": f"{home}/models/vgg.pt"})
    assert saved["packages"]["numpy"] and saved["labbook"]


def test_torch_environment_on_this_machine():
    import torch

    info = provenance.torch_environment()
    assert info["torch"] == torch.__version__ and info["cuda"] == torch.version.cuda
    assert info["cuda_available"] == torch.cuda.is_available()
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    assert info["cudnn"] == cudnn
    if not torch.cuda.is_available():
        assert info["gpus"] == [] and "driver" not in info


def test_torch_environment_names_each_gpu_and_the_driver(tmp_path, monkeypatch):
    """On a CUDA machine (simulated: torch's answers and an nvidia-smi on PATH)."""
    import torch

    smi = tmp_path / "nvidia-smi"
    # answers only the query labbook asks (one line per GPU), like the real one
    smi.write_text(
        '#!/bin/sh\n[ "$*" = "--query-gpu=driver_version --format=csv,noheader" ] || exit 1\n'
        "printf '550.54.15\\n550.54.15\\n'\n"
    )
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: f"GPU number {i}")
    info = provenance.torch_environment()
    assert info["gpus"] == ["GPU number 0", "GPU number 1"] and info["driver"] == "550.54.15"
    smi.write_text("#!/bin/sh\nexit 0\n")
    assert provenance.torch_environment()["driver"] is None, "nvidia-smi said nothing"
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert provenance.torch_environment()["driver"] is None, "no nvidia-smi at all"


def test_collect_keeps_platform_config_and_torch(tmp_path):
    import platform

    record = provenance.collect("train", config={"lr": 0.1}, with_torch=True)
    assert record["platform"] == f"{platform.system()} {platform.machine()}"
    assert record["config"] == {"lr": 0.1}
    assert record["torch"] == provenance.torch_environment()


def test_write_makes_folders_and_readable_json_of_any_value(tmp_path):
    path = tmp_path / "a" / "b" / "provenance.json"
    provenance.write(path, {"step": "x", "where": tmp_path / "data"})
    text = path.read_text()
    assert text.startswith('{\n  "step": "x",'), "indented for people to read"
    assert provenance.read(path)["where"] == str(tmp_path / "data")


def test_collect_names_the_environment_it_ran_in():
    assert provenance.collect("t")["python_prefix"] == sys.prefix


def test_scrub_accepts_a_home_written_with_a_trailing_slash():
    assert provenance.scrub({"p": "/home/someone/data"}, "/home/someone/") == {"p": "~/data"}
