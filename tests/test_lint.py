"""The project's own checks: ruff (lint and format, notebooks included), snakefmt and Snakemake's
linter stay clean. .ci/run runs the same commands first, as a quick gate before the tests."""

import subprocess
import sys
from pathlib import Path

import pytest
from builders import REPO, venv_environment

BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    "command",
    [
        [str(BIN / "ruff"), "check", "."],
        [str(BIN / "ruff"), "format", "--check", "."],
        [str(BIN / "snakefmt"), "--check", "."],
        [sys.executable, "-m", "snakemake", "--lint"],
    ],
    ids=["ruff", "ruff-format", "snakefmt", "snakemake-lint"],
)
def test_clean(command):
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=venv_environment())
    assert result.returncode == 0, result.stdout + result.stderr
    if "--lint" in command:
        assert "Congratulations" in result.stdout + result.stderr
